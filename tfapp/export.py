"""SavedModel export in TF Serving's layout: `<export_base>/<version>/`, integer versions, never overwritten.

    saved_model_cli show --all --dir runs/LATEST/export/1
    tfapp-export --model_dir=runs/LATEST --tflite      # a new version from the last checkpoint, plus model.tflite

The model is copied into a fresh, strategy-free Keras model first (same weights), so a model trained under
Mirrored or TPU strategies exports the same plain variables. Signatures come from the task (`task.serving`).
"""
import re
import warnings

import keras
import numpy as np
import tensorflow as tf

from tfapp import report


def next_version(export_base):
    """1 + the largest integer version folder already in `export_base` (1 when empty)."""
    if not tf.io.gfile.exists(export_base):
        return 1
    versions = [int(name.strip("/")) for name in tf.io.gfile.listdir(export_base) if name.strip("/").isdigit()]
    return max(versions, default=0) + 1


class PreparedExport:
    """A strategy-free copy of the model with its signature functions traced, waiting for the trained weights:
    `prepare` can run while training goes on (in a background thread: tracing is Python work, training mostly
    C++), and `write` then only copies the weights and writes the files."""

    def __init__(self, build_model, serving, spec=None):
        self.model = build_model()
        signatures = dict(serving(self.model, spec))
        self.keep = signatures.pop("_keep", [])
        for function in signatures.values():
            function.get_concrete_function()  # tracing calls (and so builds) the layers in `keep`
        self.signatures = signatures

    def write(self, trained_model, export_base):
        """Copies `trained_model`'s weights in and writes `<export_base>/<version>/`; returns that path.
        Written with `keras.export.ExportArchive`, which tracks Keras variables so that the TFLite converter reads
        them too (a plain `tf.saved_model.save` of a module holding the model reloads fine in TF but converts to
        TFLite with garbage weights on TF 2.21 / Keras 3.15)."""
        self.model.set_weights(trained_model.get_weights())
        return write_archive([self.model, *self.keep], self.signatures, export_base)


def write_archive(tracked, signatures, export_base):
    """Writes `signatures` ({name: traced tf.function}) with the objects in `tracked` (models, layers, TF
    resources they use) to `<export_base>/<next version>/` through `keras.export.ExportArchive`; returns the path."""
    archive = keras.export.ExportArchive()
    for resource in tracked:
        archive.track(resource)
    for name, function in signatures.items():
        archive.add_endpoint(name, function)
    path = report.join(export_base, str(next_version(export_base)))
    archive.write_out(path, verbose=False)
    return path


def export_saved_model(model, build_model, serving, export_base, spec=None):
    """Writes `serving(copy_of_model, spec)` signatures to `<export_base>/<version>/`; returns that path.

    A `"_keep"` entry of the signatures dict lists objects the functions use that must be saved with them
    (e.g. a TextVectorization's lookup table)."""
    return PreparedExport(build_model, serving, spec).write(model, export_base)


TFLITE_FILE = "model.tflite"


class TFLiteError(ValueError):
    """The signature needs operations that TFLite's built-in op set lacks."""


def _interpreter(content):
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that it moves to the ai-edge-litert package
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_content=content)


def check_tflite_parity(content, function, seed=0):
    """Largest |TFLite - SavedModel| over the outputs, on random inputs of the signature's shapes (batch 2)."""
    rng = np.random.default_rng(seed)
    _, specs = function.structured_input_signature
    inputs = {name: rng.uniform(0, 1, [2 if d is None else d for d in spec.shape.as_list()]).astype(
        spec.dtype.as_numpy_dtype) for name, spec in specs.items()}
    expected = {k: v.numpy() for k, v in function(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
    runner = _interpreter(content).get_signature_runner("serving_default")
    actual = runner(**inputs)
    return max(float(np.max(np.abs(np.asarray(actual[k], np.float64) - np.asarray(v, np.float64)) /
                         (1.0 + np.abs(np.asarray(v, np.float64))))) for k, v in expected.items())


def export_tflite(saved_model_path, signature="serving_default", tolerance=1e-3):
    """Converts one signature of a SavedModel to `<saved_model_path>/model.tflite` with TFLite's built-in ops
    (what LiteRT runs on every device), after checking that TFLite computes what the SavedModel does on random
    inputs; returns its path. String inputs (text, NER, recommendation, image bytes) are refused: TFLite's
    built-in set has no string processing (TF "select" ops would be needed; stock interpreters lack them)."""
    function = tf.saved_model.load(saved_model_path).signatures[signature]
    _, specs = function.structured_input_signature
    strings = [name for name, spec in specs.items() if spec.dtype == tf.string]
    if strings:
        raise TFLiteError(f"--tflite: {signature} takes strings ({', '.join(strings)}); TFLite's built-in ops have "
                          "no string processing: serve the SavedModel instead")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_path, signature_keys=[signature])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        content = converter.convert()
    except Exception as error:  # ConverterError, with the unsupported ops listed on its later lines
        ops = sorted(set(re.findall(r"'tf\.(\w+)'", str(error)))) or ["see the converter log"]
        raise TFLiteError(f"--tflite: {signature} needs ops outside TFLite's built-in set ({', '.join(ops[:6])}); "
                          "serve the SavedModel instead") from None
    difference = check_tflite_parity(content, function)
    if not difference <= tolerance:
        raise TFLiteError(f"--tflite: the converted {signature} differs from the SavedModel by {difference:.3g} "
                          f"(relative) on random inputs; not written")
    path = report.join(saved_model_path, TFLITE_FILE)
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(content)
    return path
