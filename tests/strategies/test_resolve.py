"""Strategy resolution: every name gives a real strategy, TPU detection stays local, errors name the flag."""
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

import strategies
from strategies import tpu as tpu_lib


def test_default_and_one_device_are_real_strategies():
    assert isinstance(strategies.get_strategy("default"), tf.distribute.Strategy)
    one = strategies.get_strategy("one_device")
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    assert one.num_replicas_in_sync == 1


def test_auto_without_tpu_or_several_devices_is_the_default_strategy(monkeypatch):
    monkeypatch.setattr(tpu_lib, "local_tpu_signals", lambda: [])
    strategy = strategies.get_strategy("auto")
    assert strategy is tf.distribute.get_strategy() and strategies.describe(strategy) == "DefaultStrategy"
    assert strategies.is_chief(strategy)


def test_unknown_name_lists_valid_names():
    with pytest.raises(strategies.StrategyError, match="--strategy: unknown strategy 'gpu'; valid: auto, default"):
        strategies.get_strategy("gpu")


def test_tpu_without_local_signal_fails_fast_and_never_builds_a_resolver(monkeypatch):
    monkeypatch.setattr(tpu_lib, "local_tpu_signals", lambda: [])

    def forbidden(address):
        raise AssertionError(f"a resolver was built for {address}: that would ask the GCE metadata server")

    monkeypatch.setattr(tpu_lib, "RESOLVER_FACTORY", forbidden)
    with pytest.raises(strategies.StrategyError, match="--strategy=tpu: no TPU found"):
        strategies.get_strategy("tpu")


def test_tpu_with_local_signal_builds_a_local_resolver(monkeypatch):
    built = []

    class Stop(Exception):
        pass

    def stub(address):
        built.append(address)
        raise Stop  # stand-in for the real connection; we only check what would be asked for

    monkeypatch.setattr(tpu_lib, "local_tpu_signals", lambda: ["/dev/accel0"])
    monkeypatch.setattr(tpu_lib, "RESOLVER_FACTORY", stub)
    for key in ("COLAB_TPU_ADDR", "TPU_NAME"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(Stop):
        strategies.get_strategy("auto")
    with pytest.raises(Stop):
        strategies.get_strategy("tpu", tpu="my-tpu")
    assert built == ["local", "my-tpu"]


def test_local_tpu_signals_reads_env_and_device_nodes(tmp_path):
    (tmp_path / "accel0").write_text("")
    signals = tpu_lib.local_tpu_signals(environ={"TPU_NAME": "v5e", "HOME": "/root"},
                                        device_globs=(str(tmp_path / "accel*"),))
    assert signals == ["env:TPU_NAME", str(tmp_path / "accel0")]
    assert tpu_lib.local_tpu_signals(environ={}, device_globs=(str(tmp_path / "none*"),)) == []


def test_resolver_address_prefers_flag_then_colab_then_local():
    assert tpu_lib.resolver_address("x", environ={"COLAB_TPU_ADDR": "1.2.3.4:8470"}) == "x"
    assert tpu_lib.resolver_address(None, environ={"COLAB_TPU_ADDR": "1.2.3.4:8470"}) == "grpc://1.2.3.4:8470"
    assert tpu_lib.resolver_address(None, environ={}) == "local"


def test_mirrored_on_logical_cpus_in_a_fresh_process():
    # Logical devices must be configured before TensorFlow starts, hence a fresh interpreter.
    code = textwrap.dedent("""
        import strategies
        s = strategies.get_strategy("mirrored", num_cpu_devices=2)
        a = strategies.get_strategy("auto", num_cpu_devices=2)
        print(strategies.describe(s), s.num_replicas_in_sync, strategies.describe(a))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["MirroredStrategy", "2", "MirroredStrategy"]


def test_bad_num_cpu_devices():
    with pytest.raises(strategies.StrategyError, match="--num_cpu_devices must be >= 1"):
        strategies.get_strategy("default", num_cpu_devices=0)
