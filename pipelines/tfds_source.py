"""`tfds:NAME[:VERSION]` — a TensorFlow Datasets dataset from a local `data_dir`, never downloading by surprise.

    tfapp-train --data=tfds:mnist --data_dir=/data/tensorflow_datasets
    tfapp-train --data=tfds:mnist --download            # only on a machine with network

With `download` off (the default) a dataset that is not prepared in data_dir fails at once with the way to
prepare it, instead of TFDS hanging on an offline machine. Datasets written by `tfapp-data convert
--format=tfds` (or `tfds.dataset_builders.store_as_tfds_dataset`) are found in data_dir by name too.
Examples become {"x", "y"} from the dataset's supervised keys, or, for datasets of named features without
them (movielens), x = a dict of the scalar features and y = `--label_column`. `train`/`test` splits are used
when present, else `train` is cut at 1 − test_fraction (TFDS split slicing: deterministic, not seeded).
"""
import os

import tensorflow as tf

from pipelines.source import DataError, Source

DEFAULT_DATA_DIR = os.path.join(os.path.expanduser("~"), "tensorflow_datasets")


def _builder(name, version, data_dir):
    import tensorflow_datasets as tfds  # imported here: it takes seconds and most runs do not need it
    directory = os.path.join(data_dir, name)
    if tf.io.gfile.isdir(directory):
        versions = sorted(v.rstrip("/") for v in tf.io.gfile.listdir(directory) if v[:1].isdigit())
        chosen = version or (versions[-1] if versions else None)
        info = os.path.join(directory, chosen or "", "dataset_info.json")
        if chosen and tf.io.gfile.exists(info):
            return tfds.builder_from_directory(os.path.join(directory, chosen))
    try:
        return tfds.builder(f"{name}:{version}" if version else name, data_dir=data_dir)
    except Exception as error:  # TFDS raises its own DatasetNotFoundError and friends
        raise DataError(f"--data=tfds:{name}: {str(error).splitlines()[0]}") from None


def _not_prepared(name, data_dir):
    return DataError(
        f"--data=tfds:{name}: not prepared in --data_dir={data_dir} and --download is off. On a machine with "
        f"network run `tfds build {name} --data_dir=DIR` (or `tfapp-data convert --data=... --out=DIR "
        f"--format=tfds`), copy DIR here and pass --data_dir=DIR; or add --download where there is network.")


def load_tfds(location, options):
    name, _, version = location.partition(":")
    data_dir = options.data_dir or DEFAULT_DATA_DIR
    builder = _builder(name, version or None, data_dir)
    if not builder.is_prepared():
        if not options.download:
            raise _not_prepared(name, data_dir)
        builder.download_and_prepare()
    info = builder.info
    splits = set(info.splits)
    if not splits:
        raise DataError(f"--data=tfds:{name}: the prepared dataset in {data_dir} lists no splits")
    if {"train", "test"} <= splits:
        split_names = {"train": "train", "test": "test"}
        if "validation" in splits:  # the dataset's own validation split (else tfapp carves one from train)
            split_names["validation"] = "validation"
    else:
        first = "train" if "train" in splits else sorted(splits)[0]
        cut = int(round(100 * (1 - options.test_fraction)))
        split_names = {"train": f"{first}[:{cut}%]", "test": f"{first}[{cut}%:]"}
    keys = info.supervised_keys
    if keys is None and {"x", "y"} <= set(info.features.keys()):
        keys = ("x", "y")  # written by tfapp-data convert
    if keys is None and options.label_column:
        return _columns_source(location, builder, split_names, options.label_column)
    if keys is None:
        raise DataError(f"--data=tfds:{name}: the dataset has no supervised (input, label) keys; name the label "
                        f"with --label_column; features: {', '.join(sorted(info.features.keys()))}")
    x_key, y_key = keys[:2]
    x_feature, y_feature = info.features[x_key], info.features[y_key]
    x_shape, x_dtype = tuple(x_feature.shape), x_feature.dtype.name
    # Images of varying size (cats_vs_dogs, …) are resized to image_size × image_size for static batch shapes.
    resize = len(x_shape) == 3 and None in x_shape[:2]
    if resize:
        x_shape, x_dtype = (options.image_size, options.image_size, x_shape[2] or 3), "float32"

    def features(x):
        return tf.image.resize(tf.cast(x, tf.float32), x_shape[:2]) if resize else x

    def make(split):
        return lambda: builder.as_dataset(split=split, shuffle_files=False).map(
            lambda example: {"x": features(example[x_key]), "y": example[y_key]},
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    spec = {"features": {"x": (x_shape, x_dtype)},
            "label": (tuple(getattr(y_feature, "shape", ())), y_feature.dtype.name)}
    if resize:
        spec["x_max"] = 255.0
    if hasattr(y_feature, "num_classes"):
        spec["num_classes"], spec["label_names"] = y_feature.num_classes, list(y_feature.names)
    num_examples = {k: builder.info.splits[v].num_examples for k, v in split_names.items()}
    return Source(f"tfds:{location}", {k: make(v) for k, v in split_names.items()}, num_examples, spec)


def _columns_source(location, builder, split_names, label_column):
    """A dataset of named scalar features (movielens, …): x = every other scalar feature as a dict, y = label."""
    features = builder.info.features
    if label_column not in features:
        raise DataError(f"--data=tfds:{location}: --label_column={label_column!r} is not a feature; "
                        f"features: {', '.join(sorted(features.keys()))}")
    columns = sorted(k for k in features.keys() if k != label_column and tuple(features[k].shape) == ())

    def make(split):
        return lambda: builder.as_dataset(split=split, shuffle_files=False).map(
            lambda example: {"x": {k: example[k] for k in columns}, "y": example[label_column]},
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def dtype(feature):
        name = getattr(feature.dtype, "name", str(feature.dtype))
        return "string" if name in ("string", "object", "str") else name

    spec = {"features": {k: ((), dtype(features[k])) for k in columns},
            "label": (tuple(features[label_column].shape), dtype(features[label_column])),
            "label_column": label_column}
    num_examples = {k: builder.info.splits[v].num_examples for k, v in split_names.items()}
    return Source(f"tfds:{location}", {k: make(v) for k, v in split_names.items()}, num_examples, spec)
