"""`curves.png`: loss and the task's main metric against step, train and eval, from the run's metric rows.

    python -c "import tfapp.plots"  # called by tfapp.run at the end of training

Figures are plain `matplotlib.figure.Figure` objects on the Agg canvas, not pyplot: no display is needed (servers,
CI, TPU VMs), pyplot's import is skipped, and a figure can be drawn in a background thread while the
export runs (`start_curves`).
"""
import io
import threading

import tensorflow as tf


def figure(width, height, columns=1):
    """(figure, axes) on an Agg canvas; `axes` is a list when columns > 1. matplotlib is imported here, on first
    use (in tfapp-train: `warm_up` in a background thread), not with this module: start-up skips
    it (docs/performance.md#figures-behind-the-code)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, columns)
    return fig, (list(axes) if columns > 1 else axes)


def plot_curves(series, main_metric, path, title, x_axis=("optimizer step", 1)):
    """Two panels (loss; main metric), train and validation lines each, written to `path` through tf.io.gfile.
    `series(split, metric)` -> [(step, value), …] (e.g. `RunLog.series`); `x_axis`: (label, units per step), e.g.
    ("characters seen", batch × sequence length) for a language model."""
    label, per_step = x_axis
    fig, axes = figure(11, 4.2, columns=2)
    for axis, metric in zip(axes, ("loss", main_metric)):
        for split, style in (("train", dict(alpha=0.7)), ("validation", dict(marker="o", markersize=3))):
            points = series(split, metric)
            if points:
                steps, values = zip(*points)
                axis.plot([step * per_step for step in steps], values, label=split, **style)
        axis.set_xlabel(label)
        axis.set_ylabel(metric)
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    axes[0].set_yscale("log")
    fig.suptitle(title)
    save_figure(fig, path)


def start_curves(series, main_metric, path, title, x_axis=("optimizer step", 1)):
    """plot_curves in a background thread (over a snapshot of the rows); `.join()` the returned thread before
    relying on the file. An error is re-raised by `join_curves`."""
    rows = {(split, metric): series(split, metric) for split in ("train", "validation")
            for metric in ("loss", main_metric)}
    thread = threading.Thread(target=_plot_recording_error, daemon=True,
                              args=(lambda split, metric: rows[(split, metric)], main_metric, path, title, x_axis))
    thread.errors = []
    thread.start()
    return thread


def _plot_recording_error(*args):
    try:
        plot_curves(*args)
    except Exception as error:  # noqa: BLE001 - handed to the main thread by join_curves
        threading.current_thread().errors.append(error)


def join_curves(thread):
    thread.join()
    if thread.errors:
        raise thread.errors[0]


def warm_up():
    """Draws a throwaway figure: matplotlib's first figure loads fonts and caches, which a
    background thread can pay while training runs."""
    fig, axis = figure(2, 2)
    axis.plot([0, 1], [0, 1], label="x")
    axis.set_title("warm-up")
    axis.legend()
    fig.savefig(io.BytesIO(), format="png", dpi=30)


def save_figure(fig, path):
    """Writes a figure as PNG through tf.io.gfile (gs://, ram:// work)."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())
