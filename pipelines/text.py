"""`text:PATH` (one example per line, `label<TAB>text`) and `conll:PATH` (CoNLL-2003 columns, blank line between
sentences, first column the token, last column the IOB tag).

    tfapp-train --task=text_classification --data=text:reviews.tsv
    tfapp-train --task=token_classification --data=conll:train.conll

Text examples are {"x": string, "y": class index} (labels sorted, names in `spec["label_names"]`); CoNLL examples
are {"x": tokens [n], "y": tag indices [n]} with tag names in `spec["tag_names"]` ("O" first). Both split by
`test_fraction` with the seed. Errors name the file and the line.
"""
import numpy as np
import tensorflow as tf

from pipelines import arrays
from pipelines.source import DataError, Source


def _lines(path):
    if not tf.io.gfile.exists(path):
        raise DataError(f"{path}: no such file")
    with tf.io.gfile.GFile(path, "r") as f:
        return f.read().splitlines()


def load_text(location, options):
    labels, texts = [], []
    for number, line in enumerate(_lines(location), start=1):
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        if not tab or not label.strip():
            raise DataError(f"{location}:{number}: expected label<TAB>text")
        labels.append(label.strip())
        texts.append(text)
    if not texts:
        raise DataError(f"{location}: no examples")
    names = sorted(set(labels))
    index = {name: i for i, name in enumerate(names)}
    y = np.asarray([index[label] for label in labels], np.int64)
    return arrays.from_arrays(f"text:{location}", np.asarray(texts, object).astype(str), y, options.test_fraction,
                              options.seed, {"label_names": names})


def _sentences(location):
    sentences, tokens, tags = [], [], []
    for number, line in enumerate(_lines(location) + [""], start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if tokens:
                sentences.append((tokens, tags))
            tokens, tags = [], []
            continue
        if len(fields) < 2:
            raise DataError(f"{location}:{number}: expected TOKEN ... TAG columns, got {line!r}")
        tokens.append(fields[0])
        tags.append(fields[-1])
    if not sentences:
        raise DataError(f"{location}: no sentences")
    return sentences


def load_conll(location, options):
    sentences = _sentences(location)
    tag_names = ["O"] + sorted({t for _, tags in sentences for t in tags} - {"O"})
    index = {t: i for i, t in enumerate(tag_names)}
    train, test = arrays.split_indices(len(sentences), options.test_fraction, options.seed)

    def make(rows):
        tokens = tf.ragged.constant([sentences[i][0] for i in rows])
        tags = tf.ragged.constant([[index[t] for t in sentences[i][1]] for i in rows], dtype=tf.int64)
        return lambda: tf.data.Dataset.from_tensor_slices({"x": tokens, "y": tags})

    spec = {"features": {"x": ((None,), "string")}, "label": ((None,), "int64"), "tag_names": tag_names,
            "num_classes": len(tag_names), "max_length": max(len(s[0]) for s in sentences)}
    return Source(f"conll:{location}", {"train": make(train), "test": make(test)},
                  {"train": len(train), "test": len(test)}, spec)
