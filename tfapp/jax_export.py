"""`--backend=jax`: the SavedModel written by the training process itself, with the task's own signatures.

    tfapp-train --backend=jax --task=digits      # export/1 is written in-process: no TensorFlow-backend process

A task's `serving(model, spec)` returns tf.functions that call `model(x, training=False)` between TensorFlow pre-
and post-processing (string lookups, softmax, a sampling loop). On the JAX backend it is handed a `ServingModel`
in place of the Keras model: calling it runs the model's stateless call converted by jax2tf (native serialization:
the program as StableHLO in an `XlaCallModule` op, lowered for the CPU and the platform that trained it) with the
weights as tf.Variables, so the signatures, their inputs and outputs are those of the TensorFlow engine's export,
and a clean TensorFlow process or TF Serving runs them. `tfapp.engines.jax_engine.write_export`'s fallback (a
TensorFlow-backend process that restores the checkpoint) remains for what this cannot do: `--tflite` (TFLite has
no XlaCallModule) and runs over several processes (their weights are not all on one host).
"""
import jax
import keras
import numpy as np
import tensorflow as tf
from jax.experimental import jax2tf

from tfapp import export, jax_loop


def _polymorphic_shape(tensor):
    """"(b, 8, 8, 1)": unknown dimensions symbolic, named by position (the batch "b", then "d1", "d2", …), so the
    inputs of one call share them (a token's id and its case feature: both [b, d1])."""
    dims = [("b" if i == 0 else f"d{i}") if d is None else str(d) for i, d in enumerate(tensor.shape.as_list())]
    return f"({', '.join(dims)})"


class ServingModel:
    """Stands in for a trained Keras model (JAX backend) inside TensorFlow serving functions: `self(x)` is the
    model's inference call as a TensorFlow op; other attributes (`input_shape`, …) are the model's."""

    def __init__(self, model, platforms):
        self._model, self._platforms = model, tuple(platforms)
        self.weights_module = tf.Module()  # what the SavedModel tracks: the weights as tf.Variables
        self.weights_module.trainable = [tf.Variable(np.asarray(v.value), trainable=False)
                                         for v in model.trainable_variables]
        self.weights_module.non_trainable = [tf.Variable(np.asarray(v.value), trainable=False)
                                             for v in model.non_trainable_variables]
        self._converted = {}

    def __getattr__(self, name):
        return getattr(self._model, name)

    def _infer(self, trainable, non_trainable, inputs):
        outputs, _ = self._model.stateless_call(trainable, non_trainable, inputs,
                                                   **jax_loop.training_kwargs(self._model, False))
        return outputs

    @tf.autograph.experimental.do_not_convert  # a task's serving tf.function must not rewrite JAX (12 s wasted)
    def __call__(self, inputs, training=False):
        del training  # always inference
        shapes = tf.nest.map_structure(_polymorphic_shape, inputs)
        key = str((shapes, tf.nest.map_structure(lambda t: t.dtype.name, inputs)))
        if key not in self._converted:
            self._converted[key] = jax2tf.convert(self._infer, polymorphic_shapes=[None, None, shapes],
                                                  native_serialization_platforms=self._platforms,
                                                  with_gradient=False)
        module = self.weights_module
        return self._converted[key](list(module.trainable), list(module.non_trainable), inputs)

    def load_weights_of(self, model):
        """Copies the weights of `model` (the trained one) into the tf.Variables."""
        for variables, sources in ((self.weights_module.trainable, model.trainable_variables),
                                   (self.weights_module.non_trainable, model.non_trainable_variables)):
            for variable, source in zip(variables, sources):
                variable.assign(np.asarray(source.value))


def platforms():
    """The platforms the exported program is lowered for: the CPU (where it is usually served) and, if another,
    the one that trained it (JAX names GPUs "cuda" or "rocm" here)."""
    platform = jax.devices()[0].platform
    if platform == "gpu":
        platform = jax.devices()[0].client.platform_version.lower().startswith("rocm") and "rocm" or "cuda"
    return ("cpu",) if platform == "cpu" else ("cpu", platform)


def _tensorflow_resources(resource):
    """What of `resource` (a `_keep` entry of a task's signatures) TensorFlow must save: itself if it is a TF
    trackable, else (a Keras lookup layer on the JAX backend, which is not) the TF lookup tables it holds."""
    if isinstance(resource, tf.__internal__.tracking.Trackable):
        return [resource]
    layers = resource._flatten_layers() if isinstance(resource, keras.layers.Layer) else [resource]
    return [value for layer in layers for value in vars(layer).values()
            if isinstance(value, tf.__internal__.tracking.Trackable)]


class PreparedExport:
    """The serving signatures traced (and the model converted) ahead, in a background thread while training goes
    on; `write` then copies the trained weights in and writes the files (the TensorFlow engine's
    `tfapp.export.PreparedExport`, for the JAX backend)."""

    def __init__(self, model, serving, spec=None):
        self.serving_model = ServingModel(model, platforms())
        signatures = dict(serving(self.serving_model, spec))
        self.keep = signatures.pop("_keep", [])
        for function in signatures.values():
            function.get_concrete_function()
        self.signatures = signatures

    def write(self, trained_model, export_base):
        """Writes `<export_base>/<version>/` with the weights of `trained_model`; returns that path."""
        self.serving_model.load_weights_of(trained_model)
        tracked = [self.serving_model.weights_module, *(t for r in self.keep for t in _tensorflow_resources(r))]
        return export.write_archive(tracked, self.signatures, export_base)
