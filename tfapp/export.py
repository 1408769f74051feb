"""SavedModel export in TF Serving's layout: `<export_base>/<version>/`, integer versions, never overwritten.

    saved_model_cli show --all --dir runs/LATEST/export/1

The model is copied into a fresh, strategy-free Keras model first (same weights), so a model trained under
Mirrored or TPU strategies exports the same plain variables. Signatures come from the task (`task.serving`).
"""
import tensorflow as tf

from tfapp import report


def next_version(export_base):
    """1 + the largest integer version folder already in `export_base` (1 when empty)."""
    if not tf.io.gfile.exists(export_base):
        return 1
    versions = [int(name.strip("/")) for name in tf.io.gfile.listdir(export_base) if name.strip("/").isdigit()]
    return max(versions, default=0) + 1


def export_saved_model(model, build_model, serving, export_base):
    """Writes `serving(copy_of_model)` signatures to `<export_base>/<version>/`; returns that path."""
    plain = build_model()
    plain.set_weights(model.get_weights())
    signatures = serving(plain)
    module = tf.Module()
    module.model = plain
    module.signatures_fns = signatures
    path = report.join(export_base, str(next_version(export_base)))
    tf.saved_model.save(module, path, signatures=signatures)
    return path
