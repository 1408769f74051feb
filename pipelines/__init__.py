"""Pure tf.data input pipelines: sources (`load`) and the train/eval transforms (`train_dataset`, `eval_dataset`).

    python -c "import pipelines; s = pipelines.load('embedded:digits'); print(s.num_examples, s.spec)"

Nothing here imports Keras models or tfapp: a pipeline turns a data location into batches, and that is all.
"""
from pipelines.batching import block_batches, eval_dataset, eval_steps, index_blocks, preprocess_rows, train_dataset
from pipelines.sources import SOURCES, DataError, load
from pipelines.source import LoadOptions, Source
from pipelines.validation import with_validation

__all__ = ["SOURCES", "DataError", "LoadOptions", "Source", "block_batches", "eval_dataset", "eval_steps",
           "index_blocks", "load", "preprocess_rows", "train_dataset", "with_validation"]
