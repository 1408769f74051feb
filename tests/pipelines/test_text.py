"""text (label<TAB>text) and conll (token ... tag columns) sources, with line-numbered errors."""
import pytest

import pipelines


def test_text_lines(tmp_path):
    path = tmp_path / "reviews.tsv"
    path.write_text("pos\tgreat film\nneg\tawful\n\npos\tloved it\nneg\tboring\nneu\tfine\n")
    source = pipelines.load(f"text:{path}", test_fraction=0.4)
    assert source.spec["label_names"] == ["neg", "neu", "pos"]
    assert source.num_examples == {"train": 3, "test": 2}
    rows = [r for s in ("train", "test") for r in source.splits[s]().as_numpy_iterator()]
    assert {(r["x"].decode(), int(r["y"])) for r in rows} >= {("great film", 2), ("fine", 1)}


def test_text_line_without_tab(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("pos\tok\nthis line has no label\n")
    with pytest.raises(pipelines.DataError, match="bad.tsv:2: expected label<TAB>text"):
        pipelines.load(f"text:{path}")


CONLL = """-DOCSTART- -X- -X- O

Anna NNP B-NP B-PER
lives VBZ B-VP O
in IN B-PP O
Paris NNP B-NP B-LOC

Bob NNP B-NP B-PER
Smith NNP I-NP I-PER
works VBZ B-VP O

IBM NNP B-NP B-ORG
hires VBZ B-VP O

Rome NNP B-NP B-LOC
"""


def test_conll_sentences_and_tags(tmp_path):
    path = tmp_path / "ner.conll"
    path.write_text(CONLL)
    source = pipelines.load(f"conll:{path}", test_fraction=0.25)
    assert source.spec["tag_names"] == ["O", "B-LOC", "B-ORG", "B-PER", "I-PER"]
    assert source.num_examples == {"train": 3, "test": 1} and source.spec["max_length"] == 4
    sentences = {tuple(t.decode() for t in r["x"]): r["y"].tolist()
                 for s in ("train", "test") for r in source.splits[s]().as_numpy_iterator()}
    assert sentences[("Bob", "Smith", "works")] == [3, 4, 0]


def test_conll_bad_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("Anna B-PER\nlonely\n")
    with pytest.raises(pipelines.DataError, match="bad.conll:2: expected TOKEN ... TAG columns"):
        pipelines.load(f"conll:{path}")
