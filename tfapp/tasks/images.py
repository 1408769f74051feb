"""Image tasks: `image_classification` (arrays of small images: digits, MNIST, CIFAR-10) and `image_folder`
(one folder per class, files decoded in the pipeline; cats vs dogs style).

    tfapp-train --task=image_classification --model=resnet20 --data=tfds:cifar10 --data_dir=/data/tfds
    tfapp-train --task=image_folder --data=images:/data/pets --image_size=96 --weights=/models/mobilenet_v2.h5

Pixel scaling happens inside the model (raw 0..max values in, `spec["x_max"]`), so exports serve raw pixels;
`image_folder` exports take encoded image bytes. Models use keras.layers only (they run on the JAX backend too).
"""
import keras
import tensorflow as tf

from tfapp.tasks.task import Task, class_outputs


def preprocess(example):
    """{"x": [H, W] or [H, W, C] any dtype, "y"} -> (float32 [H, W, C], int32); works on batches when C is given."""
    image = tf.cast(example["x"], tf.float32)
    return image, tf.cast(example["y"], tf.int32)


def add_channel(batch):
    """Batched: {"x": [B, H, W] or [B, H, W, C], "y": [B]} -> (float32 [B, H, W, C], int32 [B])."""
    images, labels = preprocess(batch)
    return (images if images.shape.rank == 4 else images[..., None]), labels


def _image_shape(spec):
    shape = tuple(spec["features"]["x"][0])
    return shape if len(shape) == 3 else (*shape, 1)


def _inputs(spec, name="pixels"):
    inputs = keras.Input(shape=_image_shape(spec), name=name)
    return inputs, keras.layers.Rescaling(1.0 / spec.get("x_max", 255.0))(inputs)


def _head(x, spec, name):
    del name
    return keras.layers.Dense(spec["num_classes"], name="logits", dtype="float32")(x)  # float32 under mixed


def build_cnn(config, spec, widths=(32, 64), dense=128):
    """Conv-conv-pool blocks and a dense head (the 'small CNN')."""
    del config
    inputs, x = _inputs(spec)
    for width in widths:
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x) if x.shape[1] >= 4 else x
    x = keras.layers.GlobalAveragePooling2D()(x) if x.shape[1] > 4 else keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.25)(keras.layers.Dense(dense, activation="relu")(x))
    return keras.Model(inputs, _head(x, spec, "cnn"), name="cnn")


def build_mlp(config, spec):
    del config
    inputs, x = _inputs(spec)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(256, activation="relu")(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    return keras.Model(inputs, _head(x, spec, "mlp"), name="mlp")


def _residual(x, width, stride):
    shortcut = x
    y = keras.layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False)(x)
    y = keras.layers.ReLU()(keras.layers.BatchNormalization()(y))
    y = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(y)
    y = keras.layers.BatchNormalization()(y)
    if stride != 1 or shortcut.shape[-1] != width:
        shortcut = keras.layers.Conv2D(width, 1, strides=stride, use_bias=False)(shortcut)
        shortcut = keras.layers.BatchNormalization()(shortcut)
    return keras.layers.ReLU()(keras.layers.Add()([y, shortcut]))


def build_resnet20(config, spec):
    """ResNet-20 for 32×32 inputs (He et al. 2016, CIFAR variant): 3 stages × 3 blocks, widths 16/32/64."""
    del config
    inputs, x = _inputs(spec)
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    for stage, width in enumerate((16, 32, 64)):
        for block in range(3):
            x = _residual(x, width, 2 if stage > 0 and block == 0 and x.shape[1] > 2 else 1)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, _head(x, spec, "resnet20"), name="resnet20")


def build_vgg(config, spec):
    """VGG-style small convnet for image folders: 3 blocks (32, 64, 128), global pooling, dense head."""
    return build_cnn(config, spec, widths=(32, 64, 128), dense=128)


def build_transfer(config, spec):
    """MobileNetV2 features from a local Keras Applications weights file (`--weights`, no download), frozen,
    plus a new classification head."""
    if not config.weights:
        raise ValueError("--model=transfer needs --weights=PATH to a local MobileNetV2 'no top' .h5 weights file")
    inputs = keras.Input(shape=_image_shape(spec), name="pixels")
    x = keras.layers.Rescaling(2.0 / spec.get("x_max", 255.0), offset=-1.0)(inputs)  # MobileNetV2 wants -1..1
    base = keras.applications.MobileNetV2(include_top=False, weights=config.weights, input_shape=_image_shape(spec))
    base.trainable = False
    x = keras.layers.GlobalAveragePooling2D()(base(x, training=False))
    return keras.Model(inputs, _head(x, spec, "transfer"), name="transfer")


def loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)


def metrics():
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def serve_pixels(model, spec=None):
    """serving_default: raw pixels float32 [batch, H, W(, C)] -> class_id, probabilities."""
    shape = model.input_shape[1:]

    @tf.function(input_signature=[tf.TensorSpec([None, *shape], tf.float32, name="pixels")])
    def serve(pixels):
        return class_outputs(model(pixels, training=False))

    @tf.function(input_signature=[tf.TensorSpec([None, *shape], tf.float32, name="pixels")])
    def logits(pixels):
        return {"logits": model(pixels, training=False)}

    return {"serving_default": serve, "predict_logits": logits}


def serve_encoded(model, spec=None):
    """serving_default: encoded image bytes (jpeg/png/bmp/gif) [batch] -> class_id, probabilities; decoding and
    resizing as in the training pipeline."""
    height, width, channels = model.input_shape[1:]

    def decode(data):
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32), [height, width])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(image_bytes):
        pixels = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([height, width, channels]))
        return class_outputs(model(pixels, training=False))

    return {"serving_default": serve, **{k: v for k, v in serve_pixels(model).items() if k != "serving_default"}}


IMAGE_CLASSIFICATION = Task(
    name="image_classification",
    description="small images as arrays (digits, tfds:mnist/fashion_mnist/cifar10, npz:)",
    default_data="embedded:digits",
    models={"cnn": build_cnn, "resnet20": build_resnet20, "mlp": build_mlp},
    loss=loss,
    metrics=metrics,
    main_metric="accuracy",
    preprocess=add_channel,
    vectorized_preprocess=True,
    serving=serve_pixels,
    defaults={"batch_size": 64, "train_steps": 800, "eval_every": 200, "learning_rate": 2e-3},
    smoke={"batch_size": 32, "train_steps": 20, "eval_every": 10, "autotune_seconds": 0.5},
)

IMAGE_FOLDER = Task(
    name="image_folder",
    description="one folder per class of jpeg/png/bmp/gif files (images:DIR, tfds:cats_vs_dogs)",
    default_data="images:./images",
    models={"vgg": build_vgg, "cnn": build_cnn, "transfer": build_transfer},
    loss=loss,
    metrics=metrics,
    main_metric="accuracy",
    preprocess=preprocess,
    vectorized_preprocess=False,
    serving=serve_encoded,
    defaults={"batch_size": 32, "train_steps": 600, "eval_every": 100, "learning_rate": 1e-3},
    smoke={"batch_size": 16, "train_steps": 10, "eval_every": 5, "autotune_seconds": 0.5},
)
