"""--model_parallel on JAX: the transformer split Megatron-style over a (2 batch x 2 model) mesh of 4 forced CPU
devices trains like the data-parallel run, holds about half of the split variables per device, and resumes."""
import csv

import pytest

from tests.conftest import read_report
from tfapp import config as config_lib

pytest.importorskip("jax")
FOUR_CPU_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
COMMON = ["--backend=jax", "--task=language_model", "--train_steps=20", "--eval_every=20", "--steps_per_loop=1",
          "--noexport"]


def _train_losses(model_dir):
    with open(model_dir / "metrics.csv") as f:
        return [float(row["value"]) for row in csv.DictReader(f) if row["split"] == "train" and row["metric"] == "loss"]


@pytest.mark.slow  # 186 s on the AVX2 CPU; issue #18's test: run it with -m slow
def test_model_parallel_matches_data_parallel_splits_the_weights_and_resumes(tmp_path, cli):
    split, replicated = tmp_path / "model_parallel", tmp_path / "data_parallel"
    out = cli([f"--model_dir={split}", "--model_parallel=2", *COMMON], env=FOUR_CPU_DEVICES)
    assert out.returncode == 0, out.stderr[-3000:]
    assert cli([f"--model_dir={replicated}", *COMMON], env=FOUR_CPU_DEVICES).returncode == 0
    a, b = _train_losses(split), _train_losses(replicated)
    assert len(a) == len(b) == 20
    for step, (x, y) in enumerate(zip(a, b), 1):
        assert x == pytest.approx(y, rel=1e-4), f"step {step}: {x} model-parallel, {y} data-parallel"
    report = read_report(split)
    info = report["model_parallel"]
    assert info["mesh"] == {"batch": 2, "model": 2} and report["num_replicas"] == 2
    assert "block0_attention/query/kernel" in info["sharded_variables"]
    assert "block0_mlp2/kernel" in info["sharded_variables"] and "final_norm/gamma" not in info["sharded_variables"]
    for kind in ("parameter", "optimizer"):  # split variables are most of the model: about half of it per device
        assert 0.45 < info[f"{kind}_bytes_per_device"] / info[f"{kind}_bytes"] < 0.6, info
    resumed = cli([f"--model_dir={split}", "--model_parallel=2", *COMMON[:2], "--train_steps=30",
                   *COMMON[3:]], env=FOUR_CPU_DEVICES)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout and read_report(split)["resumed_at_step"] == 20


def test_model_parallel_on_tensorflow_stops_with_one_line(tmp_path, cli):
    with pytest.raises(config_lib.ConfigError, match="--model_parallel=2: splitting a model over devices runs on "
                                                     "the JAX backend"):
        config_lib.Config(model_parallel=2).resolved()
    out = cli([f"--model_dir={tmp_path / 'run'}", "--model_parallel=2"])
    assert out.returncode == 2 and "add --backend=jax" in out.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()
