"""`load("KIND:LOCATION", options)` -> Source. The registry of data sources, a plain dict.

    python -c "import pipelines; print(pipelines.load('npz:/tmp/my.npz', test_fraction=0.2).num_examples)"

Kinds: `embedded:NAME` (datasets shipped in pipelines/data), `npz:PATH`, `csv:PATH`, `images:DIR`,
`tfrecord:GLOB`, `text:PATH`, `conll:PATH`, `corpus:GLOB` (one text stream for language models),
`tfds:NAME[:VERSION]`, `py:pkg.module:function` (your own Python: pipelines/python_source.py).
Every example is a dict {"x": …, "y": …}.
Every path goes through tf.io.gfile, so `gs://` and `ram://` locations work like local files.
"""
import dataclasses
import importlib.resources

from pipelines import corpus, csv_source, images, npz, python_source, series, text, tfds_source, tfrecord
from pipelines.source import DataError, LoadOptions

# name -> (file in pipelines/data, default read options); sources and licences in pipelines/data/README.md
EMBEDDED = {
    "digits": ("digits.npz", {}),
    "diabetes": ("diabetes.csv", {"label_column": "target"}),
    "breast_cancer": ("breast_cancer.csv", {"label_column": "target"}),
    "co2": ("co2.csv", {"time_column": "month", "value_column": "co2"}),
    "stdlib_docs": ("stdlib_docs.tsv", {}),
    "ner_sample": ("ner_sample.conll", {}),
    "shakespeare": ("tinyshakespeare.txt", {}),
}


def load_embedded(location, options):
    if location not in EMBEDDED:
        raise DataError(f"--data=embedded:{location}: unknown embedded dataset; valid: {', '.join(sorted(EMBEDDED))}")
    filename, defaults = EMBEDDED[location]
    path = str(importlib.resources.files("pipelines") / "data" / filename)
    options = dataclasses.replace(options, **{k: getattr(options, k) or v for k, v in defaults.items()})
    if path.endswith(".csv"):
        return load_csv(path, options)
    if path.endswith(".tsv"):
        return text.load_text(path, options)
    if path.endswith(".conll"):
        return text.load_conll(path, options)
    if path.endswith(".txt"):
        return corpus.from_text(f"embedded:{location}", corpus.read_text(path), options)
    return npz.from_npz_content(f"embedded:{location}", npz.read_npz(path), options)


def load_csv(location, options):
    """`csv:PATH`: a table, or with --time_column/--value_column a time series cut into windows."""
    if options.value_column or options.time_column:
        return series.load_series(location, options)
    return csv_source.load_csv(location, options)


SOURCES = {
    "embedded": load_embedded,
    "npz": npz.load_npz,
    "csv": load_csv,
    "images": images.load_images,
    "tfrecord": tfrecord.load_tfrecord,
    "text": text.load_text,
    "conll": text.load_conll,
    "corpus": corpus.load_corpus,
    "tfds": tfds_source.load_tfds,
    "py": python_source.load_python,
    "memory": python_source.load_memory,
}


def load(data, options=None, **option_values):
    """`data` is "KIND:LOCATION" (e.g. "embedded:digits", "npz:gs://bucket/x.npz"); returns a pipelines.Source.

    Options come as a LoadOptions or as its fields by keyword (test_fraction=…, seed=…, data_dir=…).
    """
    options = options or LoadOptions(**option_values)
    kind, sep, location = data.partition(":")
    if not sep or not location:
        raise DataError(f"--data={data!r}: expected KIND:LOCATION with KIND one of {', '.join(SOURCES)}")
    if kind not in SOURCES:
        raise DataError(f"--data={data!r}: unknown kind {kind!r}; valid: {', '.join(SOURCES)}")
    return SOURCES[kind](location, options)
