"""`csv:PATH` — a table with a header row; `--label_column` names the target, every other column is a feature.

    tfapp-train --task=regression --data=csv:houses.csv --label_column=price

With `--time_column`/`--value_column` the file is a time series instead, cut into windows (`pipelines/series.py`,
which reads the rows with this module's reader; `pipelines.sources` chooses between the two).

Column types: a column is numeric when every non-missing value parses as a number, else categorical (strings).
Missing values: numeric cells that are empty, `NA`, `N/A`, `NaN` or `null` become the column's mean over all rows
(a column with no value at all is an error); categorical missing cells become the category "" (their own).
Labels: whole numbers -> int64, other numbers -> float32 (tasks cast); strings -> class index in sorted order
(`spec["label_names"]`); an empty label is an error. A column of numbers with one or two stray words (at least
ten numbers, words ≤ 1%) is an error naming that cell, not a category column. Read as spreadsheets write: a UTF-8
byte-order mark, CRLF, blank lines and quoted cells with commas or line breaks. At most MAX_COLUMNS columns.
Errors name the file and the line (the file's line, also after cells spanning lines) and the column.
"""
import csv
import io
import math

import numpy as np
import tensorflow as tf

from pipelines import arrays
from pipelines.source import DataError

MISSING = {"", "na", "n/a", "nan", "null", "none"}
MAX_COLUMNS = 2000  # one Keras input per column: wider tables belong in npz matrices


def _parse_float(text):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _read_rows(path):
    """(header, data rows as lists of cells, each row's first line in the file). Blank lines are skipped; a UTF-8 byte-order mark, CRLF line ends and quoted
    cells with commas or newlines are read as a spreadsheet writes them. Errors name the file and line."""
    if not tf.io.gfile.exists(path):
        raise DataError(f"{path}: no such file")
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")  # a spreadsheet's byte-order mark is not part of the first column's name
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows, lines, start = [], [], 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append(row)
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as error:
        raise DataError(f"{path}:{reader.line_num}: {error}") from None
    if not rows:
        raise DataError(f"{path}: empty file (expected a header row)")
    header = [name.strip() for name in rows[0]]
    seen = {}
    for column, name in enumerate(header, start=1):
        if not name:
            raise DataError(f"{path}:{lines[0]}: column {column} of the header has no name")
        if name in seen:
            raise DataError(f"{path}:{lines[0]}: duplicate column name {name!r} (columns {seen[name]} and {column})")
        seen[name] = column
    if len(header) > MAX_COLUMNS:
        raise DataError(f"{path}:{lines[0]}: {len(header)} columns; tables take at most {MAX_COLUMNS} (one model "
                        "input each): store wide numeric data as npz:FILE with a matrix x [rows, features]")
    for row, line in zip(rows[1:], lines[1:]):
        if len(row) != len(header):
            raise DataError(f"{path}:{line}: expected {len(header)} fields, got {len(row)}")
    if len(rows) < 2:
        raise DataError(f"{path}: no data rows after the header")
    return header, rows[1:], lines[1:]


def _column(path, name, cells, lines=None):
    """(array, vocabulary or None): float32 with means filled in, or strings for categorical columns. A column
    whose values are nearly all numbers but for a few words is a typo, not a category: an error names the cell."""
    present = [c.strip() for c in cells if c.strip().lower() not in MISSING]
    numbers = [_parse_float(c) for c in present]
    if present and all(n is not None for n in numbers):
        mean = float(np.mean(numbers))
        values = [_parse_float(c.strip()) if c.strip().lower() not in MISSING else mean for c in cells]
        return np.asarray(values, np.float32), None
    if not present:
        raise DataError(f"{path}: column {name!r} has no values")
    words = sum(n is None for n in numbers)
    if words <= max(2, 0.01 * len(present)) and len(present) - words >= 10:
        row = next(i for i, c in enumerate(cells) if c.strip().lower() not in MISSING and _parse_float(c.strip()) is None)
        where = f"{path}:{lines[row]}" if lines else path
        raise DataError(f"{where}: column {name!r} is numeric but this cell is {cells[row].strip()!r}; fix or empty "
                        "the cell (empty cells take the column mean)")
    values = [c.strip() if c.strip().lower() not in MISSING else "" for c in cells]
    return np.asarray(values, object).astype(str), sorted(set(values))


def _check_labels(path, name, cells, lines):
    """Every row needs a label: the first empty one is named."""
    for cell, line in zip(cells, lines):
        if cell.strip().lower() in MISSING:
            raise DataError(f"{path}:{line}: column {name!r} (the label) is empty; fill it or drop the row")


def load_csv(location, options):
    """A table (features and `--label_column`); `pipelines.sources` sends time series to `pipelines.series`."""
    header, body, lines = _read_rows(location)
    if not options.label_column:
        raise DataError(f"--label_column is required for csv:{location}; columns: {', '.join(header)}")
    if options.label_column not in header:
        raise DataError(f"{location}: --label_column={options.label_column!r} is not a column; "
                        f"columns: {', '.join(header)}")
    _check_labels(location, options.label_column, [row[header.index(options.label_column)] for row in body],
                  lines)
    columns = {name: _column(location, name, [row[i] for row in body], lines) for i, name in enumerate(header)}
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
