"""tfapp/compile_cache.py (--backend=jax): compiled programs kept per machine, pruned oldest first, off on request; a
second run of the same command reads them back (writes nothing new) and gives the same numbers."""
import glob
import os

from tests.conftest import read_report, run_cli
from tfapp import compile_cache


def _files(folder):
    """{path: modification time} of the files anywhere under `folder`."""
    return {p: os.stat(p).st_mtime_ns for p in glob.glob(f"{folder}/**/*", recursive=True) if os.path.isfile(p)}


def test_machine_key_depends_on_the_framework_version():
    assert compile_cache.machine_key("tensorflow 2.21.0") == compile_cache.machine_key("tensorflow 2.21.0")
    assert compile_cache.machine_key("tensorflow 2.21.0") != compile_cache.machine_key("tensorflow 2.20.0")


def test_prune_deletes_the_oldest_files_beyond_the_limit(tmp_path):
    for age, name in enumerate(["newest", "middle", "oldest"]):
        path = tmp_path / "sub" / name if name == "middle" else tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 100)
        os.utime(path, (1_000_000 - age, 1_000_000 - age))
    compile_cache.prune(str(tmp_path), max_bytes=250)
    assert sorted(os.path.basename(p) for p in _files(tmp_path)) == ["middle", "newest"]
    compile_cache.prune(str(tmp_path), max_bytes=0)
    assert not _files(tmp_path)


def test_a_second_jax_run_reads_the_cached_programs_and_repeats_the_metrics(tmp_path):
    cache = tmp_path / "cache"
    args = ["--backend=jax", "--smoke", "--model=mlp", "--steps_per_loop=4", "--noexport"]
    # JAX writes only programs whose compile took >= 1 s (its default), which on a shared machine one run may pass
    # and the next not: every program is written here, so "nothing new the second time" is not timing-dependent.
    env = {"TFAPP_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    first = run_cli([f"--model_dir={tmp_path / 'a'}", *args], env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    programs = _files(cache / "jax")
    assert programs  # the train loop (and the evaluation) were written
    second = run_cli([f"--model_dir={tmp_path / 'b'}", *args], env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert _files(cache / "jax") == programs
    assert read_report(str(tmp_path / "a"))["final_metrics"] == read_report(str(tmp_path / "b"))["final_metrics"]
    off = run_cli([f"--model_dir={tmp_path / 'c'}", *args], env={**env, "TFAPP_CACHE_DIR": str(tmp_path / "c0"),
                                                                   "TFAPP_COMPILE_CACHE": "0"})
    assert off.returncode == 0 and not os.path.exists(tmp_path / "c0" / "jax")
