"""Config resolution: task defaults and smoke sizes fill open values; bad values name the flag."""
import datetime

import pytest

from tfapp import config as config_lib
from tfapp import tasks


def test_resolved_fills_task_defaults_and_model_dir():
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    config = config_lib.Config(task="digits").resolved(now=when)
    defaults = tasks.get_task("digits").defaults
    assert config.model == "cnn" and config.data == "embedded:digits"
    assert config.batch_size == defaults["batch_size"] and config.train_steps == defaults["train_steps"]
    assert config.model_dir == "runs/digits-20260102-030405"


def test_explicit_values_win_over_defaults_but_smoke_sizes_win_over_both():
    assert config_lib.Config(batch_size=16).resolved().batch_size == 16
    smoke = config_lib.Config(train_steps=999).resolved(smoke=True)
    assert smoke.train_steps == tasks.get_task("digits").smoke["train_steps"]


@pytest.mark.parametrize("changes, message", [
    ({"task": "nope"}, "--task: unknown task 'nope'; valid: classification, digits, forecasting, image_classification"),
    ({"model": "resnet"}, "--model: unknown model 'resnet' for task 'digits'; valid: cnn, mlp"),
    ({"train_steps": -5}, "--train_steps must be a positive integer, got -5"),
    ({"batch_size": 0}, "--batch_size must be a positive integer, got 0"),
    ({"learning_rate": -1.0}, "--learning_rate must be > 0"),
    ({"strategy": "gpu"}, "--strategy: unknown strategy 'gpu'; valid: auto, default"),
    ({"jit_compile": "maybe"}, "--jit_compile: 'maybe' is not one of auto, true, false, block"),
    ({"task": "forecasting", "season": 30}, "--season=30 is longer than --window=24"),
    ({"window": 0}, "--window must be a positive integer, got 0"),
    ({"vocab_size": 2}, "--vocab_size must be >= 3"),
    ({"backend": "torch"}, "--backend: 'torch' is not one of tensorflow, jax"),
    ({"optimizer": "sgd"}, "--optimizer: 'sgd' is not one of adam, muon"),
])
def test_bad_values_name_the_flag(changes, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.Config(**changes).resolved()


def test_the_optimizer_is_a_task_default():
    assert config_lib.Config(task="digits").resolved().optimizer == "adam"
    assert config_lib.Config(task="language_model").resolved().optimizer == "muon"
    assert config_lib.Config(task="language_model", optimizer="adam").resolved().optimizer == "adam"


def test_to_json_has_every_field():
    text = config_lib.Config().resolved().to_json()
    for name in ("task", "steps_per_loop", "jit_compile", "num_cpu_devices"):
        assert f'"{name}"' in text
