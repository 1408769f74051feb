"""Small JSON files that tfapp keeps between runs on one machine: measured peak FLOP/s, autotune decisions.

    TFAPP_CACHE_DIR=/tmp/tfapp-cache tfapp-train      # default: $XDG_CACHE_HOME/tfapp, else ~/.cache/tfapp

A cache only saves time: an unreadable or corrupt file reads as empty and is rewritten, never an error. Writes
are atomic (a temporary file in the same folder, then a rename), so parallel runs (`tfapp-sweep --parallel`)
never leave a half-written file; the last writer wins.
"""
import json
import os
import tempfile


def directory():
    """$TFAPP_CACHE_DIR, else $XDG_CACHE_HOME/tfapp, else ~/.cache/tfapp."""
    if os.environ.get("TFAPP_CACHE_DIR"):
        return os.environ["TFAPP_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tfapp")


def path(*names):
    return os.path.join(directory(), *names)


def read_json(file_path, default=None):
    """The JSON value in `file_path`, or `default` when it is missing, unreadable or not valid JSON."""
    try:
        with open(file_path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def memoized(file_path, key, compute):
    """The number under `key` in the JSON dict at `file_path`, computed by `compute()` and stored when missing."""
    cache = read_json(file_path, {})
    cache = cache if isinstance(cache, dict) else {}
    if not isinstance(cache.get(key), (int, float)):
        cache[key] = compute()
        write_json(file_path, cache)
    return cache[key]


def write_json(file_path, value):
    """Writes `value` atomically; a cache that cannot be written (read-only home) is skipped silently."""
    try:
        os.makedirs(os.path.dirname(file_path), exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(file_path), prefix=".tmp-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=1, sort_keys=True)
        os.replace(temporary, file_path)
    except OSError:
        return False
    return True
