"""Keeps TensorFlow's C++ start-up notices out of a command's output; real warnings and errors still show.

    tfapp-train                 # quiet start
    tfapp-train --verbose       # everything TensorFlow prints (so does setting TF_CPP_MIN_LOG_LEVEL yourself)

Since TF 2.20 the C++ runtime logs through absl before `absl::InitializeLog()`, which ignores
`TF_CPP_MIN_LOG_LEVEL`: every run printed "oneDNN custom operations are on", "Could not find cuda drivers", a
cuInit failure and a MapDataset attribute notice. `quiet()` points file descriptor 2 at a pipe that a daemon
thread copies to the real stderr, leaving out absl INFO lines and the known notices (`NOTICES`); anything
else, Python tracebacks included, passes through. It must run before TensorFlow is imported, and `restore()`
before `exec` (the reading thread does not survive it).
"""
import atexit
import os
import re
import sys
import threading

NOTICES = re.compile("|".join([
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"^I\d{4} [\d:.]+ +\d+ \S+\] ",  # absl INFO lines (oneDNN notice, cuda driver search, CPU features …)
    r"cuda_(platform|executor|diagnostics|driver)\.cc.*(cuInit|CUDA|kernel driver)",
    r"NodeDef mentions attribute use_unbounded_threadpool",
    r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
]))
OURS = "TFAPP_QUIET_TF_LOGS"
_state = {}


def wanted(argv=None):
    """Filter unless the user asked to see TensorFlow's logs (--verbose, or TF_CPP_MIN_LOG_LEVEL of their own)."""
    argv = sys.argv if argv is None else argv
    ours = os.environ.get(OURS) == "1"  # set by quiet() itself: a process this one re-executes filters too
    return ("TF_CPP_MIN_LOG_LEVEL" not in os.environ or ours) and "--verbose" not in argv


def _copy(source, target):
    with os.fdopen(source, "rb") as lines:
        for line in lines:
            if not NOTICES.search(line.decode("utf-8", "replace")):
                os.write(target, line)


def quiet():
    """Starts filtering fd 2 (once per process) when `wanted()`; also sets TF_CPP_MIN_LOG_LEVEL=2 for the
    logs that do honour it."""
    if not wanted() or _state:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    os.environ[OURS] = "1"
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    _state["saved"] = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    _state["thread"] = threading.Thread(target=_copy, args=(read_end, _state["saved"]), daemon=True)
    _state["thread"].start()
    atexit.register(restore)


def restore():
    """Points fd 2 back at the real stderr and lets the thread copy what is left in the pipe."""
    if "saved" not in _state:
        return
    sys.stderr.flush()
    os.dup2(_state.pop("saved"), 2)  # the pipe's last writer closes: the thread reads to its end and stops
    _state["thread"].join(timeout=2)


def define_flag():
    """--verbose on a command's absl flags (read by `wanted` from argv, before flags are parsed)."""
    from absl import flags
    if "verbose" not in flags.FLAGS:
        flags.DEFINE_boolean("verbose", False, "Show TensorFlow's C++ start-up notices (oneDNN, CUDA search, …), "
                             "which are hidden unless TF_CPP_MIN_LOG_LEVEL is set.")
