"""A child of fork() using its parent's Store or AsyncStore: ForkedError
from every call, never a wait (an AsyncStore's close() in the child waited
for ever on the writer thread that stayed in the parent, and its batch,
transaction and event writes did too), and the parent goes on unharmed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def run(mode: str, path: Path) -> list[str]:
    r = subprocess.run([sys.executable, str(HERE / "fork_child.py"), mode, str(path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.split("\n")[:-1]


def verify(path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "pystore", "verify", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_forked_child_gets_forked_error_from_every_object_of_its_parent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s"
    assert run("sync", path) == ["child ok", "parent 0 ['child', 'x', 'y']"]
    verify(path)


def test_a_forked_child_of_an_async_store_never_waits(tmp_path: Path) -> None:
    path = tmp_path / "s"
    assert run("async", path) == ["child ok", "parent 0 1 2"]
    verify(path)
