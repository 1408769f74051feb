"""Image augmentation for training pipelines: random horizontal flip and pad-and-random-crop.

    tfapp-train --task=image_classification --data=tfds:cifar10 --data_dir=/data/tfds --augment

`augment(preprocess, seed)` wraps a task's preprocess (raw example -> (image, label)) so training images are
flipped and shifted by up to `pad` pixels; eval pipelines are never augmented. Works on one image [H, W, C] or a
batch [B, H, W, C] (each image drawn independently).
"""
import tensorflow as tf


def flip_and_crop(images, seed, pad=4):
    """Random left-right flip and a random crop of the image padded by `pad` pixels (reflect), same size out."""
    single = images.shape.rank == 3
    batch = images[None] if single else images
    height, width = batch.shape[1], batch.shape[2]
    batch = tf.image.random_flip_left_right(batch, seed=seed)
    padded = tf.pad(batch, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    batch = tf.map_fn(lambda image: tf.image.random_crop(image, [height, width, batch.shape[3]], seed=seed), padded)
    return batch[0] if single else batch


def augment(preprocess, seed):
    """preprocess -> preprocess that also augments the image (features) it returns."""
    def augmented(example):
        image, label = preprocess(example)
        return flip_and_crop(image, seed), label
    return augmented
