"""`tfapp-compare RUN_DIR…`: a table of finished runs (printed, and comparison.csv) and comparison.png.

    tfapp-compare runs/digits-* --output_dir=reports/
"""
import sys

from tfapp.cli import tf_logs  # noqa: E402

tf_logs.quiet()  # TensorFlow's C++ start-up notices stay out (--verbose shows them; runs inherit it)

from absl import app, flags  # noqa: E402

from tfapp import compare  # noqa: E402

FLAGS = flags.FLAGS


def main(argv):
    try:
        if len(argv) < 2:
            raise ValueError("give one or more run directories: tfapp-compare RUN_DIR…")
        _, text = compare.compare(argv[1:], FLAGS.output_dir)
    except ValueError as error:
        print(f"tfapp-compare: error: {error}", file=sys.stderr)
        return 2
    print(text)
    print(f"wrote {FLAGS.output_dir}/comparison.csv and comparison.png")
    return 0


def run():
    flags.DEFINE_string("output_dir", ".", "Where comparison.csv and comparison.png go.")
    tf_logs.define_flag()
    app.run(main)


if __name__ == "__main__":
    run()
