"""Test data made on the fly from data that ships offline (scikit-learn's digits): image folders, signals, ratings;
`task_data` picks a small offline dataset for any task."""
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


def low_rank_ratings(path, users=300, items=200, per_user=40, rank=4, seed=0, noise=0.5):
    """Writes a CSV user_id,item_id,rating of generated interactions; returns the path.

    Users and items get random `rank`-dimensional tastes; affinity = user · item. Each user rates `per_user`
    distinct items drawn with probability ∝ exp(2 × affinity) (people rate what they like, so who-rated-what
    carries signal for retrieval), rating = clip(round(3 + 1.2 × affinity + noise), 1, 5). A global-mean
    predictor has RMSE ≈ 1.2; a model that finds the tastes does better; item popularity alone helps retrieval
    a little."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(users, rank)) / np.sqrt(rank)
    v = rng.normal(size=(items, rank))
    affinity = u @ v.T
    with open(path, "w") as f:
        f.write("user_id,item_id,rating\n")
        for user in range(users):
            p = np.exp(2 * affinity[user])
            chosen = rng.choice(items, size=per_user, replace=False, p=p / p.sum())
            for item in chosen:
                rating = int(np.clip(np.round(3 + 1.2 * affinity[user, item] + noise * rng.normal()), 1, 5))
                f.write(f"u{user},{item},{rating}\n")
    return path


def task_data(task_name, tmp_path):
    """(--data, other Config values) of a small offline dataset for the task: its embedded default, or one
    generated here for the tasks whose default needs files (image folder, signals) or a download (MovieLens)."""
    from tfapp import tasks
    if task_name == "image_folder":
        return "images:" + digit_image_folder(str(tmp_path / "folder"), size=16), {"image_size": 16}
    if task_name == "signal_classification":
        return "npz:" + noisy_signals(str(tmp_path / "signals.npz"), n=100), {}
    if task_name == "recommendation":
        path = low_rank_ratings(str(tmp_path / "ratings.csv"), users=50, items=40, per_user=10)
        return "csv:" + path, {"item_column": "item_id", "label_column": "rating"}
    return tasks.get_task(task_name).default_data, {}


def categorical_table(path, rows=300, seed=0):
    """Writes a CSV `size,phase,noise,target` and returns the path: `phase` is a string category (early, mid,
    late) that shifts the binary target, so a model must use it to score well (about 0.9 accuracy with it)."""
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        f.write("size,phase,noise,target\n")
        for _ in range(rows):
            phase, size = rng.choice(["early", "mid", "late"]), rng.normal()
            shift = {"early": -1.0, "mid": 0.0, "late": 1.5}[phase]
            f.write(f"{size:.3f},{phase},{rng.normal():.3f},{int(size + shift + 0.3 * rng.normal() > 0)}\n")
    return path
