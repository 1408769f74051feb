"""tfapp-train leaves without the interpreter's teardown: same exit status, same output, nothing lost."""
import subprocess
import sys

from tests.conftest import REPO
from tfapp.cli import leave

PROGRAM = """
import sys
from tfapp.cli import leave, tf_logs
tf_logs.quiet()
def main(argv):
    print("to stdout", flush=False)
    print("to stderr", file=sys.stderr)
    if argv[1:] == ["message"]:
        sys.exit("a message instead of a status")
    return int(argv[1])
leave.run(main)
print("not reached")
"""


def _run(*args):
    return subprocess.run([sys.executable, "-c", PROGRAM, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_the_status_and_every_line_come_through_an_immediate_exit():
    for status in (0, 3):
        out = _run(str(status))
        assert out.returncode == status
        assert out.stdout == "to stdout\n" and out.stderr == "to stderr\n"  # through tf_logs' filter thread too
    out = _run("message")
    assert out.returncode == 1 and out.stderr.splitlines()[-1] == "a message instead of a status"


def test_several_processes_exit_normally():
    assert leave.several_processes({"TF_CONFIG": '{"cluster": {}}'})
    assert not leave.several_processes({})
