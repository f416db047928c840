"""``sync`` decides the syscalls a commit makes, counted with strace.

A ``sync=False`` Store must not flush at commit (that is its whole point);
a ``sync=True`` one must flush at every commit before it returns.  LMDB 0.9
ignores MDB_NOSYNC given at transaction begin, which once made every
``sync=False`` commit flush: this counts the real flushes of a child
process to keep that from coming back.  Both kinds of Store share one
environment when they open the same directory, so the mixed case is
counted too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SAVES = 40

CHILD = textwrap.dedent(
    """
    import sys
    import pystore
    from support import make_agent
    path, mode = sys.argv[1], sys.argv[2]
    if mode == "mixed":
        fast = pystore.Store(path, sync=False)
        durable = pystore.Store(path, sync=True)
        stores = [fast, durable]
    else:
        stores = [pystore.Store(path, sync=(mode == "sync"))]
    # Writes to /dev/null mark the stretch of the commits being counted.
    with open("/dev/null", "w") as f:
        f.write("mark-begin")
    for i in range(SAVES_N):
        for s in stores:
            s.save_resource("Agent", f"a{i}", make_agent(i))
    with open("/dev/null", "w") as f:
        f.write("mark-end")
    for s in stores:
        s.close()
    """
).replace("SAVES_N", str(SAVES))

FLUSHES = ("fsync", "fdatasync", "msync", "sync_file_range")


def _flushes_during_saves(tmp_path: Path, mode: str) -> int:
    """Flush syscalls the child made between its two /dev/null markers."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    log = tmp_path / f"strace-{mode}.log"
    store = tmp_path / f"store-{mode}"
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(log), "-e",
         "trace=" + ",".join(FLUSHES) + ",write",
         sys.executable, str(script), str(store), mode],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )
    if proc.returncode != 0 and "ptrace" in proc.stderr.lower():
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    inside, count, seen = False, 0, False
    for line in log.read_text().splitlines():
        if '"mark-begin"' in line:
            inside, seen = True, True
        elif '"mark-end"' in line:
            inside = False
        elif inside and any(f" {name}(" in f" {line.split(' ', 1)[-1]}" for name in FLUSHES):
            count += 1
    assert seen, "marker not found in the strace log"
    return count


pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")


def test_nosync_store_commits_without_flushing(tmp_path: Path) -> None:
    assert _flushes_during_saves(tmp_path, "nosync") == 0


def test_durable_store_flushes_every_commit(tmp_path: Path) -> None:
    assert _flushes_during_saves(tmp_path, "sync") >= SAVES


def test_shared_env_flushes_only_the_durable_stores_commits(tmp_path: Path) -> None:
    # One environment, two Stores: each commit gets its own Store's choice.
    n = _flushes_during_saves(tmp_path, "mixed")
    assert SAVES <= n <= 2 * SAVES + 2, n
    assert os.path.exists(tmp_path / "store-mixed" / "data.mdb")
