"""`images:DIR` — one sub-folder per class (cats vs dogs style); files decoded and resized in the pipeline.

    tfapp-train --task=image_folder --data=images:/data/pets --image_size=96

Reads jpeg, png, bmp and gif (first frame). Every file is checked once when the source loads (Pillow reads the
header and verifies the data): unreadable ones are skipped, counted and named in `spec["skipped"]` (the run
report shows them), or, with `strict`, raise an error naming the file. All images must have the same number of
channels unless `image_channels` is given, in which case every image is converted to it.
"""
import io
import os

import numpy as np
import PIL.Image
import tensorflow as tf

from pipelines import arrays
from pipelines.source import DataError, Source

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
MODE_CHANNELS = {"1": 1, "L": 1, "LA": 2, "P": 3, "RGB": 3, "RGBA": 4, "CMYK": 3, "YCbCr": 3, "I": 1, "I;16": 1}


def _check_image(path):
    """Number of channels of a readable image file; raises ValueError/OSError if it is not one."""
    with tf.io.gfile.GFile(path, "rb") as f:
        raw = f.read()
    with PIL.Image.open(io.BytesIO(raw)) as image:
        image.verify()
    with PIL.Image.open(io.BytesIO(raw)) as image:
        image.load()
        return MODE_CHANNELS.get(image.mode, 3)


def list_class_files(directory):
    """(classes, [(path, class_index)]) of DIR/<class>/<file>; errors for a missing or empty folder."""
    if not tf.io.gfile.isdir(directory):
        raise DataError(f"{directory}: no such folder")
    classes = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(directory)
                     if tf.io.gfile.isdir(os.path.join(directory, name)))
    if not classes:
        raise DataError(f"{directory}: no class sub-folders (expected {directory}/<class>/<image files>)")
    files = []
    for index, name in enumerate(classes):
        for file_name in sorted(tf.io.gfile.listdir(os.path.join(directory, name))):
            if file_name.lower().endswith(EXTENSIONS):
                files.append((os.path.join(directory, name, file_name), index))
    if not files:
        raise DataError(f"{directory}: no {'/'.join(e[1:] for e in EXTENSIONS)} files in {', '.join(classes)}")
    return classes, files


def _validate(files, strict, image_channels):
    good, skipped, channels = [], [], {}
    for path, label in files:
        try:
            channels[path] = _check_image(path)
        except (OSError, ValueError, SyntaxError) as error:
            if strict:
                raise DataError(f"{path}: unreadable image ({error})") from None
            skipped.append(path)
            continue
        good.append((path, label))
    if not good:
        raise DataError(f"no readable image among {len(files)} files (first: {files[0][0]})")
    if image_channels is None:
        kinds = sorted(set(channels.values()))
        if len(kinds) > 1:
            examples = {c: next(p for p, k in channels.items() if k == c) for c in kinds}
            shown = ", ".join(f"{p} has {c}" for c, p in examples.items())
            raise DataError(f"images of mixed channels ({shown}); pass --image_channels=3 (or 1) to convert all")
        image_channels = kinds[0]
    return good, skipped, image_channels


def decoder(image_size, channels):
    """tf.data map: {"path", "y"} -> {"x": float32 [size, size, channels] in 0..255, "y"}."""
    def decode(example):
        image = tf.io.decode_image(tf.io.read_file(example["path"]), channels=channels, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size])
        return {"x": tf.ensure_shape(image, [image_size, image_size, channels]), "y": example["y"]}
    return decode


def load_images(location, options):
    classes, files = list_class_files(location)
    good, skipped, channels = _validate(files, options.strict, options.image_channels)
    paths = np.asarray([p for p, _ in good])
    labels = np.asarray([label for _, label in good], np.int64)
    train, test = arrays.split_indices(len(good), options.test_fraction, options.seed)
    decode = decoder(options.image_size, channels)

    def make(index):
        return lambda: tf.data.Dataset.from_tensor_slices({"path": paths[index], "y": labels[index]}).map(
            decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    spec = {"features": {"x": ((options.image_size, options.image_size, channels), "float32")},
            "label": ((), "int64"), "num_classes": len(classes), "label_names": classes,
            "skipped": skipped}
    return Source(name=f"images:{location}", splits={"train": make(train), "test": make(test)},
                  num_examples={"train": len(train), "test": len(test)}, spec=spec)
