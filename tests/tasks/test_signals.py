"""signal_classification on generated 1-D signals (fixtures.noisy_signals states the difficulty): every model
learns, and the position-invariant models rank at least as high as the MLP."""
from tests import fixtures
from tfapp import config as config_lib
from tfapp import run


def test_models_rank_sensibly(tmp_path):
    data = fixtures.noisy_signals(str(tmp_path / "signals.npz"))
    accuracy = {}
    for model in ("mlp", "cnn", "gru"):
        report = run.run(config_lib.Config(task="signal_classification", model=model, data=f"npz:{data}",
                                           strategy="default", steps_per_loop="16", jit_compile="false",
                                           export=False, model_dir=str(tmp_path / model)).resolved())
        accuracy[model] = report["final_metrics"]["accuracy"]
    print("signal accuracy:", accuracy)
    assert accuracy["cnn"] >= accuracy["mlp"] and accuracy["gru"] >= accuracy["mlp"]
    assert accuracy["cnn"] > 0.6 and accuracy["gru"] > 0.6  # chance is 1/3


def test_smoke_each_model(tmp_path):
    data = fixtures.noisy_signals(str(tmp_path / "signals.npz"), n=200)
    for model in ("mlp", "cnn", "gru"):
        report = run.run(config_lib.Config(task="signal_classification", model=model, data=f"npz:{data}",
                                           strategy="default", export=False,
                                           model_dir=str(tmp_path / model)).resolved(smoke=True))
        assert report["steps"] == 20


def test_serving_takes_raw_sequences():
    import numpy as np
    from tfapp import tasks
    task = tasks.get_task("signal_classification")
    spec = {"features": {"x": ((32,), "float32")}, "num_classes": 3, "signal_stats": [0.0, 1.0]}
    for name in task.models:
        outputs = task.serving(task.models[name](None, spec))["serving_default"](np.zeros((4, 32), "float32"))
        assert outputs["class_id"].shape == (4,) and outputs["probabilities"].shape == (4, 3)
