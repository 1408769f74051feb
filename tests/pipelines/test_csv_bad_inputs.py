"""What users' CSV files look like: each file either trains, or `tfapp-train` stops with one line naming the file
(and the line and column where there is one), exit status 2, no traceback and no run directory."""
import numpy as np
import pytest

import pipelines

from tests.conftest import read_report, run_cli


def _rows(count=60, seed=0):
    rng = np.random.default_rng(seed)
    return [(float(a), float(b), int(a + b > 0)) for a, b in rng.normal(size=(count, 2))]


def _table(rows, newline="\n"):
    return newline.join(["a,b,target", *(f"{a:.3f},{b:.3f},{t}" for a, b, t in rows)]) + newline


def _messy():
    """A BOM, CRLF line ends, blank lines, and a quoted text column with commas and line breaks in its cells."""
    lines = ["target,a,note,b"]
    for i, (a, b, t) in enumerate(_rows()):
        note = f'"row {i}, see\r\nnext line"' if i % 7 == 0 else ("plain" if i % 2 else "other, with comma")
        note = note if note.startswith('"') else f'"{note}"'
        lines.append(f"{t},{a:.3f},{note},{b:.3f}")
        if i % 10 == 0:
            lines.append("")
    return "\ufeff" + "\r\n".join(lines) + "\r\n"


def test_a_messy_but_valid_csv_trains(tmp_path):
    path = tmp_path / "messy.csv"
    path.write_bytes(_messy().encode("utf-8"))
    out = run_cli([f"--model_dir={tmp_path / 'run'}", "--task=classification", f"--data=csv:{path}",
                   "--label_column=target", "--train_steps=30", "--eval_every=30", "--noexport",
                   "--jit_compile=false", "--steps_per_loop=10"])
    assert out.returncode == 0, out.stderr[-2000:]
    report = read_report(str(tmp_path / "run"))
    assert report["final_metrics"]["accuracy"] > 0.5
    source = pipelines.load(f"csv:{path}", label_column="target")  # "target" despite the BOM before it
    assert sum(source.num_examples.values()) == 60  # quoted line breaks are inside cells, blank lines skipped
    assert source.spec["features"]["note"] == ((), "string")


def _stray_word(rows):
    text = _table(rows).splitlines()
    text[12] = text[12].replace(text[12].split(",")[1], "oops", 1)  # file line 13: column b
    return "\n".join(text) + "\n"


def _wide(columns=10_000, count=20):
    header = ",".join([f"c{i}" for i in range(columns)] + ["target"])
    return "\n".join([header] + [",".join(["1"] * columns + [str(i % 2)]) for i in range(count)]) + "\n"


def _empty_label(rows):
    text = _table(rows).splitlines()
    text[5] = text[5].rsplit(",", 1)[0] + ","  # file line 6
    return "\n".join(text) + "\n"


def _quoted_then_stray():
    """A quoted cell spanning two lines before the bad cell: the line named is the file's, not the row count."""
    rows = _table(_rows(20)).splitlines()
    lines = ["a,b,note,target"] + [f'{r.split(",")[0]},{r.split(",")[1]},"x\ny",{r.split(",")[2]}' for r in rows[1:]]
    lines[15] = lines[15].replace(lines[15].split(",")[1], "oops", 1)  # data row 15 starts on file line 2 * 15
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name,content,message", [
    ("empty_label", _empty_label(_rows()), "empty_label.csv:6: column 'target' (the label) is empty"),
    ("stray_word", _stray_word(_rows()), "stray_word.csv:13: column 'b' is numeric but this cell is 'oops'"),
    ("quoted_then_stray", _quoted_then_stray(), "quoted_then_stray.csv:30: column 'b' is numeric but this cell"),
    ("one_row", "a,b,target\n1,2,1\n", "one_row.csv: 1 examples with test_fraction=0.2 leave an empty split"),
    ("header_only", "a,b,target\n", "header_only.csv: no data rows after the header"),
    ("duplicate_names", "a,b,a,target\n1,2,3,1\n", "duplicate_names.csv:1: duplicate column name 'a' (columns 1 and 3)"),
    ("wide", _wide(), "wide.csv:1: 10001 columns; tables take at most 2000"),
])
def test_bad_csv_stops_with_one_line_and_writes_nothing(tmp_path, name, content, message):
    path = tmp_path / f"{name}.csv"
    path.write_text(content)
    model_dir = tmp_path / "run"
    out = run_cli([f"--model_dir={model_dir}", "--task=classification", f"--data=csv:{path}",
                   "--label_column=target"])
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert lines[-1].startswith("tfapp-train: error: ") and message in lines[-1], lines[-1]
    assert not model_dir.exists()
