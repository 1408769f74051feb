"""A time series from a CSV (`--time_column`, `--value_column`) cut into (window -> horizon) examples.

    tfapp-train --task=forecasting --data=csv:sales.csv --time_column=date --value_column=units --window=24

Rows are sorted by the time column (compared as text, so ISO dates and plain numbers in a fixed width sort
right; numeric time columns sort numerically). Missing values (`""`, `NA`, `NaN`, …) are filled by linear
interpolation between their neighbours (at the ends: the nearest value). The split is chronological, never
shuffled: the test windows are those whose targets start in the last `test_fraction` of the series; training
windows end before that point. Examples are {"x": float32 [window], "y": float32 [horizon]}.
"""
import numpy as np

from pipelines import arrays, csv_source
from pipelines.source import DataError


def interpolate_missing(values):
    """NaNs replaced by linear interpolation (nearest value at the ends)."""
    values = np.asarray(values, np.float64)
    missing = np.isnan(values)
    if missing.all():
        raise DataError("the value column has no values")
    if missing.any():
        index = np.arange(len(values))
        values[missing] = np.interp(index[missing], index[~missing], values[~missing])
    return values


def read_series(location, time_column, value_column):
    """(times as strings, float64 values) sorted by time, with missing values interpolated."""
    header, body, lines = csv_source._read_rows(location)
    for flag, name in (("--time_column", time_column), ("--value_column", value_column)):
        if not name:
            raise DataError(f"{flag} is required for a series in csv:{location}; columns: {', '.join(header)}")
        if name not in header:
            raise DataError(f"{location}: {flag}={name!r} is not a column; columns: {', '.join(header)}")
    t_index, v_index = header.index(time_column), header.index(value_column)
    times = [row[t_index].strip() for row in body]
    values = []
    for line_number, row in zip(lines, body):
        cell = row[v_index].strip()
        if cell.lower() in csv_source.MISSING:
            values.append(np.nan)
            continue
        value = csv_source._parse_float(cell)
        if value is None:
            raise DataError(f"{location}:{line_number}: {value_column}={cell!r} is not a number")
        values.append(value)
    numeric_times = [csv_source._parse_float(t) for t in times]
    key = numeric_times if all(t is not None for t in numeric_times) else times
    order = sorted(range(len(times)), key=lambda i: key[i])
    return [times[i] for i in order], interpolate_missing(np.asarray(values)[order])


def windows(values, starts, window, horizon):
    """x [n, window], y [n, horizon] for the given window start indices."""
    x = np.stack([values[s:s + window] for s in starts]).astype(np.float32)
    y = np.stack([values[s + window:s + window + horizon] for s in starts]).astype(np.float32)
    return x, y


def load_series(location, options):
    times, values = read_series(location, options.time_column, options.value_column)
    window, horizon = options.window or 24, options.horizon or 1
    if window < 1 or horizon < 1:
        raise DataError(f"--window and --horizon must be >= 1, got {window} and {horizon}")
    split = len(values) - int(round(len(values) * options.test_fraction))
    train_starts = np.arange(0, split - window - horizon + 1)
    test_starts = np.arange(max(0, split - window), len(values) - window - horizon + 1)
    if len(train_starts) < 1 or len(test_starts) < 1:
        raise DataError(f"{location}: {len(values)} values are too few for --window={window}, --horizon={horizon} "
                        f"and --test_fraction={options.test_fraction}")
    diffs = np.diff(values[:split])
    extra = {"window": window, "horizon": horizon, "time_range": [times[0], times[-1]],
             "test_start": times[split], "diff_std": float(np.std(diffs)) or 1.0, "series_length": len(values),
             "ordered": True}  # windows in time order: validation is the last of them (pipelines/validation.py)
    return arrays.from_split_arrays(f"series:{location}", {"train": windows(values, train_starts, window, horizon),
                                                           "test": windows(values, test_starts, window, horizon)},
                                    extra)
