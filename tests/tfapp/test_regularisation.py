"""--dropout, --weight_decay, --clipnorm and --gradient_accumulation_steps: what they build, and that both engines'
loops honour the accumulation (the weights move every N steps, not every step)."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.conftest import REPO
from tfapp import config as config_lib
from tfapp import run, tasks

ACCUMULATION = """
import json, sys
import numpy as np
import pipelines
from tfapp import config, run
run_config = config.Config(model="mlp", backend=sys.argv[1], model_dir=sys.argv[2], gradient_accumulation_steps=2,
                           steps_per_loop="1", deterministic=True).resolved(smoke=True)
experiment = run.prepare(run_config)
trainer, _, _ = run.choose_trainer(experiment)
iterator = iter(experiment.train_data)
trainer.reset_input()

def kernel():
    trainer.sync_to_model()
    return np.asarray(experiment.model.trainable_variables[0].value).copy()

moved = []
before = kernel()
for _ in range(4):
    trainer.train(iterator, 1)
    after = kernel()
    moved.append(bool(np.any(after != before)))
    before = after
print(json.dumps(moved))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_both_loops_update_the_weights_every_n_steps_with_accumulation(tmp_path, backend):
    if backend == "jax":
        pytest.importorskip("jax")
    out = subprocess.run([sys.executable, "-c", ACCUMULATION, backend, str(tmp_path / "run")], cwd=REPO,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, True, False, True]


def test_the_optimizer_options():
    config = config_lib.Config(weight_decay=0.1, clipnorm=1.0).resolved(smoke=True)
    model = run.build_model(config, tasks.get_task("digits"), {"features": {"x": ((8, 8), "uint8")}, "num_classes": 10})
    optimizer = run.build_optimizer(config, model)
    assert isinstance(optimizer, keras.optimizers.AdamW) and optimizer.weight_decay == 0.1
    assert optimizer.global_clipnorm == 1.0
    kernels = [v for v in model.trainable_variables if v.name == "kernel"]
    biases = [v for v in model.trainable_variables if v.name == "bias"]
    assert all(optimizer._use_weight_decay(v) for v in kernels) and not any(optimizer._use_weight_decay(v)
                                                                            for v in biases)
    plain = run.build_optimizer(config_lib.Config().resolved(smoke=True), model)
    assert type(plain) is keras.optimizers.Adam and plain.global_clipnorm is None
    lm = config_lib.Config(task="language_model", weight_decay=0.1).resolved(smoke=True)
    assert run.build_optimizer(lm, model).weight_decay == 0.1  # Muon's own decay for its matrices


def test_dropout_reaches_the_models():
    spec = {"sequence_length": 16, "vocabulary_size": 10}
    task = tasks.get_task("language_model")

    def rates(model):  # (MultiHeadAttention's own attention dropout is 0)
        return sorted({layer.rate for layer in model._flatten_layers()
                       if isinstance(layer, keras.layers.Dropout) and layer.rate})

    assert rates(task.models["gpt"](config_lib.Config(task="language_model").resolved(), spec)) == []
    assert rates(task.models["gpt_small"](config_lib.Config(task="language_model", dropout=0.2).resolved(),
                                          spec)) == [0.2]
    assert rates(task.models["lstm"](config_lib.Config(task="language_model", dropout=0.1).resolved(), spec)) == [0.1]
    text = tasks.get_task("text_classification")
    text_spec = {"sequence_length": 8, "vocabulary": ["", "[UNK]", "a", "b"], "num_classes": 2}
    assert rates(text.models["transformer"](config_lib.Config(task="text_classification").resolved(),
                                            text_spec)) == [0.1, 0.3]  # the model's own without --dropout
    assert rates(text.models["transformer"](config_lib.Config(task="text_classification", dropout=0.25).resolved(),
                                            text_spec)) == [0.25]
    with pytest.raises(config_lib.ConfigError, match="--dropout must be in"):
        config_lib.Config(dropout=1.5).resolved()
    with pytest.raises(config_lib.ConfigError, match="--gradient_accumulation_steps must be >= 1"):
        config_lib.Config(gradient_accumulation_steps=0).resolved()
    assert np.isclose(config_lib.Config(task="language_model").resolved().test_fraction, 0.05)
