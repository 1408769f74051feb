"""Checkpoints of a `--backend=jax` run: weights, optimizer (step included) and RNG state, atomic, via tf.io.gfile.

    tfapp-train --backend=jax --model_dir=runs/j1     # killed or preempted? the same command resumes at the last save

`<model_dir>/checkpoints/ckpt-<step>.npz` holds every model variable (trainable, non-trainable, the seed
generators' states) and every optimizer variable, by position, as arrays; `checkpoint.json` names the latest
and the kept ones. A save writes the file under a temporary name, renames it, and only then rewrites
`checkpoint.json` (again temp + rename), so a save killed half way never replaces the last good checkpoint. The
input position follows from the step, as on the TensorFlow path.
Why not Orbax: its writes go through tensorstore / etils paths, not `tf.io.gfile`, so the run directory's
schemes would differ between the engines (`ram://` and every other TensorFlow file system would stop working for
JAX runs), and with replicated data-parallel state one gathered copy is all a checkpoint needs. Sharded
(model-parallel) arrays are gathered to the host first (`process_allgather` across processes); only process 0
writes. For models too large for one host's memory Orbax's sharded, async saves would be the next step.
"""
import io
import json
import uuid

import numpy as np
import tensorflow as tf  # tf.io.gfile only

from tfapp import checkpoints, report



def _state_path(model_dir):
    return report.join(checkpoints.directory(model_dir), checkpoints.JAX_STATE_FILE)


def _write_atomically(path, data, mode="wb"):
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(temporary, mode) as f:
        f.write(data)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def _host_value(value):
    """A numpy copy of a (possibly sharded, possibly multi-host) array; a collective when not all local."""
    if getattr(value, "is_fully_addressable", True):
        return np.asarray(value)
    from jax.experimental import multihost_utils
    return np.asarray(multihost_utils.process_allgather(value, tiled=True))


def _variables(model, optimizer):
    return list(model.variables) + list(optimizer.variables)


class Manager:
    """save(checkpoint_number=step) / latest_checkpoint / restore(path), as the TensorFlow path's manager.
    `trainer` (a tfapp.jax_loop.JaxTrainer) holds the live state: it is written back to the Keras variables
    before a save and re-read after a restore."""

    def __init__(self, model_dir, model, optimizer, trainer=None, max_to_keep=checkpoints.MAX_TO_KEEP,
                 is_chief=True):
        self.directory = checkpoints.directory(model_dir)
        self.model_dir, self.model, self.optimizer, self.trainer = model_dir, model, optimizer, trainer
        self.max_to_keep, self.is_chief = max_to_keep, is_chief

    @property
    def latest_checkpoint(self):
        return checkpoints.latest(self.model_dir)

    def _kept(self):
        path = _state_path(self.model_dir)
        if not tf.io.gfile.exists(path):
            return []
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)["all"]

    def save(self, checkpoint_number):
        if self.trainer is not None:
            self.trainer.sync_to_model()
        variables = _variables(self.model, self.optimizer)
        arrays = {f"v{i:05d}": _host_value(variable.value) for i, variable in enumerate(variables)}
        if not self.is_chief:
            return None
        buffer = io.BytesIO()
        np.savez(buffer, paths=np.asarray([variable.path for variable in variables]), **arrays)
        name = f"ckpt-{checkpoint_number}.npz"
        tf.io.gfile.makedirs(self.directory)
        _write_atomically(report.join(self.directory, name), buffer.getvalue())
        kept = [n for n in self._kept() if n != name] + [name]
        _write_atomically(_state_path(self.model_dir), json.dumps({"latest": name, "all": kept[-self.max_to_keep:]}),
                          mode="w")
        for old in kept[:-self.max_to_keep]:
            old_path = report.join(self.directory, old)
            if tf.io.gfile.exists(old_path):
                tf.io.gfile.remove(old_path)
        return report.join(self.directory, name)

    def save_best(self, step, metrics):
        """--keep=best: the model's weights (no optimizer) as checkpoints/best.npz, and best.json."""
        if self.trainer is not None:
            self.trainer.sync_to_model()
        arrays = {f"v{i:05d}": _host_value(variable.value) for i, variable in enumerate(self.model.variables)}
        if not self.is_chief:
            return
        buffer = io.BytesIO()
        np.savez(buffer, paths=np.asarray([variable.path for variable in self.model.variables]), **arrays)
        path = report.join(self.directory, "best.npz")
        tf.io.gfile.makedirs(self.directory)
        _write_atomically(path, buffer.getvalue())
        checkpoints.write_best(self.model_dir, step, metrics, path)

    def best(self):
        found = checkpoints.read_best(self.model_dir)
        return found[:2] if found else None

    def restore_best(self):
        self._assign(checkpoints.read_best(self.model_dir)[2], list(self.model.variables))
        if self.trainer is not None:
            self.trainer.reload_state()

    def restore(self, path):
        """Assigns the checkpoint's arrays to the model's and optimizer's variables (the same positions and
        shapes: a checkpoint of another model is refused with the first mismatch named)."""
        self._assign(path, _variables(self.model, self.optimizer))
        if self.trainer is not None:
            self.trainer.reload_state()

    def _assign(self, path, variables):
        with tf.io.gfile.GFile(path, "rb") as f:
            stored = np.load(io.BytesIO(f.read()))
        if len(stored.files) - 1 != len(variables):
            raise ValueError(f"{path}: holds {len(stored.files) - 1} variables, the model and optimizer have "
                             f"{len(variables)}")
        for i, variable in enumerate(variables):
            value = stored[f"v{i:05d}"]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(f"{path}: {stored['paths'][i]} has shape {value.shape}, the model's "
                                 f"{variable.path} {tuple(variable.shape)}")
            variable.assign(value)
