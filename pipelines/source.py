"""`Source`: what every data source returns — unbatched tf.data per split, example counts and a spec.

    python -c "import pipelines; print(pipelines.load('embedded:digits').spec)"
"""
import dataclasses
from typing import Any, Callable, Mapping

import tensorflow as tf


class DataError(ValueError):
    """Bad input data or location; the message names the file (and record) and says what is wrong."""


@dataclasses.dataclass(frozen=True)
class Source:
    """A dataset ready for the transforms in `pipelines.batching`.

    splits: split name ("train", "test") -> function returning an unbatched dataset of raw example dicts.
    num_examples: split name -> number of examples (known up front: eval padding and reports need it).
    spec: what a model builder needs to know, e.g. {"features": {"x": ((8, 8), "uint8")}, "num_classes": 10}.
    """
    name: str
    splits: Mapping[str, Callable[[], tf.data.Dataset]]
    num_examples: Mapping[str, int]
    spec: Mapping[str, Any]
