"""Writes colab/quickstart.ipynb and colab/tpu.ipynb (unexecuted) from the cells below.

    python colab/make_notebooks.py
"""
import os

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))

BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/{repo}/blob/main/colab/{name})"
INSTALL = '''# Install tfapp from its repository (Colab), unless it is importable already (a local checkout, CI).
import importlib.util, os, subprocess, sys
TFAPP_REPO = os.environ.get("TFAPP_REPO", "git+https://github.com/OWNER/tfapp")  # set to the repository you use
if importlib.util.find_spec("tfapp") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", TFAPP_REPO{extra}], check=True)
# SMOKE=1 (what CI sets) trains a few steps; unset, the task's full size runs.
SMOKE = os.environ.get("TFAPP_SMOKE") == "1"
print("tfapp ready; smoke size:", SMOKE)'''

quick = new_notebook()
quick.cells = [
    new_markdown_cell("# tfapp quickstart — train, plot, export, reload, predict\n\n" + BADGE.format(repo="OWNER/tfapp", name="quickstart.ipynb") +
                      "\n\nAny runtime (CPU, GPU or TPU VM with TensorFlow's TPU runtime). The same calls as `tfapp-train`: a `Config` "
                      "is every flag, `run.run` trains, evaluates, writes the run directory and exports a SavedModel."),
    new_code_cell(INSTALL.format(extra="")),
    new_markdown_cell("## Which accelerator is there?\nDetection never asks the network: TPUs are found from local signals "
                      "(environment variables, `/dev/accel*`), exactly as `--strategy=auto` does."),
    new_code_cell('''import tensorflow as tf
from strategies import tpu
print("TensorFlow", tf.__version__)
print("GPUs:", tf.config.list_physical_devices("GPU"))
print("local TPU signals:", tpu.local_tpu_signals() or "none")'''),
    new_markdown_cell("## Train\n`strategy='auto'` picks a TPU, several GPUs, or one device. Change any field of the `Config` "
                      "(they are the `tfapp-train` flags)."),
    new_code_cell('''from tfapp import config, run
cfg = config.Config(task="digits", strategy="auto").resolved(smoke=SMOKE)
report = run.run(cfg)
print({k: report[k] for k in ("final_metrics", "steps", "steps_per_second", "strategy", "export_path")})'''),
    new_markdown_cell("## Curves"),
    new_code_cell('''from IPython.display import Image, display
display(Image(filename=f"{cfg.model_dir}/curves.png"))'''),
    new_markdown_cell("## Reload the export with TensorFlow alone and predict"),
    new_code_cell('''import numpy as np
import pipelines
serve = tf.saved_model.load(report["export_path"]).signatures["serving_default"]
test = list(pipelines.load("embedded:digits").splits["test"]().take(8).as_numpy_iterator())
pixels = np.stack([e["x"] for e in test]).astype("float32")
predicted = serve(pixels=tf.constant(pixels))["class_id"].numpy()
print("predicted:", predicted.tolist())
print("labels:   ", [int(e["y"]) for e in test])
assert predicted.shape == (8,)'''),
    new_markdown_cell("## Your own model\n`tfapp.fit` trains your own Keras model (subclassed, functional or `Sequential`) with your "
                      "loss, metrics and data on the same engine: validation keeps the best checkpoint, the test split is "
                      "read once, the same call resumes after a crash, and the export serves the model's inputs "
                      "([docs/own-model.md](../docs/own-model.md))."),
    new_code_cell('''import keras
import tfapp

digits = pipelines.load("embedded:digits").arrays  # any (x, y) arrays, or a tf.data.Dataset of (x, y)
x, y = digits["train"]["x"].reshape(-1, 64).astype("float32") / 16, digits["train"]["y"]

class MLP(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden, self.out = keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)

    def call(self, x):
        return self.out(self.hidden(x))

own = tfapp.fit(MLP(), (x, y), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"], steps=60 if SMOKE else 1000, model_dir="runs/own-mlp")
print(own.report["final_metrics"], own.model_dir)'''),
]

