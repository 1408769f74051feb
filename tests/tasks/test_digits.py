"""The digits task: preprocess eager and in tf.data, models serialise, serving takes raw pixels."""
import keras
import numpy as np
import tensorflow as tf

import pipelines
from tfapp import tasks

TASK = tasks.get_task("digits")


def test_preprocess_eager_equals_inside_map():
    source = pipelines.load(TASK.default_data)
    example = next(iter(source.splits["train"]()))
    eager = TASK.preprocess(example)
    mapped = next(iter(source.splits["train"]().map(TASK.preprocess)))
    assert eager[0].shape == (8, 8, 1) and eager[0].dtype == tf.float32
    np.testing.assert_array_equal(eager[0], mapped[0])
    assert int(eager[1]) == int(mapped[1])


def test_every_model_round_trips_through_get_config():
    spec = pipelines.load(TASK.default_data).spec
    for name, build in TASK.models.items():
        model = build(None, spec)
        clone = keras.Model.from_config(model.get_config())
        clone.set_weights(model.get_weights())
        x = np.random.default_rng(0).uniform(0, 16, (3, 8, 8, 1)).astype("float32")
        np.testing.assert_allclose(model(x), clone(x), rtol=1e-5, atol=1e-5, err_msg=name)
        assert model.output_shape == (None, 10)


def test_serving_takes_raw_pixels():
    model = TASK.models["mlp"](None, pipelines.load(TASK.default_data).spec)
    outputs = TASK.serving(model)["serving_default"](tf.zeros([2, 8, 8]))
    assert outputs["class_id"].shape == (2,)
    np.testing.assert_allclose(tf.reduce_sum(outputs["probabilities"], axis=-1), [1.0, 1.0], rtol=1e-5)
