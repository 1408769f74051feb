"""Strategy resolution: a strategy name (plus `--tpu`, `--num_cpu_devices`) -> a real tf.distribute.Strategy.

    python -c "import strategies; print(strategies.get_strategy('mirrored', num_cpu_devices=2))"

Never returns None and never falls back silently: an impossible request raises `StrategyError` with the reason.
"""
from strategies.resolve import NAMES, StrategyError, describe, get_strategy, is_chief
from strategies.tpu import local_tpu_signals

__all__ = ["NAMES", "StrategyError", "get_strategy", "describe", "is_chief", "local_tpu_signals"]
