"""`tfapp-predict`: run an exported SavedModel on a file and print JSON predictions (one object per example).

    tfapp-predict --export_dir=runs/regression-…/export/1 --input=new_house.csv
    tfapp-predict --export_dir=runs/image_folder-…/export/1 --input=cat.jpg,dog.png
    tfapp-predict --export_dir=runs/digits-…/export/1 --input=batch.npz      # array "x" (or the only array)
    tfapp-predict --export_dir=runs/language_model-…/export/1 --prompt="ROMEO:" --max_new_tokens=200 --temperature=0.8

Needs only TensorFlow: the signature's inputs say what to feed. CSV: one column per signature input (extra
columns, such as the label, are ignored); image files: their encoded bytes; npz: the array as float32.
"""
import io
import json
import os
import sys

from tfapp.cli import tf_logs  # noqa: E402

tf_logs.quiet()  # TensorFlow's C++ start-up notices stay out (--verbose shows them)

from tfapp.cli.lean_import import lean_imports  # noqa: E402

import numpy as np  # noqa: E402
with lean_imports():  # optional imports of TF and Keras (see lean_import)
    import tensorflow as tf
from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def define_flags():
    tf_logs.define_flag()
    flags.DEFINE_string("export_dir", None, "SavedModel directory (an export/<version>/ folder).")
    flags.DEFINE_string("input", None, "A .csv, .npz or image file; several image files separated by commas.")
    flags.DEFINE_string("signature", "serving_default", "Signature to call.")
    flags.DEFINE_string("prompt", None, "Language models: text to continue with the export's `generate` signature "
                        "(instead of --input); prints the prompt and the generated text.")
    flags.DEFINE_integer("max_new_tokens", 200, "--prompt: characters to generate.")
    flags.DEFINE_float("temperature", 0.8, "--prompt: sampling temperature (lower: more likely characters).")
    flags.DEFINE_integer("seed", 0, "--prompt: sampling seed; the same seed gives the same text.")


def _csv_inputs(path, specs):
    import csv
    with tf.io.gfile.GFile(path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no data rows")
    missing = [name for name in specs if name not in rows[0]]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; the model needs {', '.join(specs)}")
    out = {}
    for name, spec in specs.items():
        values = [row[name] for row in rows]
        out[name] = tf.constant(values) if spec.dtype == tf.string else \
            tf.constant([float(v) if v.strip() else np.nan for v in values], spec.dtype)
    return out


def read_inputs(path, specs):
    """{signature input name: tensor} from the file(s) at `path`."""
    paths = path.split(",")
    if all(p.lower().endswith(IMAGE_EXTENSIONS) for p in paths):
        (name,) = specs
        return {name: tf.constant([tf.io.gfile.GFile(p, "rb").read() for p in paths])}
    if path.endswith(".csv"):
        return _csv_inputs(path, specs)
    if path.endswith(".npz"):
        with tf.io.gfile.GFile(path, "rb") as f:
            content = np.load(io.BytesIO(f.read()), allow_pickle=False)
            array = content["x"] if "x" in content.files else content[content.files[0]]
        (name,) = specs
        return {name: tf.constant(array, specs[name].dtype)}
    raise ValueError(f"--input={path}: expected .csv, .npz or image files ({', '.join(IMAGE_EXTENSIONS)})")


def predict(export_dir, path, signature="serving_default"):
    """[{output name: value}, …] for every example in the input file."""
    loaded = tf.saved_model.load(export_dir)
    if signature not in loaded.signatures:
        raise ValueError(f"--signature={signature}: not in {export_dir}; has {', '.join(loaded.signatures)}")
    function = loaded.signatures[signature]
    outputs = function(**read_inputs(path, function.structured_input_signature[1]))
    outputs = {k: v.numpy().tolist() for k, v in outputs.items()}
    count = len(next(iter(outputs.values())))
    return [{k: v[i] for k, v in outputs.items()} for i in range(count)]


def generate(export_dir, prompt, max_new_tokens, temperature, seed):
    """The prompt and the text the export's `generate` signature samples after it."""
    loaded = tf.saved_model.load(export_dir)
    if "generate" not in loaded.signatures:
        raise ValueError(f"--prompt: {export_dir} has no generate signature (language_model exports have one)")
    if max_new_tokens < 0 or not temperature > 0:
        raise ValueError(f"--max_new_tokens must be >= 0 and --temperature > 0, got {max_new_tokens}, {temperature}")
    out = loaded.signatures["generate"](prompt=tf.constant(prompt), max_new_tokens=tf.constant(max_new_tokens),
                                        temperature=tf.constant(temperature, tf.float32), seed=tf.constant(seed))
    return out["text"].numpy().decode("utf-8")


def main(argv):
    del argv
    try:
        if not FLAGS.export_dir or not (FLAGS.input or FLAGS.prompt is not None):
            raise ValueError("--export_dir and --input (or --prompt) are required")
        if not tf.io.gfile.exists(os.path.join(FLAGS.export_dir, "saved_model.pb")):
            raise ValueError(f"--export_dir={FLAGS.export_dir}: no saved_model.pb there")
        if FLAGS.prompt is not None:
            print(generate(FLAGS.export_dir, FLAGS.prompt, FLAGS.max_new_tokens, FLAGS.temperature, FLAGS.seed))
            return 0
        for p in FLAGS.input.split(","):
            if not tf.io.gfile.exists(p):
                raise ValueError(f"--input: {p}: no such file")
        rows = predict(FLAGS.export_dir, FLAGS.input, FLAGS.signature)
    except ValueError as error:
        print(f"tfapp-predict: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(rows))
    return 0


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
