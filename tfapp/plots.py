"""`curves.png`: loss and the task's main metric against step, train and eval, from the run's metric rows.

    python -c "import tfapp.plots"  # called by tfapp.run at the end of training
"""
import io

import matplotlib

matplotlib.use("Agg")  # no display on servers, CI or TPU VMs
import matplotlib.pyplot as plt  # noqa: E402
import tensorflow as tf  # noqa: E402


def plot_curves(run_log, main_metric, path, title):
    """Two panels (loss; main metric), train and eval lines each, written to `path` through tf.io.gfile."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, metric in zip(axes, ("loss", main_metric)):
        for split, style in (("train", dict(alpha=0.7)), ("eval", dict(marker="o", markersize=3))):
            points = run_log.series(split, metric)
            if points:
                steps, values = zip(*points)
                axis.plot(steps, values, label=split, **style)
        axis.set_xlabel("optimizer step")
        axis.set_ylabel(metric)
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    axes[0].set_yscale("log")
    figure.suptitle(title)
    save_figure(figure, path)


def save_figure(figure, path):
    """Writes a matplotlib figure as PNG through tf.io.gfile (gs://, ram:// work) and closes it."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())
