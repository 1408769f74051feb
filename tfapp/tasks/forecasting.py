"""`forecasting`: the next `--horizon` values of a time series from its last `--window` values.

    tfapp-train --task=forecasting                                   # embedded:co2, monthly Mauna Loa CO2
    tfapp-train --task=forecasting --data=csv:sales.csv --time_column=date --value_column=units \\
        --window=28 --horizon=7 --season=7 --model=gru

Windows come from `pipelines/series.py` (chronological split: the test windows forecast the last
`--test_fraction` of the series). The models see the window relative to its last value, scaled by the standard
deviation of the training series' one-step changes, and predict the change from that value; the output is in
the series' own units. The seasonal-naive forecast (the value one season earlier) and the naive one (the last
value) are computed on the same test windows and reported under `baselines`; the README compares them.
Models: LSTM, GRU, 1-D CNN. `serving_default` takes a window of raw values.
"""
import keras
import numpy as np
import tensorflow as tf

from tfapp.tasks.task import Task


def preprocess(batch):
    """Batched: {"x": [B, window], "y": [B, horizon]} -> (float32 [B, window], float32 [B, horizon])."""
    return tf.cast(batch["x"], tf.float32), tf.cast(batch["y"], tf.float32)


class Relative(keras.layers.Layer):
    """[B, window] -> [B, window, 1]: values minus the window's last value, divided by `scale`."""

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, window):
        return ((window - window[:, -1:]) / self.scale)[..., None]


class FromLast(keras.layers.Layer):
    """(changes [B, horizon], window [B, window]) -> forecasts: last value + scale × change."""

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, changes, window):
        return window[:, -1:] + self.scale * keras.ops.cast(changes, window.dtype)


def _build(spec, body, name):
    window = keras.Input(shape=(spec["window"],), name="window")
    x = body(Relative(spec["diff_std"], name="relative")(window))
    changes = keras.layers.Dense(spec["horizon"], name="changes", dtype="float32")(x)
    return keras.Model(window, FromLast(spec["diff_std"], name="forecast", dtype="float32")(changes, window),
                       name=name)


def build_lstm(config, spec):
    del config
    # unroll: a fixed, short window; the unrolled step converts to TFLite built-ins (no TensorList loop)
    return _build(spec, keras.layers.LSTM(32, unroll=True), "forecast_lstm")


def build_gru(config, spec):
    del config
    return _build(spec, keras.layers.GRU(32, unroll=True), "forecast_gru")


def build_cnn(config, spec):
    del config

    def body(x):
        x = keras.layers.Conv1D(32, 3, padding="causal", activation="relu")(x)
        x = keras.layers.Conv1D(32, 3, padding="causal", dilation_rate=2, activation="relu")(x)
        return keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(x))

    return _build(spec, body, "forecast_cnn")


def seasonal_naive(x, horizon, season):
    """Forecast [n, horizon] from windows x [n, window]: the value one (or more) seasons before each target."""
    window = x.shape[1]
    if season > window:
        raise ValueError(f"--season={season} is longer than --window={window}: the seasonal-naive forecast needs "
                         f"one season of history in each window")
    columns = [window - season * int(np.ceil((k + 1) / season)) + k for k in range(horizon)]
    return x[:, columns]


def baselines(source, config):
    """Seasonal-naive and naive MAE/RMSE on the test windows."""
    x, y = (np.asarray(source.arrays["test"][k], np.float64) for k in ("x", "y"))
    season = config.season
    forecasts = {f"seasonal_naive_{season}": seasonal_naive(x, y.shape[1], season),
                 "naive_last_value": np.repeat(x[:, -1:], y.shape[1], axis=1)}
    out = {}
    for name, forecast in forecasts.items():
        out[f"{name}_mae"] = float(np.mean(np.abs(forecast - y)))
        out[f"{name}_rmse"] = float(np.sqrt(np.mean((forecast - y) ** 2)))
    return out


def serving(model, spec=None):
    """serving_default: window float32 [batch, window] -> forecast [batch, horizon]."""
    window = model.input_shape[1]

    @tf.function(input_signature=[tf.TensorSpec([None, window], tf.float32, name="window")])
    def serve(values):
        return {"forecast": model(values, training=False)}

    return {"serving_default": serve}


TASK = Task(
    name="forecasting",
    description="next --horizon values of a csv: series (--time_column, --value_column); default embedded:co2",
    default_data="embedded:co2",
    models={"lstm": build_lstm, "gru": build_gru, "cnn": build_cnn},
    loss=lambda: keras.losses.MeanSquaredError(reduction=None),
    metrics=lambda: [keras.metrics.MeanAbsoluteError(name="mae"), keras.metrics.RootMeanSquaredError(name="rmse")],
    main_metric="mae",
    main_metric_mode="min",
    preprocess=preprocess,
    vectorized_preprocess=True,
    serving=serving,
    defaults={"batch_size": 32, "train_steps": 1500, "eval_every": 250, "learning_rate": 3e-3, "window": 24,
              "horizon": 1, "season": 12},
    smoke={"batch_size": 16, "train_steps": 20, "eval_every": 10, "autotune_seconds": 0.5},
    baselines=baselines,
)
