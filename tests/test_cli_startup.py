"""The ``pystore`` console script interrupted while it starts (docs/cli.md,
exit codes: 130 interrupted, one line, never a traceback).

Importing the package takes ~0.2 s; the console script's entry
(launcher/_pystore_cli.py) catches a Ctrl-C in that time too.  The signal
is sent once the process maps pystore's C module (the package is importing):
earlier it would land in the interpreter's own start-up (a slow box took
over 20 ms), where Python itself reports it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pystore
from pystore.samples.agent_pb2 import Agent

PYSTORE = str(Path(sys.executable).parent / "pystore")


def _wait_for_module(pid: int, name: str, limit: float = 20.0) -> bool:
    """Until the process maps ``name`` (pystore's C module: the package is
    importing) -- past the interpreter's own start-up, whose interrupt is
    Python's business ("Fatal Python error: init_import_site")."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/maps") as f:
                if name in f.read():
                    return True
        except OSError:
            return False
        time.sleep(0.0005)
    return False


@pytest.mark.parametrize("after", [0.0, 0.01, 0.03, 0.06, 0.1])
def test_ctrl_c_while_the_command_starts_is_one_line_and_130(tmp_path: Path,
                                                             after: float) -> None:
    with pystore.Store(tmp_path / "s") as s:
        s.save_resource("A", "x", Agent())
    # as a user runs it: not in the suite's PYTHONDEVMODE, where an interrupt
    # landing while importlib reads a .pyc adds Python's own ResourceWarning
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDEVMODE"}
    p = subprocess.Popen([PYSTORE, "stats", str(tmp_path / "s")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert _wait_for_module(p.pid, "_native"), "the command never loaded pystore"
        time.sleep(after)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert "Traceback" not in err, err
    # the command says so and exits 130 (or it had finished: 0)
    assert p.returncode in (130, 0), (p.returncode, err)
    if p.returncode == 130:
        assert (out, err) == ("", "pystore: interrupted\n")
