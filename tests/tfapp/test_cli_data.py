"""`tfapp-data convert` in a subprocess, then `tfapp-train` on what it wrote; bad flags give one line."""
import os

from tests.conftest import read_report, run_cli


def test_convert_tfrecord_then_train_on_it(tmp_path):
    out = tmp_path / "digits_tfrecord"
    done = run_cli(["convert", "--data=embedded:digits", f"--out={out}", "--shards=2"], module="tfapp.cli.data")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "train with --data='tfrecord:" in done.stdout
    assert sorted(os.listdir(out))[:2] == ["spec.json", "test-00000-of-00002.tfrecord"]
    model_dir = tmp_path / "run"
    trained = run_cli([f"--model_dir={model_dir}", f"--data=tfrecord:{out}/*.tfrecord", "--smoke"])
    assert trained.returncode == 0, trained.stderr[-2000:]
    report = read_report(str(model_dir))
    assert report["config"]["data"].startswith("tfrecord:") and report["num_examples"]["test"] == 359
    assert 0 <= report["input_wait_fraction"] < 1


def test_convert_tfds(tmp_path):
    done = run_cli(["convert", "--data=embedded:digits", f"--out={tmp_path}", "--format=tfds", "--name=dig"],
                   module="tfapp.cli.data")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"--data=tfds:dig --data_dir={tmp_path}" in done.stdout


def test_convert_errors_write_nothing(tmp_path):
    out = tmp_path / "never"
    done = run_cli(["convert", "--data=csv:/no/such.csv", "--label_column=y", f"--out={out}"],
                   module="tfapp.cli.data")
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == \
        "tfapp-data: error: /no/such.csv: no such file"
    assert not out.exists()
