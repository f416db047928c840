"""Another process that holds a store open and keeps writing it (for the
tests of readers, the CLI and backup).  Each transaction rewrites the pair
Pair/left and Pair/right with the same value and appends a Log record; its
initial map is small, so the map grows while readers run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WRITER = textwrap.dedent("""
    import sys
    import pystore
    from pystore.samples import agent_pb2
    with pystore.Store(sys.argv[1], sync=False, map_size=1 << 20) as s:
        print("ready", flush=True)
        i = 0
        while True:
            with s.transaction() as t:
                t.save_resource("Pair", "left", agent_pb2.Agent(model=str(i)))
                t.save_resource("Pair", "right", agent_pb2.Agent(model=str(i)))
                t.save_resource("Log", f"l{i:08d}", agent_pb2.Agent(instructions="x" * 3000))
            i += 1
""")


@contextmanager
def busy_writer(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Run the writer on ``path`` for the ``with`` block; it must still be alive at the end."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield proc
        assert proc.poll() is None, "the writer died"
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
