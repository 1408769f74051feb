"""`Source`: what every data source returns — unbatched tf.data per split, example counts and a spec.

    python -c "import pipelines; print(pipelines.load('embedded:digits').spec)"
"""
import dataclasses
from typing import Any, Callable, Mapping, Optional

import tensorflow as tf


class DataError(ValueError):
    """Bad input data or location; the message names the file (and record) and says what is wrong."""


@dataclasses.dataclass(frozen=True)
class LoadOptions:
    """How a source is read; each field mirrors a tfapp-train flag of the same name."""
    test_fraction: float = 0.2          # held-out share when the source has no test split (seeded)
    seed: int = 0
    data_dir: Optional[str] = None      # TFDS data_dir
    download: bool = False              # TFDS: allow download_and_prepare (needs network)
    label_column: Optional[str] = None  # CSV
    image_size: int = 64                # images: resized to image_size × image_size
    image_channels: Optional[int] = None  # images: 1, 3 or 4; None = all files must agree
    strict: bool = False                # images: an unreadable file is an error instead of skipped
    feature_spec: Optional[str] = None  # TFRecord: JSON {name: {"dtype", "shape", "encoding"}}
    time_column: Optional[str] = None   # CSV series: the time column (with value_column: windows, see series.py)
    value_column: Optional[str] = None  # CSV series: the values to forecast
    window: Optional[int] = None        # series: past values per example
    horizon: Optional[int] = None       # series: future values to predict per example
    sequence_length: Optional[int] = None  # corpus: characters per language-model window (default 64)


@dataclasses.dataclass(frozen=True)
class Source:
    """A dataset ready for the transforms in `pipelines.batching`.

    splits: split name ("train", "test") -> function returning an unbatched dataset of raw example dicts.
    num_examples: split name -> number of examples (known up front: eval padding and reports need it).
    spec: what a model builder needs to know, e.g. {"features": {"x": ((8, 8), "uint8")}, "num_classes": 10}.
    arrays: for in-memory sources, split name -> {"x": array or dict of arrays, "y": array}; lets the training
        pipeline gather whole batches by index instead of handling one example at a time.
    """
    name: str
    splits: Mapping[str, Callable[[], tf.data.Dataset]]
    num_examples: Mapping[str, int]
    spec: Mapping[str, Any]
    arrays: Optional[Mapping[str, Any]] = None
