"""The validation split: what periodic evaluation, early stopping, targets and sweeps read, so the test split is read
once, at the end. A source that has its own (TFDS `validation`, `x_val`/`y_val` in an npz, the language model's
last 10%) keeps it; otherwise `with_validation` carves `fraction` of the train split, the same rows on every run
and every resume (a permutation seeded by the run's seed).

    python -c "import pipelines as p; s = p.with_validation(p.load('embedded:digits'), 0.1, 0); print(s.num_examples)"

- In-memory rows with one integer label per row (classification): stratified, each class gives
  round(fraction x its rows) (at least one where it has two or more), so a rare class is validated too.
- Rows in time order (`spec["ordered"]`: forecasting windows): the last `fraction` of the train windows, since a
  random pick would validate on the past of what trains.
- Other in-memory rows: a seeded random `fraction`; rows read from files (images, TFRecord, TFDS without a
  validation split): the same by position, a filter over the split's fixed order.
The source's spec is kept as it was (statistics such as `x_max` were taken on the whole train split); what a task
fits on the data (vocabularies, `Task.adapt`) is fitted after the carve, on the remaining train rows only.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from pipelines import arrays as arrays_lib
from pipelines.source import DataError


def validation_rows(num_rows, fraction, seed, labels=None, ordered=False):
    """A boolean mask over `num_rows` train rows: True for the validation rows."""
    mask = np.zeros(num_rows, bool)
    if ordered:
        mask[num_rows - int(round(num_rows * fraction)):] = True
        return mask
    rng = np.random.default_rng([seed, 1])  # not the permutation of the test split (seed alone)
    if labels is None:
        mask[rng.permutation(num_rows)[:int(round(num_rows * fraction))]] = True
        return mask
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        count = int(round(len(rows) * fraction)) or (1 if len(rows) > 1 else 0)
        mask[rng.permutation(rows)[:count]] = True
    return mask


def _class_labels(train_arrays):
    """The train labels if they are one integer class per row, else None (regression, sequences, windows)."""
    labels = np.asarray(train_arrays["y"])
    return labels if labels.ndim == 1 and labels.dtype.kind in "iu" else None


def _filtered(make_split, keep):
    """The split's examples whose position is True in `keep` (the split's order is fixed)."""
    table = tf.constant(keep)

    def make():
        return make_split().enumerate().filter(lambda i, _: tf.gather(table, i)).map(lambda _, example: example)
    return make


def with_validation(source, fraction, seed):
    """`source` with a "validation" split (its own, or `fraction` of train carved as the module docstring says)."""
    if "validation" in source.splits:
        return source
    count = source.num_examples["train"]
    name = f"--validation_fraction={fraction}"
    if not 0.0 < fraction < 1.0:
        raise DataError(f"{name}: must be in (0, 1) for {source.name}, which has no validation split of its own")
    train_arrays = (source.arrays or {}).get("train")
    labels = _class_labels(train_arrays) if train_arrays is not None else None
    mask = validation_rows(count, fraction, seed, labels, ordered=bool(source.spec.get("ordered")))
    if not mask.any() or mask.all():
        raise DataError(f"{name}: {count} train examples of {source.name} leave an empty train or validation split")
    splits = {**source.splits, "train": _filtered(source.splits["train"], ~mask),
              "validation": _filtered(source.splits["train"], mask)}
    new_arrays = source.arrays
    if train_arrays is not None:
        def rows(keep):
            index = np.flatnonzero(keep)
            return {name: arrays_lib.take_rows(column, index) if name == "x" else np.asarray(column)[index]
                    for name, column in train_arrays.items()}  # x, y (and sample_weight)
        new_arrays = {**source.arrays, "train": rows(~mask), "validation": rows(mask)}

        def make(split):
            return lambda: tf.data.Dataset.from_tensor_slices(new_arrays[split])
        splits = {**splits, "train": make("train"), "validation": make("validation")}
    return dataclasses.replace(source, splits=splits, arrays=new_arrays,
                               num_examples={**source.num_examples, "train": int((~mask).sum()),
                                             "validation": int(mask.sum())})
