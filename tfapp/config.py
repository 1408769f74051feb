"""`Config`: every setting of one run, frozen. Built once from flags (or by hand in a notebook), then passed on.

    python -c "from tfapp import config; print(config.Config(task='digits').resolved())"

`resolved()` fills what the user left open (model, data, task defaults, model_dir) and validates every value,
raising `ConfigError` whose message names the flag and the valid choices. Nothing else in tfapp reads FLAGS.
"""
import dataclasses
import datetime
import json
from typing import Optional

import pipelines
from tfapp import tasks

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")
JIT_CHOICES = ("auto", "true", "false", "block")
# --xla names what --jit_compile (kept as its alias) sets: no XLA, one XLA program per step, one per loop of steps.
XLA_TO_JIT = {"auto": "auto", "off": "false", "step": "true", "loop": "block"}
JIT_TO_XLA = {jit: xla for xla, jit in XLA_TO_JIT.items()}
PRECISIONS = {"none": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}  # flag -> Keras policy
PRECISION_CHOICES = (*PRECISIONS, "auto")  # auto: chosen per device and task (tfapp/precision.py)
LR_SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("adam", "muon")
BACKENDS = ("tensorflow", "jax")
AUTOTUNE_CHOICES = ("cache", "measure")
KEEP_CHOICES = ("best", "last")


class ConfigError(ValueError):
    """A bad setting; the message starts with the flag it is about."""


