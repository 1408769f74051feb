"""`tfapp-sweep`: run a grid of tfapp-train settings, K processes at a time, then compare them.

    tfapp-sweep --task=digits --grid="learning_rate=1e-3,3e-3;batch_size=64,128" --parallel=2
    tfapp-sweep ... same command again        # skips finished runs, resumes interrupted ones

Every tfapp-train flag given here (other than --model_dir) is passed to every run; --grid names the flags that
vary. Runs go to <sweep_dir>/<flag-value_…>/, their logs to <sweep_dir>/logs/, and the comparison
(comparison.csv, comparison.png) to <sweep_dir>. `tensorboard --logdir=<sweep_dir>` shows the HParams view.
"""
import datetime
import os
import sys

from tfapp.cli import tf_logs  # noqa: E402

tf_logs.quiet()  # TensorFlow's C++ start-up notices stay out (--verbose shows them; runs inherit it)

from absl import app, flags  # noqa: E402

from tfapp import flags as tfapp_flags  # noqa: E402
from tfapp import sweep, tasks  # noqa: E402

FLAGS = flags.FLAGS
OWN_FLAGS = ("grid", "parallel", "sweep_dir")


def define_flags():
    tfapp_flags.define_flags()
    tf_logs.define_flag()  # --verbose
    flags.DEFINE_string("grid", None, "Flags to vary: 'FLAG=V1,V2;FLAG2=V3,V4' (cartesian product).")
    flags.DEFINE_integer("parallel", 1, "Runs at a time (at most the number of CPU cores).")
    flags.DEFINE_string("sweep_dir", None, "Where the runs go; default sweeps/<task>-<YYYYmmdd-HHMMSS>.")


def main(argv):
    del argv
    train_flags = [name for name in tfapp_flags.train_flag_names() if name != "model_dir"]
    try:
        if not FLAGS.grid:
            raise ValueError("--grid is required, e.g. --grid='learning_rate=1e-3,3e-3;batch_size=64,128'")
        grid = sweep.parse_grid(FLAGS.grid, set(train_flags))
        if FLAGS.parallel < 1:
            raise ValueError(f"--parallel must be >= 1, got {FLAGS.parallel}")
        task = tasks.get_task(FLAGS.task)
        task = task.for_model(FLAGS.model or task.default_model)
    except ValueError as error:
        print(f"tfapp-sweep: error: {error}", file=sys.stderr)
        return 2
    parallel = min(FLAGS.parallel, os.cpu_count() or 1)
    sweep_dir = FLAGS.sweep_dir or f"sweeps/{FLAGS.task}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    varied = {name for name, _ in grid}
    fixed = [f"--{name}={FLAGS[name].value}" for name in train_flags
             if FLAGS[name].present and name not in varied and FLAGS[name].value is not None]
    text, failed = sweep.sweep(grid, sweep_dir, fixed, parallel, task.main_metric)
    print(text)
    print(f"sweep directory: {sweep_dir}")
    if failed:
        print(f"tfapp-sweep: error: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
