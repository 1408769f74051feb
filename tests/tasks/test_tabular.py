"""Tabular tasks on data shipped offline: diabetes regression against scikit-learn's LinearRegression on the same
split, breast_cancer classification, categorical columns, and one-row prediction from the command line."""
import numpy as np
import sklearn.linear_model

import pipelines
from tests.conftest import run_cli
from tfapp import config as config_lib
from tfapp import run


def _arrays(source, split):
    rows = list(source.splits[split]().as_numpy_iterator())
    columns = sorted(rows[0]["x"])
    return np.array([[r["x"][c] for c in columns] for r in rows]), np.array([r["y"] for r in rows], float)


def test_diabetes_mae_within_10_percent_of_sklearn_linear_regression(tmp_path):
    source = pipelines.load("embedded:diabetes", seed=0)
    x_train, y_train = _arrays(source, "train")
    x_test, y_test = _arrays(source, "test")
    sklearn_mae = np.mean(np.abs(sklearn.linear_model.LinearRegression().fit(x_train, y_train).predict(x_test)
                                 - y_test))
    report = run.run(config_lib.Config(task="regression", strategy="default", steps_per_loop="50",
                                       jit_compile="false", export=False,
                                       model_dir=str(tmp_path / "r")).resolved())
    print(f"diabetes test MAE: tfapp linear {report['final_metrics']['mae']:.2f}, sklearn {sklearn_mae:.2f}")
    assert report["final_metrics"]["mae"] <= 1.10 * sklearn_mae


def test_breast_cancer_accuracy(tmp_path):
    report = run.run(config_lib.Config(task="classification", strategy="default", steps_per_loop="50",
                                       jit_compile="false", export=False,
                                       model_dir=str(tmp_path / "r")).resolved())
    assert report["final_metrics"]["accuracy"] >= 0.95, report["final_metrics"]


def test_categorical_columns_and_cli_prediction_of_one_row(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["size,city,price"]
    for _ in range(200):
        size, city = rng.uniform(30, 150), rng.choice(["paris", "lyon", "nice"])
        price = 3 * size + {"paris": 200, "lyon": 80, "nice": 120}[city] + rng.normal(0, 5)
        lines.append(f"{size:.1f},{city},{price:.1f}")
    (tmp_path / "houses.csv").write_text("\n".join(lines) + "\n")
    model_dir = tmp_path / "run"
    trained = run_cli([f"--model_dir={model_dir}", "--task=regression", f"--data=csv:{tmp_path}/houses.csv",
                       "--label_column=price", "--train_steps=800", "--steps_per_loop=50", "--jit_compile=false"])
    assert trained.returncode == 0, trained.stderr[-2000:]
    (tmp_path / "new.csv").write_text("size,city\n100,paris\n100,lyon\n")
    out = run_cli([f"--export_dir={model_dir}/export/1", f"--input={tmp_path}/new.csv"], module="tfapp.cli.predict")
    assert out.returncode == 0, out.stderr[-2000:]
    import json
    paris, lyon = (row["prediction"] for row in json.loads(out.stdout.strip().splitlines()[-1]))
    assert abs(paris - 500) < 40 and abs(lyon - 380) < 40 and paris > lyon


def test_predict_errors_are_one_line(tmp_path):
    out = run_cli([f"--export_dir={tmp_path}", f"--input={tmp_path}/x.csv"], module="tfapp.cli.predict")
    assert out.returncode == 2 and "tfapp-predict: error: --export_dir=" in out.stderr.strip().splitlines()[-1]


def test_categorical_csv_trains_under_xla_and_serves_raw_strings(tmp_path):
    """Strings never enter the compiled step: the pipeline maps categories to ids (vocabulary from the train
    split) and the export wraps the lookup, so serving takes raw strings; an unseen category is not an error."""
    from tests import fixtures
    from tests.conftest import read_report, serve_in_clean_process
    path = fixtures.categorical_table(str(tmp_path / "phases.csv"))
    model_dir = tmp_path / "run"
    out = run_cli([f"--model_dir={model_dir}", "--task=classification", f"--data=csv:{path}", "--label_column=target",
                   "--jit_compile=true", "--train_steps=300", "--steps_per_loop=50"])
    assert out.returncode == 0, out.stderr[-2000:]
    report = read_report(str(model_dir))
    assert report["jit_compile"] is True and report["final_metrics"]["accuracy"] >= 0.85, report["final_metrics"]
    served = serve_in_clean_process(report["export_path"], {"size": [0.0, 0.0, 0.0], "noise": [0.0, 0.0, 0.0],
                                                            "phase": ["late", "early", "never-seen"]})
    assert served["class_id"][:2] == [1, 0] and len(served["class_id"]) == 3
