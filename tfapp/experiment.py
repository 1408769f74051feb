"""What every engine builds for a run before the first file is written: the `Experiment` record, and the pieces
both engines' `prepare` share (data source, model, optimizer, run directory, precision, timings).

    python -c "from tfapp import config, experiment, tasks; c = config.Config().resolved(); print(experiment.build_model(c, tasks.get_task(c.task), {'features': {'x': ((8, 8), 'uint8')}, 'num_classes': 10}))"

Each engine's `prepare` (`tfapp.engines`: tensorflow_engine, jax_engine) builds an Experiment, by keyword, from
these; `tfapp.training.train` and `tfapp.host_loop` drive it. Neither engine module imports the other.
"""
import contextlib
import dataclasses
import functools
import re
import threading
import time
from typing import Any

import keras

import pipelines
import pipelines.augment
from tfapp import checkpoints, muon, precision
from tfapp.config import PRECISIONS, ConfigError


@dataclasses.dataclass
class Experiment:
    """Everything built from a Config before the first file is written."""
    config: Any
    task: Any
    strategy: Any
    source: Any
    model: Any
    optimizer: Any
    train_data: Any
    eval_data: Any                # the validation split's dataset, or a function building it (see validation_data)
    is_chief: bool
    make_train_data: Any = None   # skip_steps -> distributed training dataset resuming at that step
    resumed_from: Any = None      # checkpoint path the run continues from, or None
    block: Any = None             # batches per element of train_data (None: one batch per element)
    startup: dict = dataclasses.field(default_factory=dict)  # seconds per start-up stage, for report.json
    eval_steps: Any = None        # batches per evaluation of eval_data (which repeats); None: it is one pass
    engine: str = "tensorflow"    # "tensorflow" (tfapp.loop) or "jax" (tfapp.jax_loop; strategy: a JaxDevices)
    train_table: Any = None       # JAX: preprocessed training rows kept on the devices (train_data: row indices)
    precision: Any = None         # --mixed_precision=auto: the choice and why (tfapp.precision), for report.json
    make_test_data: Any = None    # () -> (test dataset, batches in one pass): built and read once, at the end
    _lock: Any = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

    def validation_data(self):
        """The validation split's dataset; an engine may hand a function instead, built here on first use (in the
        run's background thread, while training runs: tracing a pipeline's map functions takes a few tenths of a
        second of start-up otherwise)."""
        with self._lock:
            if callable(self.eval_data):  # datasets are not
                self.eval_data = self.eval_data()
            return self.eval_data

    def checkpoint_manager(self, write_dir, trainer):
        """save / latest_checkpoint / restore of the model, optimizer and RNG state, for this engine."""
        if self.engine == "jax":
            from tfapp import jax_checkpoints
            return jax_checkpoints.Manager(write_dir, self.model, self.optimizer, trainer, is_chief=self.is_chief)
        return checkpoints.Manager(write_dir, self.model, self.optimizer)

    def restart_train_data(self, step):
        self.train_data = self.make_train_data(step)
        return self.train_data



def learning_rate_schedule(config):
    """--learning_rate, constant or with --warmup_steps of linear warm-up then cosine decay to 0."""
    if config.lr_schedule != "cosine":
        return config.learning_rate
    updates = max(1, config.train_steps // config.gradient_accumulation_steps)  # the schedule counts updates
    warmup = min(config.warmup_steps, updates - 1)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else config.learning_rate, decay_steps=updates - warmup,
        warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup)


NO_DECAY = ("bias", "gamma", "beta", "positions")  # variable names --weight_decay leaves alone (biases, norms)


