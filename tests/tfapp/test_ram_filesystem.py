"""A run directory on a non-local filesystem (TensorFlow's in-memory `ram://`) gets every file, as gs:// would."""
import json

import tensorflow as tf

from tfapp import config as config_lib
from tfapp import run


def test_run_writes_everything_through_gfile():
    model_dir = "ram://tfapp-tests/run"
    content = run.run(config_lib.Config(model_dir=model_dir, strategy="default").resolved(smoke=True))
    for name in ("metrics.csv", "curves.png", "report.json", "checkpoints/checkpoint"):
        assert tf.io.gfile.exists(f"{model_dir}/{name}"), name
    assert tf.io.gfile.glob(f"{model_dir}/tensorboard/train/events.out.tfevents.*")
    assert tf.io.gfile.exists(f"{content['export_path']}/saved_model.pb")
    with tf.io.gfile.GFile(f"{model_dir}/report.json") as f:
        assert json.load(f)["steps"] == content["steps"] == 20
    with tf.io.gfile.GFile(f"{model_dir}/metrics.csv") as f:
        assert f.readline().strip() == "step,split,metric,value"
