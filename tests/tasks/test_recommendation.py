"""recommendation on generated low-rank ratings (`tests/fixtures.py`): matrix factorisation against the
global-mean RMSE, two-tower recall@10 against most-popular items, top-k serving by user id, and the
`tfds:movielens/100k-ratings` invocation on a dataset of the same layout written offline."""
import numpy as np
import pytest
import tensorflow as tf

from tests import fixtures
from tests.conftest import serve_in_clean_process
from tfapp import config as config_lib
from tfapp import run
from tfapp.tasks import recommendation


@pytest.fixture(scope="module")
def ratings(tmp_path_factory):
    return "csv:" + fixtures.low_rank_ratings(str(tmp_path_factory.mktemp("data") / "ratings.csv"))


def _config(tmp_path, data, **kw):
    return config_lib.Config(task="recommendation", data=data, item_column="item_id", label_column="rating",
                             strategy="default", steps_per_loop="50", jit_compile="false",
                             model_dir=str(tmp_path / "run"), **kw).resolved()


def test_mf_beats_global_mean_and_serves_top_10(tmp_path, ratings):
    experiment = run.prepare(_config(tmp_path, ratings))
    report = run.train(experiment)
    rmse, baseline = report["final_metrics"]["rmse"], report["baselines"]["global_mean_rmse"]
    print(f"low-rank ratings: mf RMSE {rmse:.3f}, global mean {baseline:.3f}")
    assert rmse < 0.9 * baseline
    out = serve_in_clean_process(report["export_path"], {"user_id": ["u0", "u1"]})
    assert np.shape(out["item_ids"]) == (2, 10) and np.all(np.diff(out["scores"], axis=1) <= 0)
    spec = experiment.source.spec
    item_ids = np.array([spec["items"].index(i) + 1 for i in out["item_ids"][0]], np.int32)
    predicted = experiment.model({"user_id": np.full(10, spec["users"].index("u0") + 1, np.int32),
                                  "item_id": item_ids}, training=False)
    np.testing.assert_allclose(np.ravel(predicted), out["scores"][0], rtol=1e-4)


def test_two_tower_recall_at_10_beats_popularity(tmp_path, ratings):
    report = run.run(_config(tmp_path, ratings, model="two_tower", export=False))
    recall, baseline = report["final_metrics"]["recall_at_10"], report["baselines"]["popularity_recall_at_10"]
    print(f"low-rank ratings: two_tower recall@10 {recall:.3f}, most popular {baseline:.3f}")
    assert report["main_metric"] == "in_batch_accuracy" and recall > 1.5 * baseline


def test_in_batch_loss_and_accuracy_target_the_diagonal():
    spec = {"user_column": "u", "item_column": "i", "users": ["a", "b"], "items": ["x", "y"]}
    features, _ = recommendation._preprocess_for(spec, in_batch_labels=True)(
        {"x": {"u": tf.constant(["a", "b", "zz"]), "i": tf.constant([1.0, 2.0, 3.0])}, "y": tf.zeros(3)})
    assert features["user_id"].numpy().tolist() == [1, 2, 0]  # unseen -> 0
    assert features["item_id"].numpy().tolist() == [0, 0, 0]  # numeric ids become "1", "2", "3": not in vocab
    scores = tf.constant([[5.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.0, 0.0, 5.0]])
    accuracy = recommendation.InBatchAccuracy()
    accuracy.update_state(tf.zeros(3), scores)
    assert float(accuracy.result()) == pytest.approx(2 / 3)
    losses = recommendation.InBatchSoftmax(reduction=None)(tf.zeros(3), scores).numpy()
    assert losses[0] == pytest.approx(losses[2]) and losses[1] > losses[0]


def test_unknown_user_column_is_one_line_error(tmp_path, ratings, cli):
    out = cli([f"--model_dir={tmp_path}/run", "--task=recommendation", f"--data={ratings}",
               "--user_column=customer", "--item_column=item_id", "--label_column=rating", "--smoke"])
    assert out.returncode == 2 and not (tmp_path / "run").exists()
    assert "--user_column='customer' is not a feature" in out.stderr.strip().splitlines()[-1]


def test_tfds_movielens_layout_trains_with_the_task_defaults(tmp_path, ratings, cli):
    import tensorflow_datasets as tfds
    rows = open(ratings[4:]).read().splitlines()[1:]
    users, items, values = zip(*(r.split(",") for r in rows))
    dataset = tf.data.Dataset.from_tensor_slices({
        "user_id": list(users), "movie_id": list(items), "user_rating": np.asarray(values, np.float32),
        "timestamp": np.arange(len(rows), dtype=np.int64)})
    features = tfds.features.FeaturesDict({
        "user_id": tfds.features.Text(), "movie_id": tfds.features.Text(),
        "user_rating": tfds.features.Scalar(np.float32), "timestamp": tfds.features.Scalar(np.int64)})
    tfds.dataset_builders.store_as_tfds_dataset(
        name="movielens", version="0.1.1", config="100k-ratings", features=features, data_dir=str(tmp_path / "tfds"),
        split_datasets={"train": dataset})
    out = cli([f"--model_dir={tmp_path}/run", "--task=recommendation", f"--data_dir={tmp_path}/tfds", "--smoke",
               "--noexport"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "recommendation/mf" in out.stdout
