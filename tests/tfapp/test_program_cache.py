"""tfapp/program_cache.py (--backend=jax): the train program of a built-in task is read back by the same command
(no trace, no lowering) and trains to the same numbers; its key follows the flags and the data's spec but not
--model_dir; user code and unkeyable values are not cached; an unreadable entry means compiling again."""
import dataclasses
import glob

import numpy as np
import pytest

from tests.conftest import read_report, run_cli
from tfapp import config as config_lib
from tfapp import program_cache


def test_digest_is_exact_and_refuses_what_it_cannot_key():
    spec = {"vocab": ["a", "b"], "mean": np.array([1.0, 2.0]), "num_classes": 10}
    assert program_cache.digest(spec) == program_cache.digest(dict(reversed(list(spec.items()))))
    assert program_cache.digest(spec) != program_cache.digest({**spec, "mean": np.array([1.0, 2.5])})
    assert program_cache.digest([1]) != program_cache.digest((1,)) != program_cache.digest([1.0])
    with pytest.raises(program_cache.Unkeyable):
        program_cache.digest({"f": object()})


def test_run_key_follows_the_flags_not_the_model_dir_and_skips_user_code():
    config = config_lib.Config(task="digits", backend="jax")
    spec = {"num_classes": 10}
    key = program_cache.run_key(config, spec)
    assert key and key == program_cache.run_key(dataclasses.replace(config, model_dir="/elsewhere"), spec)
    assert key != program_cache.run_key(dataclasses.replace(config, learning_rate=0.5), spec)
    assert key != program_cache.run_key(config, {"num_classes": 9})
    assert program_cache.run_key(dataclasses.replace(config, task="my.module:TASK"), spec) is None
    assert program_cache.run_key(dataclasses.replace(config, model="my.module:build"), spec) is None
    assert program_cache.run_key(config, {"layer": object()}) is None


def test_the_same_command_reads_its_program_back_and_repeats_the_metrics(tmp_path, monkeypatch):
    env = {"TFAPP_CACHE_DIR": str(tmp_path / "cache")}
    args = ["--backend=jax", "--smoke", "--model=mlp", "--steps_per_loop=4", "--noexport"]
    first = run_cli([f"--model_dir={tmp_path / 'a'}", *args], env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert read_report(str(tmp_path / "a"))["autotune"]["train_program"].startswith("compiled")
    entries = glob.glob(str(tmp_path / "cache" / "jax-programs" / "*" / "*.program"))
    assert len(entries) == 1
    second = run_cli([f"--model_dir={tmp_path / 'b'}", *args], env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert read_report(str(tmp_path / "b"))["autotune"]["train_program"] == "tfapp program cache"
    assert read_report(str(tmp_path / "a"))["final_metrics"] == read_report(str(tmp_path / "b"))["final_metrics"]
    # an entry that cannot be read is no program (the run compiles instead)
    monkeypatch.setenv("TFAPP_CACHE_DIR", str(tmp_path / "cache"))
    key = entries[0].rsplit("/", 1)[1][:-len(".program")]
    with open(entries[0], "wb") as f:
        f.write(b"not a program")
    assert program_cache.load(key) is None
