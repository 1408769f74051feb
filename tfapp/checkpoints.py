"""Checkpoints and the run directory's life cycle: resume, never overwrite, fail early when it is not writable.

    tfapp-train --model_dir=runs/exp1 ...        # killed or preempted? the same command resumes at the last save
    tfapp-train --model_dir=runs/exp1 --noresume # starts fresh in runs/exp1-2

A checkpoint (`tf.train.CheckpointManager` under `<model_dir>/checkpoints`) holds the model, the optimizer (whose
`iterations` is the step) and the state of the model's Keras seed generators (Dropout's masks: without it a resumed
run draws the masks of step 0 again and drifts from an uninterrupted one). The input position follows from the step,
because the training pipeline replays the same seeded order and skips the steps already done
(`pipelines.train_dataset(skip_steps=)`); augmentation is keyed by the example's position in that order.
TensorFlow writes a checkpoint's files first and only then points the `checkpoint` state file at them (an atomic
rename), so a save interrupted half way never replaces the last good one.
"""
import json
import shutil
import uuid

import keras
import tensorflow as tf

from tfapp import report
from tfapp.config import ConfigError

MAX_TO_KEEP = 3
CONFIG_FILE = "config.json"
JAX_STATE_FILE = "checkpoint.json"  # names the latest checkpoint of a --backend=jax run (tfapp.jax_checkpoints)
MIN_FREE_BYTES = 50 * 2**20  # refuse to start with less free space than this in a local model_dir
# Settings a resumed run must share with the run that wrote the checkpoint.
RESUME_KEYS = ("task", "model", "data", "batch_size", "seed", "mixed_precision", "test_fraction",
               "validation_fraction", "backend", "optimizer")
# what a config.json written before the key meant
RESUME_DEFAULTS = {"backend": "tensorflow", "optimizer": "adam", "validation_fraction": 0.1}


def batches_done(optimizer):
    """The run's step: batches trained so far. Keras's `optimizer.iterations` counts updates, which with
    --gradient_accumulation_steps=N come every N batches; its counter of `apply` calls counts batches."""
    return int(keras.ops.convert_to_numpy(optimizer._iterations))


def directory(model_dir):
    return report.join(model_dir, "checkpoints")


def seed_states(model):
    """The seed-generator state variables of `model`, in layer order. Keras lists them in `model.variables`, but
    they are not TF checkpoint dependencies of their layers; a list, since their auto names depend on what else the
    process built before."""
    return [variable for variable in model.variables if variable.path.endswith("seed_generator_state")]


def checkpoint(model, optimizer):
    """What a checkpoint holds: model, optimizer (step included) and the model's random-number state."""
    return tf.train.Checkpoint(model=model, optimizer=optimizer, seed_states=seed_states(model))


BEST_FILE = "best.json"  # in checkpoints/: the step and validation metrics of the best evaluation (--keep=best)


def write_best(model_dir, step, metrics, path):
    """Records the best evaluation (atomically: a temporary file, then a rename)."""
    target = report.join(directory(model_dir), BEST_FILE)
    temporary = f"{target}.tmp-{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(json.dumps({"step": int(step), "validation": metrics, "checkpoint": path}, indent=1))
    tf.io.gfile.rename(temporary, target, overwrite=True)


