"""token_classification: entity-level F1 on hand-made cases, and the CoNLL sample we wrote trained end to end
(F1 far above the all-O baseline), served on raw token lists."""
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import serve_in_clean_process
from tfapp import config as config_lib
from tfapp import run
from tfapp.tasks import ner, spans


def test_entity_spans_iob2():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O", "I-ORG", "I-ORG", "B-MISC"]
    assert spans.entity_spans(tags) == {("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 5), ("ORG", 7, 8),
                                        ("MISC", 9, 9)}
    assert spans.entity_spans(["B-PER", "I-LOC"]) == {("PER", 0, 0), ("LOC", 1, 1)}  # a type change ends it
    assert spans.entity_spans(["O", "O"]) == set()


@pytest.mark.parametrize("predicted, expected", [
    (["B-PER", "I-PER", "O", "B-LOC"], (1.0, 1.0)),       # all right
    (["B-PER", "O", "O", "B-LOC"], (0.5, 0.5)),           # PER cut short: its span is wrong
    (["B-ORG", "I-ORG", "O", "B-LOC"], (0.5, 0.5)),       # wrong type
    (["O", "O", "O", "O"], (0.0, 0.0)),                   # all O: nothing found
    (["B-PER", "I-PER", "B-LOC", "B-LOC"], (2 / 3, 1.0)),  # one extra entity
])
def test_entity_f1_exact_span_match(predicted, expected):
    truth = ["B-PER", "I-PER", "O", "B-LOC"]
    scores = spans.entity_f1([truth], [predicted])
    precision, recall = expected
    assert scores["entity_precision"] == pytest.approx(precision)
    assert scores["entity_recall"] == pytest.approx(recall)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    assert scores["entity_f1"] == pytest.approx(f1)


def test_entity_f1_is_micro_averaged_over_sentences():
    truth = [["B-PER", "O"], ["B-LOC", "I-LOC", "O", "B-ORG"]]
    predicted = [["B-PER", "O"], ["O", "O", "O", "B-ORG"]]
    assert spans.entity_f1(truth, predicted) == pytest.approx(
        {"entity_precision": 1.0, "entity_recall": 2 / 3, "entity_f1": 0.8})


def test_word_shapes():
    tokens = tf.constant(["Paris", "the", "NASA", "2 - 1", "1,000", ".", "iPhone", ""])
    shapes = [ner.SHAPES[i] for i in ner.word_shapes(tokens).numpy()]
    assert shapes == ["capitalised", "lower", "upper", "mixed", "digits", "punctuation", "mixed", "[PAD]"]


def test_ner_sample_bilstm_f1_and_serving(tmp_path):
    config = config_lib.Config(task="token_classification", strategy="default", steps_per_loop="50",
                               jit_compile="false", model_dir=str(tmp_path / "run")).resolved()
    experiment = run.prepare(config)
    report = run.train(experiment)
    f1, baseline = report["final_metrics"]["entity_f1"], report["baselines"]["all_O_entity_f1"]
    print(f"ner_sample: bilstm entity F1 {f1:.3f} (P {report['final_metrics']['entity_precision']:.3f}, "
          f"R {report['final_metrics']['entity_recall']:.3f}), all-O baseline {baseline:.3f}")
    assert baseline == 0.0 and f1 >= 0.8
    tokens = [["Ingrid", "Novak", "visited", "Quebec", ".", ""], ["Shares", "of", "Zenith", "Motors", "fell", "."]]
    out = serve_in_clean_process(report["export_path"], {"tokens": tokens})
    assert out["tags"][0][-1] == "" and len(out["tags"][1]) == 6
    spec = experiment.source.spec
    features, _ = zip(*[ner.preprocess_for(spec)({"x": tf.constant([t for t in row if t]),
                                                  "y": tf.zeros([sum(map(bool, row))], tf.int64)})
                        for row in tokens])
    batch = {k: tf.stack([f[k] for f in features]) for k in features[0]}
    expected = np.argmax(experiment.model(batch, training=False), axis=-1)
    for row, ids, served in zip(tokens, expected, out["tag_ids"]):
        n = sum(map(bool, row))
        assert served[:n] == ids[:n].tolist()


@pytest.mark.slow  # the model's step is covered by test_loop's XLA test; this checks it learns
def test_transformer_tagger_learns(tmp_path):
    report = run.run(config_lib.Config(task="token_classification", model="transformer", strategy="default",
                                       train_steps=300, eval_every=300, steps_per_loop="50", jit_compile="false",
                                       export=False, model_dir=str(tmp_path / "run")).resolved())
    print(f"ner_sample, 300 steps: transformer entity F1 {report['final_metrics']['entity_f1']:.3f}")
    assert report["final_metrics"]["entity_f1"] >= 0.6
