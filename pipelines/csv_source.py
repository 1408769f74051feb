"""`csv:PATH` — a table with a header row; `--label_column` names the target, every other column is a feature.

    tfapp-train --task=regression --data=csv:houses.csv --label_column=price

With `--time_column`/`--value_column` the file is a time series instead, cut into windows (`pipelines/series.py`).

Column types: a column is numeric when every non-missing value parses as a number, else categorical (strings).
Missing values: numeric cells that are empty, `NA`, `N/A`, `NaN` or `null` become the column's mean over all rows
(a column with no value at all is an error); categorical missing cells become the category "" (their own).
Labels: whole numbers -> int64, other numbers -> float32 (tasks cast); strings -> class index in sorted order
(`spec["label_names"]`). Errors name the file and the line.
"""
import csv
import io
import math

import numpy as np
import tensorflow as tf

from pipelines import arrays
from pipelines.source import DataError

MISSING = {"", "na", "n/a", "nan", "null", "none"}


def _parse_float(text):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _read_rows(path):
    if not tf.io.gfile.exists(path):
        raise DataError(f"{path}: no such file")
    with tf.io.gfile.GFile(path, "r") as f:
        text = f.read()
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise DataError(f"{path}: empty file (expected a header row)")
    header = [name.strip() for name in rows[0]]
    body = []
    for line_number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(f"{path}:{line_number}: expected {len(header)} fields, got {len(row)}")
        body.append(row)
    if not body:
        raise DataError(f"{path}: no data rows after the header")
    return header, body


def _column(path, name, cells):
    """(array, vocabulary or None): float32 with means filled in, or strings for categorical columns."""
    present = [c.strip() for c in cells if c.strip().lower() not in MISSING]
    numbers = [_parse_float(c) for c in present]
    if present and all(n is not None for n in numbers):
        mean = float(np.mean(numbers))
        values = [_parse_float(c.strip()) if c.strip().lower() not in MISSING else mean for c in cells]
        return np.asarray(values, np.float32), None
    if not present:
        raise DataError(f"{path}: column {name!r} has no values")
    values = [c.strip() if c.strip().lower() not in MISSING else "" for c in cells]
    return np.asarray(values, object).astype(str), sorted(set(values))


def load_csv(location, options):
    if options.value_column or options.time_column:
        from pipelines import series  # a time series, windowed: see series.py
        return series.load_series(location, options)
    header, body = _read_rows(location)
    if not options.label_column:
        raise DataError(f"--label_column is required for csv:{location}; columns: {', '.join(header)}")
    if options.label_column not in header:
        raise DataError(f"{location}: --label_column={options.label_column!r} is not a column; "
                        f"columns: {', '.join(header)}")
    columns = {name: _column(location, name, [row[i] for row in body]) for i, name in enumerate(header)}
    label, label_vocab = columns.pop(options.label_column)
    extra = {"categorical": {name: vocab for name, (_, vocab) in columns.items() if vocab is not None},
             "label_column": options.label_column}
    if label_vocab is None and np.all(np.mod(label, 1) == 0):
        label = label.astype(np.int64)  # whole numbers: class ids for classification, cast back by regression
    if label_vocab is not None:
        index = {value: i for i, value in enumerate(label_vocab)}
        label = np.asarray([index[v] for v in label], np.int64)
        extra["label_names"] = label_vocab
    features = {name: values for name, (values, _) in columns.items()}
    return arrays.from_arrays(f"csv:{location}", features, label, options.test_fraction, options.seed, extra)
