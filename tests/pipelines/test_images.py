"""images: a real folder of PNG/JPEG/BMP/GIF files per class, unreadable files skipped or strict, mixed channels."""
import numpy as np
import PIL.Image
import pytest

import pipelines


def _folder(tmp_path, channels_by_class=None, broken=False):
    rng = np.random.default_rng(0)
    root = tmp_path / "pets"
    formats = ["png", "jpeg", "bmp", "gif"]
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            mode = (channels_by_class or {}).get(cls, "RGB")
            size = (12 + i, 10) if mode == "RGB" else (12 + i, 10)
            pixels = rng.integers(0, 255, (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0]), np.uint8)
            fmt = formats[i % 4]
            image = PIL.Image.fromarray(pixels, mode if mode == "L" else None)
            image.save(root / cls / f"{i}.{'jpg' if fmt == 'jpeg' else fmt}", format=fmt.upper())
    (root / "cat" / "notes.txt").write_text("not an image, ignored")
    if broken:
        (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return root


def test_decode_resize_and_labels(tmp_path):
    source = pipelines.load(f"images:{_folder(tmp_path)}", image_size=16, test_fraction=0.25)
    assert source.spec["label_names"] == ["cat", "dog"] and source.spec["num_classes"] == 2
    assert source.num_examples == {"train": 9, "test": 3}
    example = next(iter(source.splits["train"]()))
    assert example["x"].shape == (16, 16, 3) and example["x"].dtype.name == "float32"
    assert float(np.max(example["x"])) > 1.0  # 0..255, normalisation is the model's job
    labels = [int(e["y"]) for s in ("train", "test") for e in source.splits[s]()]
    assert sorted(labels) == [0] * 6 + [1] * 6


def test_unreadable_files_are_skipped_and_named_or_fail_under_strict(tmp_path):
    root = _folder(tmp_path, broken=True)
    source = pipelines.load(f"images:{root}", image_size=8)
    assert source.spec["skipped"] == [str(root / "dog" / "broken.png")]
    assert sum(source.num_examples.values()) == 12
    with pytest.raises(pipelines.DataError, match="broken.png: unreadable image"):
        pipelines.load(f"images:{root}", image_size=8, strict=True)


def test_mixed_channels_error_or_conversion(tmp_path):
    root = _folder(tmp_path, channels_by_class={"cat": "L"})
    with pytest.raises(pipelines.DataError, match="images of mixed channels .*--image_channels"):
        pipelines.load(f"images:{root}", image_size=8)
    source = pipelines.load(f"images:{root}", image_size=8, image_channels=3)
    assert all(e["x"].shape == (8, 8, 3) for e in source.splits["train"]())


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(pipelines.DataError, match="no such folder"):
        pipelines.load(f"images:{tmp_path}/nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(pipelines.DataError, match="no class sub-folders"):
        pipelines.load(f"images:{tmp_path}/empty")
    (tmp_path / "empty" / "cat").mkdir()
    with pytest.raises(pipelines.DataError, match="no jpg/jpeg/png/bmp/gif files in cat"):
        pipelines.load(f"images:{tmp_path}/empty")
