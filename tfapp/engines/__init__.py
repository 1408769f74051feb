"""The engines a run trains on, behind one declared interface: `Engine` (what a run needs of an engine) and
`Trainer` (what the host loop needs of the trainer an engine builds).

    python -c "from tfapp import engines; print(engines.get('tensorflow').choose_trainer.__doc__)"

An engine is a module with the functions of `Engine` (`get(name)` imports it, so `--backend=tensorflow` never
imports JAX): `tfapp.engines.tensorflow_engine` (tf.distribute strategies, `tfapp.loop`) and
`tfapp.engines.jax_engine` (JAX devices and meshes, `tfapp.jax_loop`). Everything else of a run, from the
command-line flags to the report, is shared: `tfapp.training.train` drives either engine through these functions
and `tfapp.host_loop` drives either trainer, so neither tests which engine it has.
"""
import importlib
from typing import Any, Callable, Protocol, runtime_checkable

MODULES = {"tensorflow": "tfapp.engines.tensorflow_engine", "jax": "tfapp.engines.jax_engine"}


@runtime_checkable
class Trainer(Protocol):
    """N optimizer steps per call, evaluation, and the state hand-over the host loop needs (tfapp.loop.Trainer,
    tfapp.jax_loop.JaxTrainer). A trainer may also offer `start(iterator, num_steps)`: dispatch the steps and return
    at once an object whose `result()` waits for `train`'s dict (with "learning_rate") and that carries
    `input_wait` / `input_handover`; the host loop then dispatches the next loop before it waits (JaxTrainer)."""
    jit_compile: Any        # the XLA setting it runs: False (off), True (per step) or "block" (per loop)

    def train(self, iterator, num_steps) -> dict: ...                    # runs num_steps steps; the train metrics
    def prepare_evaluate(self, dataset, steps) -> None: ...              # traces/compiles evaluation ahead
    def evaluate(self, dataset, steps) -> dict: ...                      # one pass over the split: its metrics
    def reset_input(self) -> None: ...                                   # forgets a prefetched batch (new iterator)
    def reload_state(self) -> None: ...                                  # takes the model's variables (restored)
    def sync_to_model(self) -> None: ...                                 # writes its state into the Keras variables
    def learning_rate(self) -> float: ...                                # at the optimizer's current step


@runtime_checkable
class Engine(Protocol):
    """What tfapp.training.train needs of an engine. Every function takes the run's `Experiment`
    (tfapp.experiment), which `prepare` builds."""
    NAME: str

    def prepare(self, config) -> Any:
        """The Experiment for a resolved Config (devices, data, model, optimizer; resuming from model_dir's
        checkpoint); raises ValueError subclasses on bad input and writes nothing."""

    def choose_trainer(self, experiment, on_traced: Callable | None = None) -> tuple:
        """(Trainer, steps per loop: an int or autotune.LoopSizeFromSpeed, the autotune record for report.json)."""

    def step_flops(self, experiment, trainer) -> dict:
        """{"flops_per_step", "flops_method"}: a count of the program, not a timing (runs in a background thread)."""

    def device_peak(self, experiment) -> dict:
        """{"peak", "peak_method"}: the devices' peak FLOP/s in the run's compute dtype."""

    def export_preparer(self, experiment) -> Callable | None:
        """A function to run in the background while training (tracing the export's signatures), or None."""

    def write_export(self, experiment, prepared, write_dir) -> tuple:
        """(export path or None, .tflite path, "not written: why" or None) after training; `prepared`: the future
        of export_preparer's function, or None."""

    def report_extras(self, experiment) -> dict:
        """This engine's own report.json keys."""


def get(name):
    """The engine module for --backend=`name`."""
    if name not in MODULES:
        raise ValueError(f"--backend={name}: unknown; one of {', '.join(MODULES)}")
    return importlib.import_module(MODULES[name])