def read_best(model_dir):
    """(step, validation metrics, checkpoint path) of the best evaluation recorded in model_dir, or None."""
    path = report.join(directory(model_dir), BEST_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        best = json.load(f)
    return best["step"], best["validation"], best["checkpoint"]


class Manager:
    """`save(checkpoint_number=step)` at loop ends, `latest_checkpoint`, `restore(path)`, and for --keep=best
    `save_best(step, metrics)` / `best()` / `restore_best()`: tf.train.CheckpointManagers of `checkpoint(model,
    optimizer)` and of the model's weights alone under checkpoints/best/ (tfapp.jax_checkpoints.Manager: the same
    calls on the JAX engine)."""

    def __init__(self, model_dir, model, optimizer):
        self.model_dir = model_dir
        self._checkpoint = checkpoint(model, optimizer)
        self._manager = tf.train.CheckpointManager(self._checkpoint, directory(model_dir), max_to_keep=MAX_TO_KEEP)
        self._weights = tf.train.Checkpoint(model=model)
        self._best = tf.train.CheckpointManager(self._weights, report.join(directory(model_dir), "best"),
                                                max_to_keep=1)

    def save_best(self, step, metrics):
        write_best(self.model_dir, step, metrics, self._best.save(checkpoint_number=step))

    def best(self):
        found = read_best(self.model_dir)
        return found[:2] if found else None

    def restore_best(self):
        self._weights.restore(read_best(self.model_dir)[2]).expect_partial()

    @property
    def latest_checkpoint(self):
        return self._manager.latest_checkpoint

    def save(self, checkpoint_number):
        return self._manager.save(checkpoint_number=checkpoint_number)

    def restore(self, path):
        self._checkpoint.restore(path)


def latest(model_dir):
    """Path of the last complete checkpoint in model_dir (of either engine), or None."""
    found = tf.train.latest_checkpoint(directory(model_dir))
    state = report.join(directory(model_dir), JAX_STATE_FILE)
    if found is None and tf.io.gfile.exists(state):
        with tf.io.gfile.GFile(state) as f:
            found = report.join(directory(model_dir), json.load(f)["latest"])
    return found


def resolve_model_dir(model_dir, resume):
    """(model_dir to use, resuming?). A non-empty dir without a checkpoint is never reused."""
    if not tf.io.gfile.exists(model_dir) or not tf.io.gfile.listdir(model_dir):
        return model_dir, False
    if latest(model_dir) is None:
        if tf.io.gfile.exists(report.join(model_dir, CONFIG_FILE)):
            return model_dir, False  # a tfapp run that died before its first checkpoint: start it again
        raise ConfigError(f"--model_dir={model_dir}: exists, is not empty and holds no checkpoint to resume; "
                          "choose a new directory")
    if resume:
        return model_dir, True
    return next_free_dir(model_dir), False


def next_free_dir(model_dir):
    """`<model_dir>-2`, `-3`, …: the first that does not exist (--noresume never overwrites a run)."""
    for number in range(2, 10_000):
        candidate = f"{model_dir.rstrip('/')}-{number}"
        if not tf.io.gfile.exists(candidate):
            return candidate
    raise ConfigError(f"--model_dir={model_dir}: no free '-N' directory name left")


def check_resume_compatible(model_dir, config):
    """Raises ConfigError if the checkpointed run had other settings for RESUME_KEYS."""
    path = report.join(model_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        return
    with tf.io.gfile.GFile(path) as f:
        saved = json.load(f)
    saved = {**RESUME_DEFAULTS, **saved}
    auto = {"mixed_precision"} if config.mixed_precision == "auto" else set()  # auto resumes the saved precision
    changed = [f"--{k}={saved.get(k)!r} there, {getattr(config, k)!r} now" for k in RESUME_KEYS
               if saved.get(k) != getattr(config, k) and k not in auto]
    if changed:
        raise ConfigError(f"--model_dir={model_dir}: cannot resume a run with other settings ({'; '.join(changed)});"
                          " use --noresume or another --model_dir")


def saved_setting(model_dir, name):
    """The value of setting `name` in model_dir's config.json (what the checkpointed run was trained with), or None."""
    path = report.join(model_dir, CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f).get(name)


def check_writable(model_dir):
    """Fails early, before any training, if model_dir cannot be written or its disk is (nearly) full.
    Leaves nothing behind: a directory created for the probe is removed again."""
    existed = tf.io.gfile.exists(model_dir)
    probe = report.join(model_dir, f".tfapp-write-probe-{uuid.uuid4().hex}")
    try:
        try:
            tf.io.gfile.makedirs(model_dir)
            with tf.io.gfile.GFile(probe, "w") as f:
                f.write("ok")
            tf.io.gfile.remove(probe)
        except (tf.errors.OpError, OSError) as error:
            message = getattr(error, "message", None) or str(error)
            raise ConfigError(f"--model_dir={model_dir}: not writable ({message.splitlines()[0]})") from None
        if "://" not in model_dir:
            free = shutil.disk_usage(model_dir).free
            if free < MIN_FREE_BYTES:
                raise ConfigError(f"--model_dir={model_dir}: only {free / 2**20:.0f} MiB free on its disk; "
                                  f"need at least {MIN_FREE_BYTES / 2**20:.0f} MiB")
    finally:
        if not existed and tf.io.gfile.exists(model_dir):
            tf.io.gfile.rmtree(model_dir)


def write_config(model_dir, config_dict):
    with tf.io.gfile.GFile(report.join(model_dir, CONFIG_FILE), "w") as f:
        f.write(json.dumps(config_dict, indent=2, sort_keys=True) + "\n")

