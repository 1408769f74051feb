"""Checkpoints under `<model_dir>/checkpoints`: model and optimizer (which carries the step count).

    python -c "import tensorflow as tf; print(tf.train.latest_checkpoint('runs/LATEST/checkpoints'))"
"""
import tensorflow as tf

from tfapp import report

MAX_TO_KEEP = 3


def manager(model_dir, model, optimizer):
    """A tf.train.CheckpointManager saving `model` and `optimizer`; `save(checkpoint_number=step)` at loop ends."""
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    return tf.train.CheckpointManager(checkpoint, report.join(model_dir, "checkpoints"), max_to_keep=MAX_TO_KEEP)
