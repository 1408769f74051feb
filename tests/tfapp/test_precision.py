"""--mixed_precision=auto (tfapp/precision.py): bfloat16 only where the device computes it natively and a short check
finds it faster with no loss in training; the choice is cached, reported, and kept by a resumed run."""
import dataclasses

from tests.conftest import read_report, run_cli
from tfapp import config as config_lib
from tfapp import precision


def test_native_bfloat16_by_device_and_engine():
    assert precision.native("tensorflow", "tpu")[0] and precision.native("jax", "tpu")[0]
    assert precision.native("jax", "gpu", (9, 0))[0] and precision.native("tensorflow", "gpu", (8, 0))[0]
    supported, reason = precision.native("jax", "gpu", (7, 5))  # T4: no bfloat16 tensor cores
    assert not supported and "compute capability" in reason
    assert precision.native("tensorflow", "cpu", flags={"avx2", "amx_bf16"})[0]
    assert precision.native("tensorflow", "cpu", flags={"avx512_bf16"})[0]
    assert not precision.native("tensorflow", "cpu", flags={"avx2", "avx512f"})[0]
    # XLA:CPU runs bfloat16 matmuls at its float32 rate, whatever the CPU has
    assert not precision.native("jax", "cpu", flags={"amx_bf16"})[0]


def test_bfloat16_must_be_faster_and_train_as_well():
    float32 = {"first_loss": 2.3, "loss": 0.90, "steps_per_second": 100.0}
    assert precision.decide(float32, {"first_loss": 2.3, "loss": 0.98, "steps_per_second": 180.0})[0] == "bfloat16"
    # 1.32 of float32's 1.40 fall is 94%: kept; 1.10 is 79%: not
    choice, reason = precision.decide(float32, {"first_loss": 2.3, "loss": 1.2, "steps_per_second": 180.0})
    assert choice == "none" and "came down" in reason
    choice, reason = precision.decide(float32, {"first_loss": 2.3, "loss": 0.9, "steps_per_second": 105.0})
    assert choice == "none" and "1.05x" in reason
    assert precision.decide(float32, {"first_loss": 2.3, "loss": float("nan"), "steps_per_second": 500.0})[0] == "none"


def test_choose_measures_once_then_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFAPP_CACHE_DIR", str(tmp_path))
    config = config_lib.Config(mixed_precision="auto").resolved(smoke=True)
    tried = []

    def try_precision(value, steps):
        tried.append((value, steps))
        return {"first_loss": 2.3, "loss": 1.0, "steps_per_second": 100.0 if value == "none" else 150.0}

    args = (config, "tensorflow", "CPU (test)", 1, (True, "native"), try_precision)
    choice, record = precision.choose(*args)
    assert choice == "bfloat16" and record["source"] == "measured" and record["measurements"]["bfloat16"]
    assert tried == [("none", 5), ("bfloat16", 5)]  # smoke: 20 steps, so 5 (at least 5, at most a tenth)
    choice, record = precision.choose(*args)
    assert choice == "bfloat16" and record["source"] == "cache" and len(tried) == 2
    assert precision.choose(dataclasses.replace(config, autotune="measure"), *args[1:])[1]["source"] == "measured"
    # Not measured: no native bfloat16, --deterministic, several workers; TPUs take bfloat16 by rule
    assert precision.choose(config, "tensorflow", "CPU", 1, (False, "no"), try_precision) == (
        "none", {"choice": "none", "source": "rule", "reason": "no"})
    assert precision.choose(dataclasses.replace(config, deterministic=True), *args[1:])[0] == "none"
    assert precision.choose(*args, workers=2)[0] == "none"
    assert precision.choose(*args, platform="tpu")[1]["source"] == "rule"
    assert len(tried) == 4


def test_auto_is_reported_and_a_resumed_run_keeps_its_precision(tmp_path):
    model_dir = str(tmp_path / "run")
    args = [f"--model_dir={model_dir}", "--smoke", "--mixed_precision=auto", "--noexport", "--model=mlp"]
    out = run_cli(args)
    assert out.returncode == 0, out.stderr[-3000:]
    report = read_report(model_dir)
    chosen = report["precision"]["choice"]
    assert chosen in ("none", "bfloat16") and report["mixed_precision"] == chosen
    assert report["precision"]["source"] in ("rule", "measured") and report["precision"]["reason"]
    assert "precision_s" in report["startup"]
    resumed = run_cli([*args, "--train_steps=30"])  # the same command, longer: resumes at step 20
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = read_report(model_dir)
    assert report["resumed_at_step"] == 20 and report["mixed_precision"] == chosen
    assert report["precision"]["source"] == "resumed run"
