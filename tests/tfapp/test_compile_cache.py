"""tfapp/compile_cache.py: compiled XLA programs kept per machine, pruned oldest first, off on request; the CLI turns
it on early enough that TensorFlow writes programs there, and a second run reads them back to the same numbers."""
import glob
import os

from tests.conftest import read_report, run_cli
from tfapp import compile_cache


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
    assert sorted(os.path.basename(p) for p in glob.glob(f"{tmp_path}/**/*", recursive=True) if os.path.isfile(p)) \
        == ["middle", "newest"]
    compile_cache.prune(str(tmp_path), max_bytes=0)
    assert not [p for p in glob.glob(f"{tmp_path}/**/*", recursive=True) if os.path.isfile(p)]


def test_enable_sets_the_flag_once_and_respects_opt_outs(tmp_path, monkeypatch):
    monkeypatch.setenv("TFAPP_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TF_XLA_FLAGS", "--tf_xla_auto_jit=0")
    directory = compile_cache.enable("tensorflow")
    assert directory.startswith(str(tmp_path / "xla")) and os.path.isdir(directory)
    assert os.environ["TF_XLA_FLAGS"] == f"--tf_xla_auto_jit=0 {compile_cache.TF_FLAG}={directory}"
    assert compile_cache.enable("tensorflow") is None  # set already (or the user's own): left alone
    assert os.environ["TF_XLA_FLAGS"].count(compile_cache.TF_FLAG) == 1
    monkeypatch.setenv("TF_XLA_FLAGS", "")
    monkeypatch.setenv("TFAPP_COMPILE_CACHE", "0")
    assert compile_cache.enable("tensorflow") is None and os.environ["TF_XLA_FLAGS"] == ""


def test_a_second_xla_run_reads_the_cached_programs_and_repeats_the_metrics(tmp_path):
    cache = tmp_path / "cache"
    args = ["--smoke", "--model=mlp", "--jit_compile=true", "--steps_per_loop=4", "--noexport"]
    env = {"TFAPP_CACHE_DIR": str(cache), "TF_XLA_FLAGS": ""}  # not a flag this test process may have set
    first = run_cli([f"--model_dir={tmp_path / 'a'}", *args], env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    programs = glob.glob(f"{cache}/xla/*/*.pb")
    assert programs  # the train step (and the eval step) were written
    stamps = {p: os.stat(p).st_mtime_ns for p in programs}
    second = run_cli([f"--model_dir={tmp_path / 'b'}", *args], env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert {p: os.stat(p).st_mtime_ns for p in glob.glob(f"{cache}/xla/*/*.pb")} == stamps  # read, none new
    assert read_report(str(tmp_path / "a"))["final_metrics"] == read_report(str(tmp_path / "b"))["final_metrics"]
