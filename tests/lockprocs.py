"""Processes for the write.lock tests: a holder of another process's write
transaction, the end of such processes, a counter program whose lost
updates would show."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).parent

__all__ = ["counter_code", "end", "hold"]


def hold(path: Path) -> subprocess.Popen[str]:
    """Another process holding a write transaction until killed."""
    p = subprocess.Popen(
        [sys.executable, str(HERE / "race_workers.py"), "hold", str(path), "k", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
    )
    assert p.stdout is not None and p.stdout.readline() == "ready\n"
    assert p.stdout.readline() == "holding\n"
    return p


def end(*procs: subprocess.Popen[str]) -> None:
    """Kill what still runs and close the pipes (the holder never ends)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)
        if p.stdout is not None:
            p.stdout.close()


def counter_code(path: Path, loops: int, threads: int) -> str:
    """A program whose threads each add 1 to record C/n ``loops`` times,
    each in a transaction() that reads it first (lost updates show)."""
    return textwrap.dedent(f"""
        import threading
        from pystore import Store
        from pystore.samples.agent_pb2 import Agent
        with Store({str(path)!r}, sync=False) as s:
            def work():
                for _ in range({loops}):
                    with s.transaction() as t:
                        n = int(t.get_resource("C", "n", Agent).model)
                        t.save_resource("C", "n", Agent(model=str(n + 1)))
            ts = [threading.Thread(target=work) for _ in range({threads})]
            [t.start() for t in ts]
            [t.join() for t in ts]
    """)
