"""text_classification on a real corpus that ships offline (CPython standard-library docstrings, 7 topics):
accuracy far above the majority class; the vectoriser is adapted once and travels inside the export."""
import numpy as np
import pytest

from tests.conftest import serve_in_clean_process
from tfapp import config as config_lib
from tfapp import run
from tfapp.tasks import text


def test_auto_sequence_length_is_a_rounded_percentile():
    assert text.auto_sequence_length(np.arange(1, 101)) == 96
    assert text.auto_sequence_length([1, 2, 3]) == 8
    assert text.auto_sequence_length([5000] * 10) == 512


def test_stdlib_docs_topics_bag_beats_majority_and_serves_raw_strings(tmp_path):
    config = config_lib.Config(task="text_classification", strategy="default", steps_per_loop="50",
                               jit_compile="false", model_dir=str(tmp_path / "run")).resolved()
    experiment = run.prepare(config)
    spec = experiment.source.spec
    assert spec["vocabulary"][:2] == ["", "[UNK]"] and spec["sequence_length"] % 8 == 0
    report = run.train(experiment)
    accuracy, majority = report["final_metrics"]["accuracy"], report["baselines"]["majority_class_accuracy"]
    print(f"stdlib_docs topics: bag accuracy {accuracy:.3f}, majority class {majority:.3f}")
    assert accuracy >= majority + 0.45 and accuracy >= 0.8
    texts = ["Send the blank line ending the MIME headers and flush the header buffer.",
             "Schedule the coroutine on the event loop and return a Task object.",
             "Assert that the two values are equal and fail the test otherwise."]
    out = serve_in_clean_process(report["export_path"], {"text": texts})
    names = spec["label_names"]
    expected = np.argmax(experiment.model(experiment.task.preprocessor(spec)(
        {"x": np.array(texts), "y": np.zeros(3, "int64")})[0], training=False), axis=-1)
    assert out["class_id"] == expected.tolist() and out["label"] == [names[i] for i in expected]


@pytest.mark.slow  # the model's step is covered by test_loop's XLA test; this checks it learns
@pytest.mark.parametrize("model", ["bigru", "transformer"])
def test_other_text_models_learn(tmp_path, model):
    report = run.run(config_lib.Config(task="text_classification", model=model, strategy="default",
                                       train_steps=300, eval_every=300, steps_per_loop="50", jit_compile="false",
                                       export=False, model_dir=str(tmp_path / "run")).resolved())
    print(f"stdlib_docs topics, 300 steps: {model} accuracy {report['final_metrics']['accuracy']:.3f}")
    assert report["final_metrics"]["accuracy"] >= report["baselines"]["majority_class_accuracy"] + 0.3


def test_text_file_source_trains_with_its_own_vocabulary(tmp_path):
    path = tmp_path / "reviews.tsv"
    good = ["great film , loved it", "wonderful acting and a great story", "loved every minute"]
    bad = ["terrible film , hated it", "awful acting and a boring story", "hated every minute"]
    path.write_text("".join(f"pos\t{t}\n" for t in good * 10) + "".join(f"neg\t{t}\n" for t in bad * 10))
    report = run.run(config_lib.Config(task="text_classification", data=f"text:{path}", strategy="default",
                                       train_steps=60, eval_every=60, steps_per_loop="20", jit_compile="false",
                                       export=False, model_dir=str(tmp_path / "run")).resolved())
    assert report["final_metrics"]["accuracy"] == 1.0
