"""csv: numeric and categorical columns, the stated NaN handling, string labels, and errors with line numbers."""
import numpy as np
import pytest

import pipelines

TABLE = """size,rooms,city,price
50,2,paris,300
80,,lyon,250
NaN,3,,410
120,4,paris,700
65,2,lyon,280
"""


def _load(tmp_path, text=TABLE, **options):
    path = tmp_path / "houses.csv"
    path.write_text(text)
    return pipelines.load(f"csv:{path}", **{"label_column": "price", "test_fraction": 0.4, **options})


def test_columns_types_missing_values_and_label(tmp_path):
    source = _load(tmp_path)
    assert source.num_examples == {"train": 3, "test": 2}
    assert source.spec["features"] == {"size": ((), "float32"), "rooms": ((), "float32"), "city": ((), "string")}
    assert source.spec["categorical"] == {"city": ["", "lyon", "paris"]}
    rows = [r for split in ("train", "test") for r in source.splits[split]().as_numpy_iterator()]
    by_price = {float(r["y"]): r["x"] for r in rows}
    assert by_price[410.0]["size"] == pytest.approx(np.mean([50, 80, 120, 65]))  # NaN -> column mean
    assert by_price[250.0]["rooms"] == pytest.approx(np.mean([2, 3, 4, 2]))      # empty -> column mean
    assert by_price[410.0]["city"] == b""                                          # missing category: ""


def test_string_labels_become_class_indices(tmp_path):
    source = _load(tmp_path, "a,kind\n1,cat\n2,dog\n3,cat\n4,dog\n5,bird\n", label_column="kind")
    assert source.spec["label_names"] == ["bird", "cat", "dog"]
    labels = sorted(int(r["y"]) for s in ("train", "test") for r in source.splits[s]().as_numpy_iterator())
    assert labels == [0, 1, 1, 2, 2]


@pytest.mark.parametrize("text, options, message", [
    (TABLE, {"label_column": "cost"}, "--label_column='cost' is not a column; columns: size, rooms, city, price"),
    (TABLE, {"label_column": None}, "--label_column is required"),
    ("a,b\n1,2\n3\n", {"label_column": "b"}, "houses.csv:3: expected 2 fields, got 1"),
    ("", {}, "empty file"),
    ("a,price\n", {}, "no data rows"),
    ("a,price\n,1\nNA,2\n", {}, "column 'a' has no values"),
])
def test_bad_tables(tmp_path, text, options, message):
    with pytest.raises(pipelines.DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _load(tmp_path, text, **options)


def test_missing_file(tmp_path):
    with pytest.raises(pipelines.DataError, match="nothere.csv: no such file"):
        pipelines.load(f"csv:{tmp_path}/nothere.csv", label_column="y")
