"""Image augmentation for training pipelines: random horizontal flip and pad-and-random-crop.

    tfapp-train --task=image_classification --data=tfds:cifar10 --data_dir=/data/tfds --augment

`flip_and_crop(images, positions, seed)` flips and shifts each training image by up to `pad` pixels; eval
pipelines are never augmented. The randomness is stateless, keyed by (seed, the image's position in the seeded
training stream): the same image at the same step gets the same flip and crop in every run, so a run resumed at
step N (whose pipeline skips the first N batches) augments exactly as an uninterrupted one. `train_dataset(augment=)`
passes the positions. Works on one image [H, W, C] (scalar position) or a batch [B, H, W, C] ([B] positions).
"""
import tensorflow as tf


def _one_image(image, seed_pair, pad):
    flip_seed, crop_seed = tf.unstack(tf.random.experimental.stateless_split(seed_pair, num=2))
    image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    return tf.image.stateless_random_crop(padded, tf.shape(image), crop_seed)


def flip_and_crop(images, positions, seed, pad=4):
    """Random left-right flip and a random crop of the image padded by `pad` pixels (reflect), same size out;
    image i's draw depends only on (`seed`, `positions[i]`)."""
    positions = tf.cast(positions, tf.int64)
    if images.shape.rank == 3:
        return _one_image(images, tf.stack([tf.constant(seed, tf.int64), positions]), pad)
    seeds = tf.stack([tf.fill(tf.shape(positions), tf.constant(seed, tf.int64)), positions], axis=1)
    return tf.map_fn(lambda pair: _one_image(pair[0], pair[1], pad), (images, seeds),
                     fn_output_signature=tf.TensorSpec(images.shape[1:], images.dtype))
