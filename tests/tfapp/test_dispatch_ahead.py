"""The host loop dispatches the JAX engine's next loop before it reads this one's results (tfapp.host_loop), and
only where nothing at the boundary needs the state: the same run with a batch-watching callback (which turns it
off) ends with bit-identical weights and the same metrics.csv."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = """
import hashlib, json, sys, time
import keras
from tfapp import config as config_lib, host_loop, report, run

class WatchesBatches(keras.callbacks.Callback):
    rates = []  # (the loop's reported learning rate, the trainer's from its settled state)

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append((logs["learning_rate"], trainer.learning_rate()))

out = {}
for watch in (False, True):
    model_dir = f"{sys.argv[1]}/{watch}"
    config = config_lib.Config(model="mlp", backend="jax", steps_per_loop="4", jit_compile="block", export=False,
                               train_steps=48, eval_every=24, checkpoint_every=24, batch_size=32,
                               lr_schedule="cosine", model_dir=model_dir).resolved()
    experiment = run.prepare(config)
    trainer, _, _ = run.choose_trainer(experiment)
    real_start, events = trainer.start, []

    def start(iterator, size, real_start=real_start, events=events):
        events.append("start")
        loop = real_start(iterator, size)
        real_result = loop.result
        def result():
            events.append("result")
            return real_result()
        loop.result = result
        return loop

    trainer.start = start
    run_log = report.RunLog(model_dir)
    outcome = host_loop.run_loops(experiment, trainer, 4, run_log, model_dir, time.time(),
                                  callbacks=[WatchesBatches()] if watch else [])
    run_log.close()
    outstanding, most = 0, 0
    for event in events:
        outstanding += 1 if event == "start" else -1
        most = max(most, outstanding)
    weights = hashlib.sha256(b"".join(keras.ops.convert_to_numpy(v).tobytes() for v in experiment.model.weights))
    with open(f"{model_dir}/metrics.csv") as f:
        rows = f.read()
    out[str(watch)] = {"most_outstanding": most, "steps": outcome.steps, "weights": weights.hexdigest(),
                       "rows": rows, "loops": [size for _, size, _, _ in outcome.loops]}
out["rates"] = WatchesBatches.rates
print(json.dumps(out))
"""


def test_next_loop_dispatched_ahead_trains_the_same(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "KERAS_BACKEND": "jax"})
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    ahead, watched = result["False"], result["True"]
    assert ahead["most_outstanding"] == 2  # a loop was dispatched before the one before it was read
    assert watched["most_outstanding"] == 1  # a callback after each loop: every loop read before the next
    assert ahead["steps"] == watched["steps"] == 48
    assert ahead["loops"] == watched["loops"]  # the same grid: evaluations and checkpoints at 24 and 48
    assert ahead["weights"] == watched["weights"]
    assert ahead["rows"] == watched["rows"]  # loss, metrics and the (cosine) learning rate of every loop
    rates = result["rates"]
    assert len(rates) == len(watched["loops"]) and len({reported for reported, _ in rates}) > 5  # cosine decay
    assert all(reported == pytest.approx(settled, rel=1e-6) for reported, settled in rates)
