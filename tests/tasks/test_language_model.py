"""language_model: the shipped tiny-shakespeare split like nanoGPT's, windows of character ids (never strings) in the
batches, a model that beats the unigram baseline, and an export that generates text in a TensorFlow-only process."""
import numpy as np
import pytest
import tensorflow as tf

import pipelines
from pipelines import corpus
from tests.conftest import read_report, serve_in_clean_process
from tfapp import config as config_lib
from tfapp import run, tasks


def test_embedded_shakespeare_splits_like_nanogpt_and_cuts_id_windows():
    source = pipelines.load("embedded:shakespeare", sequence_length=64, test_fraction=0.05)  # the task's default
    spec = source.spec
    # nanoGPT: 1,003,854 train characters, then its validation 10%: validation here too; the test split is the
    # first 5% of the text (55,770 characters), which the train split gives up
    assert spec["characters"] == 1_115_394 and spec["train_end"] == 1_003_854 and spec["train_start"] == 55_770
    assert source.num_examples == {"train": 1_003_854 - 55_770 - 64, "validation": (1_115_394 - 1_003_854 - 1) // 64,
                                   "test": (55_770 - 1) // 64}
    assert pipelines.with_validation(source, 0.1, 0) is source  # its own validation split, not carved
    task = tasks.get_task("language_model")
    spec = {**spec, **task.adapt(source, None)}
    assert spec["vocabulary_size"] == 66 and spec["vocabulary"][:3] == ["\n", " ", "!"]  # 65 characters + OOV
    features, labels = task.preprocessor(spec)({"x": tf.constant([0, 1000]), "y": tf.constant([0, 1000])})
    assert features.dtype == tf.int32 and features.shape == (2, 64)
    np.testing.assert_array_equal(features[:, 1:], labels[:, :-1])  # targets: the next character
    text = "".join(spec["vocabulary"][i - 1] for i in features[0].numpy())
    assert text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.")


def test_corpus_reads_a_glob_and_names_a_bad_file(tmp_path):
    (tmp_path / "a.txt").write_text("abcdefgh" * 40)
    (tmp_path / "b.txt").write_text("ijklmnop" * 40)
    source = pipelines.load(f"corpus:{tmp_path}/*.txt", sequence_length=8)
    assert source.spec["characters"] == 641  # two files joined by a newline
    (tmp_path / "bad.txt").write_bytes(b"fine line\nbad \xff byte")
    with pytest.raises(pipelines.DataError, match=r"bad.txt:2: not UTF-8"):
        pipelines.load(f"corpus:{tmp_path}/bad.txt")
    with pytest.raises(pipelines.DataError, match="too few for windows of --sequence_length=64"):
        pipelines.load(f"corpus:{tmp_path}/a.txt", sequence_length=64)
    with pytest.raises(pipelines.DataError, match="no such file"):
        pipelines.load(f"corpus:{tmp_path}/missing.txt")


def test_windows_is_a_pure_function():
    codepoints = tf.range(10)
    np.testing.assert_array_equal(corpus.windows(codepoints, tf.constant([0, 5]), 3), [[0, 1, 2, 3], [5, 6, 7, 8]])


def test_soft_cap_bounds_the_logits_keeps_small_ones_and_round_trips_its_config():
    from tfapp.tasks import language_model
    cap = language_model.SoftCap(15.0)
    logits = np.array([[-1e4, -30.0, -0.01, 0.0, 0.01, 30.0, 1e4]], np.float32)
    capped = np.asarray(cap(logits))
    assert np.all(np.abs(capped) <= 15.0) and np.all(np.diff(capped) > 0)  # bounded, order kept
    np.testing.assert_allclose(capped[0, 2:5], logits[0, 2:5], rtol=1e-5)  # ~ identity near zero
    assert language_model.SoftCap.from_config(cap.get_config()).cap == 15.0


def test_gpt_learns_beats_the_unigram_baseline_and_the_export_generates(tmp_path):
    config = config_lib.Config(task="language_model", train_steps=150, eval_every=150, batch_size=32,
                               steps_per_loop="25", jit_compile="false", warmup_steps=20,
                               model_dir=str(tmp_path / "run")).resolved()
    report = run.run(config)
    final, baselines = report["final_metrics"], report["baselines"]
    print(f"gpt after 150 steps: val loss {final['loss']:.3f}; unigram {baselines['unigram_loss']:.3f}, "
          f"bigram {baselines['bigram_loss']:.3f}")
    assert 3.0 < baselines["unigram_loss"] < 3.6 and baselines["bigram_loss"] < baselines["unigram_loss"]
    assert final["loss"] < baselines["unigram_loss"] - 0.3
    assert final["bits_per_token"] == pytest.approx(final["loss"] / np.log(2), rel=1e-4)
    assert final["perplexity"] == pytest.approx(np.exp(final["loss"]), rel=1e-4)
    inputs = {"prompt": "ROMEO:", "max_new_tokens": 40, "temperature": 0.8, "seed": 0}
    first = serve_in_clean_process(report["export_path"], inputs, signature="generate")["text"]
    again = serve_in_clean_process(report["export_path"], inputs, signature="generate")["text"]
    assert first == again and first.startswith("ROMEO:") and len(first) == len("ROMEO:") + 40
    print("generated:", first)
    served = serve_in_clean_process(report["export_path"], {"text": ["To be, or not to b", "x"]})
    assert np.allclose(np.exp(served["log_probabilities"]).sum(axis=1), 1.0, atol=1e-4)
    assert len(served["next_character"]) == 2
    assert read_report(config.model_dir)["main_metric"] == "loss"


@pytest.mark.slow  # 105 s on the AVX2 CPU; the JAX engine's default tests run digits
def test_language_model_on_jax_exports_and_tfapp_predict_generates(tmp_path, cli):
    pytest.importorskip("jax")
    model_dir = tmp_path / "run"
    out = cli([f"--model_dir={model_dir}", "--task=language_model", "--smoke", "--backend=jax"])
    assert out.returncode == 0, out.stderr[-3000:]
    report = read_report(str(model_dir))
    assert report["backend"] == "jax" and report["final_metrics"]["loss"] < report["baselines"]["unigram_loss"] + 0.5
    args = [f"--export_dir={report['export_path']}", "--prompt=ROMEO:", "--max_new_tokens=30", "--seed=3"]
    first, second = (cli(args, module="tfapp.cli.predict") for _ in range(2))
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout == second.stdout and first.stdout.startswith("ROMEO:") and len(first.stdout) == 6 + 30 + 1
    bad = cli([f"--export_dir={report['export_path']}", "--prompt=x", "--temperature=0"], module="tfapp.cli.predict")
    assert bad.returncode == 2 and "--temperature > 0" in bad.stderr.strip().splitlines()[-1]
