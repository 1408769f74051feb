"""Test data made on the fly from data that ships offline (scikit-learn's digits): image folders, signals."""
import os

import numpy as np
import PIL.Image
import sklearn.datasets


def digit_image_folder(root, classes=(0, 1), size=32, image_format="png"):
    """Writes root/<digit>/<i>.png: sklearn digits of `classes`, upscaled to size×size grey images."""
    digits = sklearn.datasets.load_digits()
    for cls in classes:
        os.makedirs(os.path.join(root, str(cls)), exist_ok=True)
        for i, image in enumerate(digits.images[digits.target == cls]):
            pixels = (image * (255.0 / 16.0)).astype(np.uint8)
            PIL.Image.fromarray(pixels, "L").resize((size, size), PIL.Image.BILINEAR).save(
                os.path.join(root, str(cls), f"{i}.{image_format}"))
    return root


def noisy_signals(path, n=1200, length=128, seed=0, noise=1.0):
    """Writes an npz of 3-class 1-D signals: a short burst (sine, square, or sawtooth, 16 samples) at a random
    position in unit-variance Gaussian noise. Difficulty: the burst's amplitude is ~1.5 noise σ and its position
    varies, so a position-invariant model (CNN, GRU) should beat an MLP on the raw samples."""
    rng = np.random.default_rng(seed)
    t = np.arange(16)
    shapes = [np.sin(2 * np.pi * t / 8), np.sign(np.sin(2 * np.pi * t / 8)), (t % 8) / 4.0 - 1.0]
    x = rng.normal(0, noise, (n, length)).astype(np.float32)
    y = rng.integers(0, 3, n)
    for i in range(n):
        start = rng.integers(0, length - 16)
        x[i, start:start + 16] += 1.5 * shapes[y[i]]
    np.savez(path, x=x, y=y)
    return path