@dataclasses.dataclass(frozen=True)
class Config:
    task: str = "digits"
    model: Optional[str] = None              # None -> the task's first model
    data: Optional[str] = None               # "KIND:LOCATION"; None -> the task's default_data
    data_dir: Optional[str] = None           # TFDS data_dir
    download: bool = False                   # TFDS: allow downloading a missing dataset
    test_fraction: Optional[float] = None    # share held out as test when a source has none; per task (0.2)
    validation_fraction: float = 0.1         # share of train held out as validation when a source has none
    keep: str = "best"                       # best | last: the checkpoint tested and exported at the end
    label_column: Optional[str] = None       # csv: the column to predict
    image_size: int = 64                     # images: resized to image_size × image_size
    image_channels: Optional[int] = None     # images: convert to 1/3/4 channels; None = files must agree
    strict: bool = False                     # images: unreadable file = error instead of skipped
    feature_spec: Optional[str] = None       # tfrecord: JSON feature spec when no spec.json is beside the shards
    time_column: Optional[str] = None        # csv series (forecasting): the time column
    value_column: Optional[str] = None       # csv series: the column to forecast
    window: Optional[int] = None             # forecasting: past values per example
    horizon: Optional[int] = None            # forecasting: future values predicted per example
    season: Optional[int] = None             # forecasting: season length of the seasonal-naive baseline
    vocab_size: int = 20000                  # text tasks: vocabulary size (most frequent words) incl. padding/OOV
    sequence_length: Optional[int] = None    # text tasks: tokens per example; None -> measured on train (p95)
    user_column: Optional[str] = None        # recommendation: the user id column
    item_column: Optional[str] = None        # recommendation: the item id column
    cache: str = "memory"                    # training examples: memory | none | file path prefix
    augment: bool = False                    # image tasks: random flip + pad-and-crop on training images
    weights: Optional[str] = None            # local Keras Applications weights file (--model=transfer)
    model_dir: Optional[str] = None          # None -> runs/<task>-<YYYYmmdd-HHMMSS>
    batch_size: Optional[int] = None         # global batch, split across replicas
    train_steps: Optional[int] = None        # optimizer steps
    eval_every: Optional[int] = None         # steps between evaluations on the test split
    checkpoint_every: Optional[int] = None   # steps between checkpoints; None -> eval_every
    resume: bool = True                      # continue from the checkpoint in model_dir; False -> a new dir
    on_nan: str = "stop"                     # stop | restore (reload last checkpoint, halve the learning rate)
    max_nan_retries: int = 3                 # restores before --on_nan=restore gives up
    deterministic: bool = False              # op determinism on; XLA off unless asked for
    learning_rate: Optional[float] = None    # peak learning rate of the optimizer
    dropout: Optional[float] = None          # transformer and recurrent models: dropout rate; None: the model's own
    weight_decay: Optional[float] = None     # decoupled (AdamW; Muon's own) on kernels and embeddings; per task (0)
    clipnorm: Optional[float] = None         # clip the gradients' global norm to this; None: no clipping
    gradient_accumulation_steps: int = 1     # optimizer updates every N steps on the mean of N steps' gradients
    optimizer: Optional[str] = None          # adam | muon (orthogonalized momentum on 2-D kernels); per task (adam)
    seed: int = 0
    strategy: str = "auto"
    backend: str = "tensorflow"              # tensorflow (tf.distribute, tfapp.loop) | jax (tfapp.jax_loop)
    model_parallel: int = 1                  # jax: devices each model is split over (keras ModelParallel)
    tpu: Optional[str] = None
    num_cpu_devices: Optional[int] = None    # split the CPU into N logical devices (Mirrored on a laptop)
    steps_per_loop: str = "auto"             # optimizer steps per host round-trip (one tf.function call), or auto
    jit_compile: str = "auto"                # auto | true | false | block: the alias of --xla (step, off, loop)
    xla: Optional[str] = None                # auto | off | step | loop; resolved into jit_compile (then None)
    autotune_seconds: float = 10.0           # measuring budget of the auto settings (and <= ~15% of the run)
    autotune: str = "cache"                  # cache: reuse an earlier measurement of the same setup | measure
    mixed_precision: str = "none"            # none | bfloat16 | float16 (adds dynamic loss scaling) | auto
    lr_schedule: Optional[str] = None        # constant | cosine (decay to 0 over train_steps, after warmup); per task
    warmup_steps: Optional[int] = None       # linear warmup steps of the cosine schedule; per task (0)
    early_stopping_patience: int = 0         # stop after N evaluations without a better main metric; 0 = off
    target_metric: Optional[float] = None    # report time_to_target_s: when the eval main metric first reaches it
    export: bool = True                      # write a SavedModel under <model_dir>/export/<version>/
    tflite: bool = False                     # also convert serving_default to <version>/model.tflite

    def load_options(self):
        """The pipelines.LoadOptions part of this config."""
        return pipelines.LoadOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(pipelines.LoadOptions)})

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def resolved(self, smoke=False, now=None):
        """A copy with every open value filled in (task defaults; smoke sizes if `smoke`) and validated."""
        try:
            task = tasks.get_task(self.task)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        values = dataclasses.asdict(self)
        for name, value in {**task.defaults, **(task.smoke if smoke else {})}.items():
            if values[name] is None or (smoke and name in task.smoke):
                values[name] = value
        values["model"] = values["model"] or task.default_model
        values["lr_schedule"] = values["lr_schedule"] or "constant"
        values["optimizer"] = values["optimizer"] or "adam"
        values["warmup_steps"] = 0 if values["warmup_steps"] is None else values["warmup_steps"]
        for name, default in (("test_fraction", 0.2), ("weight_decay", 0.0)):
            values[name] = default if values[name] is None else values[name]
        values["steps_per_loop"] = str(values["steps_per_loop"])
        values["checkpoint_every"] = values["checkpoint_every"] or values["eval_every"]
        values["data"] = values["data"] or task.default_data
        values["jit_compile"], values["xla"] = resolve_xla(values["xla"], values["jit_compile"]), None
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        values["model_dir"] = values["model_dir"] or f"runs/{self.task}-{stamp}"
        config = Config(**values)
        config.validate()
        return config

    def validate(self):
        try:
            tasks.get_task(self.task).model_builder(self.model)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if self.steps_per_loop != "auto" and not str(self.steps_per_loop).isdigit():
            raise ConfigError(f"--steps_per_loop must be a positive integer or 'auto', got {self.steps_per_loop!r}")
        for name in ("batch_size", "train_steps", "eval_every", "checkpoint_every"):
            value = getattr(self, name)
            if value is None or value < 1:
                raise ConfigError(f"--{name} must be a positive integer, got {value}")
        if self.learning_rate is None or not self.learning_rate > 0:
            raise ConfigError(f"--learning_rate must be > 0, got {self.learning_rate}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"--strategy: unknown strategy {self.strategy!r}; valid: {', '.join(STRATEGIES)}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.backend == "jax" and self.strategy not in ("auto", "default"):
            raise ConfigError(f"--strategy={self.strategy}: the jax backend always runs keras.distribution."
                              "DataParallel over every JAX device; leave --strategy at auto")
        if self.jit_compile not in JIT_CHOICES:
            raise ConfigError(f"--jit_compile: {self.jit_compile!r} is not one of {', '.join(JIT_CHOICES)}")
        if self.model_parallel is None or self.model_parallel < 1:
            raise ConfigError(f"--model_parallel must be a positive integer, got {self.model_parallel}")
        if self.model_parallel > 1 and self.backend != "jax":
            raise ConfigError(f"--model_parallel={self.model_parallel}: splitting a model over devices runs on the "
                              "JAX backend (keras.distribution.ModelParallel); add --backend=jax")
        if self.backend == "jax" and self.jit_compile == "false":
            raise ConfigError("--jit_compile=false: the jax backend always compiles its loop with XLA; leave "
                              "--jit_compile at auto")
        if self.backend == "jax" and self.mixed_precision == "float16":
            raise ConfigError("--mixed_precision=float16: not on the jax backend (no loss scaling there); use "
                              "bfloat16")
        if self.steps_per_loop != "auto" and int(self.steps_per_loop) < 1:
            raise ConfigError(f"--steps_per_loop must be a positive integer or 'auto', got {self.steps_per_loop!r}")
        if self.mixed_precision not in PRECISION_CHOICES:
            raise ConfigError(f"--mixed_precision: {self.mixed_precision!r} is not one of "
                              f"{', '.join(PRECISION_CHOICES)}")
        if self.on_nan not in ("stop", "restore"):
            raise ConfigError(f"--on_nan: {self.on_nan!r} is not one of stop, restore")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer: {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"--lr_schedule: {self.lr_schedule!r} is not one of {', '.join(LR_SCHEDULES)}")
        for name in ("warmup_steps", "early_stopping_patience", "max_nan_retries"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name} must be >= 0, got {getattr(self, name)}")
        if self.autotune not in AUTOTUNE_CHOICES:
            raise ConfigError(f"--autotune: {self.autotune!r} is not one of {', '.join(AUTOTUNE_CHOICES)}")
        if self.autotune_seconds <= 0:
            raise ConfigError(f"--autotune_seconds must be > 0, got {self.autotune_seconds}")
        if self.image_channels is not None and self.image_channels not in (1, 2, 3, 4):
            raise ConfigError(f"--image_channels must be 1, 2, 3 or 4, got {self.image_channels}")
        if self.image_size < 1:
            raise ConfigError(f"--image_size must be >= 1, got {self.image_size}")
        if self.num_cpu_devices is not None and self.num_cpu_devices < 1:
            raise ConfigError(f"--num_cpu_devices must be >= 1, got {self.num_cpu_devices}")
        for name in ("window", "horizon", "season", "sequence_length"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be a positive integer, got {getattr(self, name)}")
        if self.season and self.window and self.season > self.window:
            raise ConfigError(f"--season={self.season} is longer than --window={self.window}: the seasonal-naive "
                              "baseline needs one season of history in each window")
        if self.vocab_size < 3:
            raise ConfigError(f"--vocab_size must be >= 3 (padding, unknown and one word), got {self.vocab_size}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"--test_fraction must be in (0, 1), got {self.test_fraction}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(f"--validation_fraction must be in (0, 1), got {self.validation_fraction}")
        if self.keep not in KEEP_CHOICES:
            raise ConfigError(f"--keep: {self.keep!r} is not one of {', '.join(KEEP_CHOICES)}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight_decay must be >= 0, got {self.weight_decay}")
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ConfigError(f"--clipnorm must be > 0, got {self.clipnorm}")
        if self.gradient_accumulation_steps < 1:
            raise ConfigError(f"--gradient_accumulation_steps must be >= 1, got {self.gradient_accumulation_steps}")


def resolve_xla(xla, jit_compile):
    """The --jit_compile value the run uses: --xla's when given (--jit_compile must then be auto or the same
    setting), else --jit_compile, its alias (true = step, false = off, block = loop)."""
    if isinstance(jit_compile, bool):  # tfapp.fit(..., jit_compile=True)
        jit_compile = str(jit_compile).lower()
    if jit_compile not in JIT_CHOICES:
        raise ConfigError(f"--jit_compile: {jit_compile!r} is not one of {', '.join(JIT_CHOICES)} (it is the alias "
                          f"of --xla: {', '.join(XLA_TO_JIT)})")
    if xla is None:
        return jit_compile
    if xla not in XLA_TO_JIT:
        raise ConfigError(f"--xla: {xla!r} is not one of {', '.join(XLA_TO_JIT)}")
    if jit_compile not in ("auto", XLA_TO_JIT[xla]):
        raise ConfigError(f"--xla={xla} and --jit_compile={jit_compile} disagree (--jit_compile is --xla's alias: "
                          f"{', '.join(f'{j}={x}' for j, x in JIT_TO_XLA.items())}); give one")
    return XLA_TO_JIT[xla]
