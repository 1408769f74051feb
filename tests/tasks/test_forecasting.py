"""forecasting on a real series that ships offline (monthly Mauna Loa CO2, from statsmodels): the model beats the
seasonal-naive forecast on the last 20%; the windowing, chronological split and baselines on hand-made series."""
import dataclasses

import numpy as np
import pytest

import pipelines
from pipelines.source import DataError
from tests.conftest import serve_in_clean_process
from tfapp import config as config_lib
from tfapp import run
from tfapp.tasks import forecasting


def test_co2_lstm_beats_seasonal_naive_and_serves_windows(tmp_path):
    config = config_lib.Config(task="forecasting", strategy="default", steps_per_loop="50", jit_compile="false",
                               model_dir=str(tmp_path / "run")).resolved()
    experiment = run.prepare(config)
    report = run.train(experiment)
    mae, baselines = report["final_metrics"]["mae"], report["baselines"]
    print(f"co2 last 20%: lstm MAE {mae:.3f} ppm, seasonal-naive {baselines['seasonal_naive_12_mae']:.3f}, "
          f"naive {baselines['naive_last_value_mae']:.3f}")
    assert mae < 0.5 * baselines["seasonal_naive_12_mae"] and mae < baselines["naive_last_value_mae"]
    windows = np.asarray(experiment.source.arrays["test"]["x"][:3], np.float32)
    out = serve_in_clean_process(report["export_path"], {"window": windows.tolist()})
    np.testing.assert_allclose(out["forecast"], experiment.model(windows, training=False), rtol=1e-5)


@pytest.mark.slow  # the model's step is covered by test_loop's XLA test; this checks it learns
@pytest.mark.parametrize("model", ["gru", "cnn"])
def test_other_forecasters_beat_seasonal_naive(tmp_path, model):
    report = run.run(config_lib.Config(task="forecasting", model=model, strategy="default", train_steps=500,
                                       eval_every=500, steps_per_loop="50", jit_compile="false", export=False,
                                       model_dir=str(tmp_path / "run")).resolved())
    print(f"co2, 500 steps: {model} MAE {report['final_metrics']['mae']:.3f}")
    assert report["final_metrics"]["mae"] < report["baselines"]["seasonal_naive_12_mae"]


def _series(tmp_path, values, name="s.csv"):
    path = tmp_path / name
    rows = [f"{t},{'' if v is None else v}" for t, v in values]
    path.write_text("t,v\n" + "\n".join(rows) + "\n")
    return f"csv:{path}"


def test_windows_are_chronological_sorted_and_gaps_interpolated(tmp_path):
    values = [(t, float(t)) for t in range(20)]
    values[5] = (5, None)
    data = _series(tmp_path, list(reversed(values)))  # rows out of order: sorted by the time column
    source = pipelines.load(data, time_column="t", value_column="v", window=4, horizon=2, test_fraction=0.25)
    train, test = source.arrays["train"], source.arrays["test"]
    np.testing.assert_array_equal(train["x"][0], [0, 1, 2, 3])
    np.testing.assert_array_equal(train["x"][2], [2, 3, 4, 5])  # the gap at t=5 interpolated to 5.0
    split = 15  # the last 25% of 20 values: targets from t=15 on are test
    assert train["y"].max() < split and test["y"].min() >= split
    np.testing.assert_array_equal(test["y"][-1], [18, 19])
    assert source.spec["window"] == 4 and source.spec["horizon"] == 2


def test_seasonal_naive_uses_one_season_back_for_each_horizon_step():
    x = np.arange(10, dtype=float)[None, :]  # window of 10 values 0..9; targets would be 10, 11, 12
    np.testing.assert_array_equal(forecasting.seasonal_naive(x, 3, 4), [[6, 7, 8]])
    np.testing.assert_array_equal(forecasting.seasonal_naive(x, 3, 2), [[8, 9, 8]])
    with pytest.raises(ValueError, match="--season=12 is longer than --window=10"):
        forecasting.seasonal_naive(x, 1, 12)


def test_baselines_on_a_pure_seasonal_series_are_exact(tmp_path):
    values = [(t, float(np.sin(2 * np.pi * t / 6))) for t in range(60)]
    source = pipelines.load(_series(tmp_path, values), time_column="t", value_column="v", window=12, horizon=3)
    config = dataclasses.replace(config_lib.Config(task="forecasting"), season=6)
    assert forecasting.baselines(source, config)["seasonal_naive_6_mae"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("options, message", [
    ({"time_column": "t", "value_column": "missing"}, "--value_column='missing' is not a column"),
    ({"value_column": "v"}, "--time_column is required"),
    ({"time_column": "t", "value_column": "v", "window": 30}, "too few for --window=30"),
])
def test_series_errors_name_the_flag(tmp_path, options, message):
    with pytest.raises(DataError, match=message):
        pipelines.load(_series(tmp_path, [(t, t) for t in range(20)]), **options)


def test_non_numeric_value_names_the_line(tmp_path):
    with pytest.raises(DataError, match=r"s.csv:4: v='abc' is not a number"):
        pipelines.load(_series(tmp_path, [(0, 1), (1, 2), (2, "abc")]), time_column="t", value_column="v")