tpu_nb = new_notebook()
tpu_nb.cells = [
    new_markdown_cell("# tfapp on a free Colab TPU — Keras on JAX, fed by tf.data\n\n" + BADGE.format(repo="OWNER/tfapp", name="tpu.ipynb") +
                      "\n\nFree Colab TPUs are TPU VMs whose TensorFlow has no TPU runtime (tensorflow-tpu stops at 2.19/2.20; "
                      "TF on Colab TPUs broke in June 2025). So this notebook trains the same tfapp task on the **Keras JAX "
                      "backend** with tfapp's own jitted loop under `keras.distribution.DataParallel` over every TPU core "
                      "(`backend='jax'`, as `tfapp-train --backend=jax`); TensorFlow only runs the tf.data pipeline on the host, and exports "
                      "the SavedModel afterwards. On a Cloud TPU VM with a pinned `tensorflow-tpu`, use "
                      "`tfapp-train --strategy=tpu` (TPUStrategy) instead.\n\nWithout a TPU (e.g. CI) the notebook splits "
                      "the CPU into two JAX devices, so the same data-parallel code path runs."),
    new_code_cell("# Colab's TPU runtime ships jax with TPU support: tfapp does not reinstall it.\n" + INSTALL.format(extra="")),
    new_markdown_cell("## Keras on JAX, over every device\nThe backend must be chosen before Keras is first imported."),
    new_code_cell('''os.environ["KERAS_BACKEND"] = "jax"  # before anything imports Keras
from strategies import tpu
signals = tpu.local_tpu_signals()
if not signals:  # no TPU here: two CPU devices stand in for the cores
    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
import jax
import keras
print("local TPU signals:", signals or "none")
print("Keras backend:", keras.backend.backend(), "| JAX devices:", jax.devices())
assert keras.backend.backend() == "jax"'''),
    new_markdown_cell("## Where the run goes: Google Drive, if mounted\nA Colab runtime can disconnect at any time. "
                      "Mount Drive first (`from google.colab import drive; drive.mount('/content/drive')`) and the run "
                      "directory, with its checkpoints, lives there; without Drive it goes to a temporary folder."),
    new_code_cell('''import tempfile
DRIVE = "/content/drive/MyDrive"
MODEL_DIR = f"{DRIVE}/tfapp-runs/digits-jax" if os.path.isdir(DRIVE) else os.path.join(tempfile.mkdtemp(), "digits-jax")
print("run directory:", MODEL_DIR)'''),
    new_markdown_cell("## Train (the same task and pipeline as on TensorFlow)\ntfapp's own JAX loop: checkpoints every "
                      "`checkpoint_every` steps. **After a disconnect, run this cell again**: it resumes from the last "
                      "checkpoint in `MODEL_DIR` instead of starting over."),
    new_code_cell('''from tfapp import config, run
cfg = config.Config(task="digits", backend="jax", model_dir=MODEL_DIR).resolved(smoke=SMOKE)
report = run.run(cfg)
print({k: report[k] for k in ("final_metrics", "steps", "steps_per_second", "strategy", "num_replicas",
                              "resumed_at_step")})
assert report["num_replicas"] == len(jax.devices())'''),
    new_markdown_cell("## What re-running looks like\nThe same `MODEL_DIR` with more steps: the run continues from its "
                      "last checkpoint (as after a disconnect), it does not start again."),
    new_code_cell('''import dataclasses
longer = dataclasses.replace(cfg, train_steps=cfg.train_steps + cfg.eval_every)
again = run.run(longer)
print("resumed from", again["resumed_from"], "at step", again["resumed_at_step"], "->", again["steps"], "steps")
assert again["resumed_at_step"] == cfg.train_steps and again["steps"] == longer.train_steps'''),
    new_markdown_cell("## Curves"),
    new_code_cell('''from IPython.display import Image, display
display(Image(filename=f"{cfg.model_dir}/curves.png"))'''),
    new_markdown_cell("## Reload the SavedModel (exported through TensorFlow) and predict"),
    new_code_cell('''import numpy as np
import tensorflow as tf
import pipelines
serve = tf.saved_model.load(again["export_path"]).signatures["serving_default"]
test = list(pipelines.load("embedded:digits").splits["test"]().take(8).as_numpy_iterator())
predicted = serve(pixels=tf.constant(np.stack([e["x"] for e in test]).astype("float32")))["class_id"].numpy()
print("predicted:", predicted.tolist())
print("labels:   ", [int(e["y"]) for e in test])
assert predicted.shape == (8,)'''),
]
for nb in (quick, tpu_nb):
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["accelerator"] = "TPU" if nb is tpu_nb else None
    nb.metadata["colab"] = {"provenance": []}
nbformat.write(quick, os.path.join(HERE, "quickstart.ipynb"))
nbformat.write(tpu_nb, os.path.join(HERE, "tpu.ipynb"))
