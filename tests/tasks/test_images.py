"""Image tasks on real offline data: image_classification on digits (>= 0.98), image_folder on a folder of PNGs
written from digits (two classes, upscaled; >= 0.97), encoded-bytes serving, augmentation."""
import functools

import numpy as np
import pytest
import tensorflow as tf

import pipelines
from pipelines import augment
from tests import fixtures
from tfapp import config as config_lib
from tfapp import run, tasks


def _run(tmp_path, **values):
    return run.run(config_lib.Config(strategy="default", model_dir=str(tmp_path / "run"), **values).resolved())


def test_image_classification_digits_accuracy(tmp_path):
    report = _run(tmp_path, task="image_classification", steps_per_loop="16", jit_compile="false", export=False)
    assert report["final_metrics"]["accuracy"] >= 0.98, report["final_metrics"]


def test_image_folder_of_pngs_accuracy_and_bytes_serving(tmp_path):
    folder = fixtures.digit_image_folder(str(tmp_path / "digits"), image_format="png")
    # XLA end to end on files decoded in the pipeline (what a TPU would run)
    report = _run(tmp_path, task="image_folder", data=f"images:{folder}", image_size=24, train_steps=150,
                  eval_every=50, steps_per_loop="10", jit_compile="true")
    assert report["jit_compile"] is True
    assert report["final_metrics"]["accuracy"] >= 0.97, report["final_metrics"]
    serve = tf.saved_model.load(report["export_path"]).signatures["serving_default"]
    files = [f"{folder}/0/0.png", f"{folder}/1/0.png"]
    out = serve(image_bytes=tf.constant([open(f, "rb").read() for f in files]))
    assert out["class_id"].numpy().tolist() == [0, 1]


def test_resnet20_and_mlp_build_and_train_a_step():
    task = tasks.get_task("image_classification")
    spec = {"features": {"x": ((32, 32, 3), "uint8")}, "num_classes": 10, "x_max": 255.0}
    for name in ("resnet20", "mlp", "cnn"):
        model = task.models[name](None, spec)
        assert model.output_shape == (None, 10)
        assert model(np.zeros((2, 32, 32, 3), "float32")).shape == (2, 10)


def test_transfer_without_weights_is_a_clear_error(tmp_path):
    folder = fixtures.digit_image_folder(str(tmp_path / "d"), classes=(0, 1))
    config = config_lib.Config(task="image_folder", model="transfer", data=f"images:{folder}",
                               model_dir=str(tmp_path / "r")).resolved(smoke=True)
    with pytest.raises(ValueError, match="--model=transfer needs --weights=PATH"):
        run.prepare(config)


def test_augment_keeps_shape_and_changes_pixels_eagerly_and_in_map():
    images = tf.reshape(tf.range(2 * 8 * 8 * 1, dtype=tf.float32), [2, 8, 8, 1])
    out = augment.flip_and_crop(images, [0, 1], seed=1)
    assert out.shape == images.shape
    single = augment.flip_and_crop(images[0], 0, seed=1)
    assert single.shape == (8, 8, 1)
    np.testing.assert_array_equal(single, out[0])  # keyed by (seed, position) only: batched or not, the same draw
    mapped = next(iter(tf.data.Dataset.from_tensors(images).map(lambda x: augment.flip_and_crop(x, [0, 1], seed=1))))
    np.testing.assert_array_equal(mapped, out)
    assert any(not np.array_equal(augment.flip_and_crop(images, [s, s + 1], seed=1), images) for s in range(5))


@pytest.mark.parametrize("arrays", [False, True], ids=["batched_map", "gathered_blocks"])
def test_augmented_pipeline_resumed_at_a_step_draws_what_an_uninterrupted_one_draws(arrays):
    source = pipelines.load("embedded:digits")
    task = tasks.get_task("image_classification")
    flip = functools.partial(augment.flip_and_crop, seed=3)

    def batches(skip, count):
        dataset = pipelines.train_dataset(source.splits["train"], task.preprocessor(source.spec), 32, seed=0, vectorized=True, skip_steps=skip,
                                          arrays=source.arrays["train"] if arrays else None, augment=flip)
        return [images.numpy() for images, _ in dataset.take(count)]

    straight, resumed = batches(0, 12), batches(7, 5)
    for a, b in zip(straight[7:], resumed):
        np.testing.assert_array_equal(a, b)
    plain = pipelines.train_dataset(source.splits["train"], task.preprocessor(source.spec), 32, seed=0, vectorized=True)
    assert not np.array_equal(next(iter(plain))[0].numpy(), straight[0])  # it did augment


def test_augment_flag_is_for_image_tasks_only(tmp_path):
    config = config_lib.Config(task="regression", augment=True, model_dir=str(tmp_path / "r")).resolved(smoke=True)
    with pytest.raises(ValueError, match="--augment: only image tasks"):
        run.prepare(config)
    source = pipelines.load("embedded:digits")
    assert source.spec["x_max"] == 16.0


def test_transfer_from_a_local_weights_file(tmp_path):
    """A MobileNetV2 'no top' weights file written here stands in for a downloaded one: loading stays offline."""
    import keras
    weights = str(tmp_path / "mobilenet_v2_notop.weights.h5")
    keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3)).save_weights(weights)
    folder = fixtures.digit_image_folder(str(tmp_path / "d"), classes=(0, 1))
    config = config_lib.Config(task="image_folder", model="transfer", data=f"images:{folder}", image_size=32,
                               image_channels=3, weights=weights, strategy="default", steps_per_loop="5",
                               jit_compile="false", export=False, model_dir=str(tmp_path / "r")).resolved(smoke=True)
    experiment = run.prepare(config)
    frozen = [layer for layer in experiment.model.layers if not layer.trainable]
    assert frozen and experiment.model.count_params() > 2_000_000
    assert len(experiment.model.trainable_weights) == 2  # only the new head trains
    report = run.train(experiment)
    assert report["steps"] == 10