def build_optimizer(config, model=None, task=None):
    """Adam (AdamW with --weight_decay) or Muon with the configured schedule, --clipnorm (of the global norm) and
    --gradient_accumulation_steps (Keras optimizers' own: the update every N calls, on the mean gradient); wrapped
    for dynamic loss scaling under float16. Muon orthogonalizes the momentum of 2-D kernels; embeddings, other
    shapes and the output layer of `model` (its last layer, as Muon's authors advise) take its Adam step (beta_2
    0.99, nanoGPT's choice for small batches). Weight decay is decoupled and spares biases and norms."""
    if task is not None and task.optimizer is not None:  # the optimizer of the user's own model (tfapp.fit)
        return task.optimizer(config, model)
    learning_rate = learning_rate_schedule(config)
    options = {"global_clipnorm": config.clipnorm}
    if config.gradient_accumulation_steps > 1:
        options["gradient_accumulation_steps"] = config.gradient_accumulation_steps
    decay = config.weight_decay or None
    if config.optimizer == "muon":
        output_layer = [f"^{re.escape(model.layers[-1].name)}/"] if model is not None else []
        # None, not 0.0: Keras's Muon builds `variable - variable * 0 * lr` (the schedule evaluated again) for every
        # variable when a decay is 0.0, ~3 s of tracing and ops in every step that change nothing.
        optimizer = muon.GroupedMuon(learning_rate, adam_beta_2=0.99, weight_decay=decay, adam_weight_decay=decay,
                                     exclude_layers=output_layer, **options)
    elif decay:
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=decay, **options)
    else:
        optimizer = keras.optimizers.Adam(learning_rate, **options)
    if decay:
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
    if config.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def load_source(config, task):
    """The run's data source; a task's preprocessing state (vocabularies) is fitted once on the train split here
    and kept in the spec, from which the pipeline, the model and the export all read it."""
    source = pipelines.with_validation(pipelines.load(config.data, config.load_options()), config.validation_fraction,
                                       config.seed)
    if task.adapt:
        source = dataclasses.replace(source, spec={**source.spec, **task.adapt(source, config)})
    return source


def build_model(config, task, spec):
    """The task's model under the configured dtype policy (the global policy is restored afterwards)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISIONS[config.mixed_precision])
    try:
        return task.model_builder(config.model)(config, spec)
    finally:
        keras.config.set_dtype_policy(previous)


def choose_precision(config, engine, device, is_native, candidate_trainer, make_train_data, resuming,
                     platform="cpu", workers=1, replicas=1):
    """(config with --mixed_precision=auto resolved to none or bfloat16, the record for report.json); other values
    pass through. `candidate_trainer(candidate_config)`: a fresh model and optimizer in that precision, in a
    trainer of this engine (tfapp.precision trains each a few steps on the same batches). A resumed run keeps the
    precision its checkpoint was trained in."""
    if config.mixed_precision != "auto":
        return config, None
    saved = checkpoints.saved_setting(config.model_dir, "mixed_precision") if resuming else None
    if saved in PRECISIONS:
        choice, record = saved, {"choice": saved, "source": "resumed run",
                                 "reason": "the precision the checkpoint was trained in"}
    else:
        def try_precision(value, steps):
            keras.utils.set_random_seed(config.seed)  # the same initial weights for both
            trainer = candidate_trainer(dataclasses.replace(config, mixed_precision=value))
            return precision.timed_training(trainer, iter(make_train_data(0)), steps)
        choice, record = precision.choose(config, engine, device, replicas, is_native, try_precision, platform,
                                          workers)
    keras.utils.set_random_seed(config.seed)
    return dataclasses.replace(config, mixed_precision=choice), record


def resolve_run_dir(config):
    """(model_dir to use, resuming?): resumes a compatible run, never overwrites one (see checkpoints)."""
    model_dir, resuming = checkpoints.resolve_model_dir(config.model_dir, config.resume)
    if resuming:
        checkpoints.check_resume_compatible(model_dir, config)
    return model_dir, resuming


def augmenter(config, task, source):
    """`--augment`: the stateless image transforms of pipelines.augment, or None."""
    if not config.augment:
        return None
    if len(source.spec["features"].get("x", ((),))[0]) not in (2, 3) or "num_classes" not in source.spec:
        raise ConfigError(f"--augment: only image tasks can be augmented, not {task.name} on {config.data}")
    return functools.partial(pipelines.augment.flip_and_crop, seed=config.seed)



@contextlib.contextmanager
def timed(timings, name):
    """Adds the seconds the block took to timings[name]."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
