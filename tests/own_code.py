"""A user's own code, as `--task=`, `--model=` and `--data=py:` import it (tests/tfapp/test_own_model.py):
a model function, a data function and a Task with only the fields a new task must give."""
import keras
import sklearn.datasets

import tfapp


def small_mlp(config, spec):
    """A model for any task's data: --model=tests.own_code:small_mlp (here: digits' 8×8×1 pixels, 10 classes)."""
    del config
    inputs = keras.Input(shape=(8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 16)(inputs))
    outputs = keras.layers.Dense(spec["num_classes"])(keras.layers.Dense(32, activation="relu")(x))
    return keras.Model(inputs, outputs, name="own_mlp")


def digits_arrays(options):
    """--data=py:tests.own_code:digits_arrays: (x, y) arrays; tfapp holds out options.test_fraction for test."""
    del options
    x, y = sklearn.datasets.load_digits(return_X_y=True)
    return x.reshape(-1, 64).astype("float32") / 16, y


def _dense_classifier(config, spec):
    del config
    inputs = keras.Input(shape=spec["features"]["x"][0])
    return keras.Model(inputs, keras.layers.Dense(spec["num_classes"])(inputs), name="linear")


TASK = tfapp.Task(
    name="own_digits",
    models={"linear": _dense_classifier},
    loss=lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None),
    metrics=lambda: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    main_metric="accuracy",
    default_data="py:tests.own_code:digits_arrays",
    defaults={"batch_size": 32, "train_steps": 100, "eval_every": 50, "learning_rate": 1e-2},
)
