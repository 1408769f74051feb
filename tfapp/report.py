"""Run records: `metrics.csv` rows and TensorBoard scalars as training goes, `report.json` at the end.

    python -c "import json; print(json.load(open('runs/LATEST/report.json'))['final_metrics'])"

Every file goes through tf.io.gfile, so a `gs://` (or `ram://`) model_dir works like a local one.
"""
import csv
import io
import json
import os
import platform

import tensorflow as tf

CSV_HEADER = ("step", "split", "metric", "value")


def join(*parts):
    """Path join that keeps URL schemes (gs://, ram://) intact."""
    return os.path.join(*parts)


class RunLog:
    """Collects (step, split, metric, value) rows; TensorBoard scalars as they arrive, metrics.csv on `flush()`."""

    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.rows = []
        self._writers = {}

    def _writer(self, split):
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(join(self.model_dir, "tensorboard", split))
        return self._writers[split]

    def log(self, step, split, values):
        """Records {metric: value} for `split` ("train", "eval") at `step`."""
        self.rows.extend((int(step), split, name, float(value)) for name, value in values.items())
        with self._writer(split).as_default(step=int(step)):
            for name, value in values.items():
                tf.summary.scalar(name, float(value))

    def flush(self):
        """Rewrites metrics.csv with every row so far (gfile cannot append on every filesystem)."""
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([CSV_HEADER, *self.rows])
        with tf.io.gfile.GFile(join(self.model_dir, "metrics.csv"), "w") as f:
            f.write(buffer.getvalue())
        for writer in self._writers.values():
            writer.flush()

    def series(self, split, metric):
        """[(step, value), …] of one metric, for plots."""
        return [(step, value) for step, s, name, value in self.rows if s == split and name == metric]

    def close(self):
        self.flush()
        for writer in self._writers.values():
            writer.close()


def device_description(strategy):
    """e.g. "CPU (AMD EPYC, 2 cores)" or "GPU (NVIDIA A100) x 2": what the run's replicas ran on."""
    for kind in ("TPU", "GPU"):
        physical = tf.config.list_physical_devices(kind)
        if physical:
            details = tf.config.experimental.get_device_details(physical[0])
            return f"{kind} ({details.get('device_name', kind)}) x {strategy.num_replicas_in_sync}"
    return f"CPU ({cpu_name()}, {os.cpu_count()} cores)"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_json(path, content):
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(content, indent=2, sort_keys=True) + "\n")
