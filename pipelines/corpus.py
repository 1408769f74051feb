"""`corpus:PATH` and `embedded:shakespeare`: one UTF-8 text stream, cut into windows of characters for language models.

    python -c "import pipelines; s = pipelines.load('embedded:shakespeare'); print(s.num_examples, s.spec['sequence_length'])"

The files matching PATH (a glob; `gs://` too, through tf.io.gfile) are read in sorted order and joined with a newline
into one stream of Unicode code points (int32: no string ever reaches a batch). As nanoGPT does, the last 10% is the
validation split, so "val loss" compares with nanoGPT's; the test split is the first `--test_fraction` of the text
(the language model's default 0.05), and the train split what lies between. (Not the text just before validation:
that is the start of the validation text's own play, and without it val loss at step 350 rose from 1.836 to 1.898.)
An example is the start position of a window of `sequence_length + 1` code points (inputs and the next-token
targets): the train split has every position whose window fits in the train text (the gather path shuffles them
each epoch, so a batch holds windows from all over the text), the validation and test splits the non-overlapping
windows of their text. Which code point becomes which token id is fitted by the task on the train split
(`spec["codepoints"]` between `spec["train_start"]` and `spec["train_end"]`); `windows` cuts the windows.
"""
import numpy as np
import tensorflow as tf

from pipelines.source import DataError, Source

TRAIN_FRACTION = 0.9  # nanoGPT's split: the first 90% trains, the last 10% validates
DEFAULT_SEQUENCE_LENGTH = 64


def read_text(location):
    """The files matching `location` joined with newlines; DataError naming the file on missing or non-UTF-8 input."""
    files = sorted(tf.io.gfile.glob(location)) if any(c in location for c in "*?[") else [location]
    if not files or not all(tf.io.gfile.exists(path) for path in files):
        raise DataError(f"--data=corpus:{location}: no such file")
    texts = []
    for path in files:
        with tf.io.gfile.GFile(path, "rb") as f:
            content = f.read()
        try:
            texts.append(content.decode("utf-8").removeprefix("\ufeff"))
        except UnicodeDecodeError as error:
            line = content[:error.start].count(b"\n") + 1
            raise DataError(f"{path}:{line}: not UTF-8 (byte {error.start}: {content[error.start:error.start + 1]!r})"
                            ) from None
    return "\n".join(texts)


def windows(codepoints, positions, length):
    """[batch, length + 1] windows of `codepoints` (a 1-D tensor) starting at `positions` [batch]."""
    return tf.gather(codepoints, positions[:, None] + tf.range(length + 1, dtype=positions.dtype))


def from_text(name, text, options):
    """A Source of window positions over `text` (see the module docstring)."""
    length = options.sequence_length or DEFAULT_SEQUENCE_LENGTH
    codepoints = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int32)
    train_end = int(len(codepoints) * TRAIN_FRACTION)  # where nanoGPT's validation 10% starts
    train_start = int(round(len(codepoints) * options.test_fraction))  # the test text comes first
    validation_windows = (len(codepoints) - train_end - 1) // length
    test_windows = (train_start - 1) // length
    if train_end - train_start - length < 1 or validation_windows < 1 or test_windows < 1:
        raise DataError(f"--data={name}: {len(codepoints)} characters are too few for windows of "
                        f"--sequence_length={length} in the test (the first --test_fraction={options.test_fraction}), "
                        "train and validation (the last 10%) parts")
    positions = {"train": np.arange(train_start, train_end - length, dtype=np.int64),
                 "validation": train_end + length * np.arange(validation_windows, dtype=np.int64),
                 "test": length * np.arange(test_windows, dtype=np.int64)}
    arrays = {split: {"x": p, "y": p} for split, p in positions.items()}

    def split_fn(split):
        return lambda: tf.data.Dataset.from_tensor_slices(arrays[split])

    spec = {"features": {"x": ((length,), "int32")}, "sequence_length": length, "codepoints": codepoints,
            "train_start": train_start, "train_end": train_end, "characters": len(codepoints)}
    return Source(name, {split: split_fn(split) for split in arrays}, {s: len(p) for s, p in positions.items()},
                  spec, arrays)


def load_corpus(location, options):
    return from_text(f"corpus:{location}", read_text(location), options)
