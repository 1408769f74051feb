"""`tfapp-data convert`: prepare a dataset once as TFRecord shards or a TFDS dataset (then copy it to a TPU VM).

    tfapp-data convert --data=images:/data/pets --out=/data/pets_tfrecord --format=tfrecord
    tfapp-data convert --data=embedded:digits --out=/data/tfds --format=tfds --name=digits

Reads the source with the same flags as tfapp-train (--label_column, --image_size, …). Bad input: one line on
stderr naming the flag or file, exit status 2, nothing written.
"""
import sys

from tfapp.cli import tf_logs  # noqa: E402

tf_logs.quiet()  # TensorFlow's C++ start-up notices stay out (--verbose shows them)

from tfapp.cli.lean_import import lean_imports  # noqa: E402

with lean_imports():  # optional imports of TF and Keras (see lean_import)
    import tensorflow as tf
    from absl import app, flags, logging

    import pipelines
    from pipelines import convert
    from tfapp import flags as tfapp_flags

FLAGS = flags.FLAGS


def define_flags():
    tf_logs.define_flag()
    tfapp_flags.define_data_flags()
    flags.DEFINE_string("out", None, "Output directory (local or gs://); for tfds the data_dir to write into.")
    flags.DEFINE_enum("format", "tfrecord", ["tfrecord", "tfds"], "Output format.")
    flags.DEFINE_string("name", None, "TFDS dataset name (default: from the data location).")
    flags.DEFINE_integer("shards", 4, "TFRecord shards per split.")


def main(argv):
    if len(argv) != 2 or argv[1] != "convert":
        raise app.UsageError("usage: tfapp-data convert --data=KIND:LOCATION --out=DIR [--format=tfrecord|tfds]")
    logging.set_verbosity(logging.WARNING)
    try:
        if not FLAGS.data or not FLAGS.out:
            raise ValueError("--data and --out are required")
        if FLAGS.format == "tfrecord" and tf.io.gfile.exists(FLAGS.out) and tf.io.gfile.listdir(FLAGS.out):
            raise ValueError(f"--out={FLAGS.out}: exists and is not empty; choose a new directory")
        source = pipelines.load(FLAGS.data, tfapp_flags.load_options_from_flags())
        if FLAGS.format == "tfrecord":
            counts = convert.write_tfrecord(source, FLAGS.out, FLAGS.shards)
            hint = f"--data='tfrecord:{FLAGS.out}/*.tfrecord'"
        else:
            name = FLAGS.name or convert.tfds_name(FLAGS.data.partition(":")[2])
            counts = convert.write_tfds(source, FLAGS.out, name)
            hint = f"--data=tfds:{name} --data_dir={FLAGS.out}"
    except ValueError as error:
        print(f"tfapp-data: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {counts} examples to {FLAGS.out}; train with {hint}")
    return 0


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
