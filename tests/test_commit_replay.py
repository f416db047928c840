"""Regression: a commit that fills the map replays the write log from the
payloads the transaction borrowed, so they must stay alive until the commit
returns (they were released just before it, and records written in the
transaction whose commit grew the map came back as freed memory)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from pystore import Store
from pystore.samples import agent_pb2


def _sanitizer_env() -> dict[str, str]:
    """Under `make sanitize` the child needs the preloaded ASan runtime too."""
    keep = ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")
    return {k: v for k, v in os.environ.items() if k in keep}


def test_records_survive_map_growth_at_commit(tmp_path: Path) -> None:
    path = tmp_path / "store"
    # Debug allocator hooks overwrite freed memory, so a replay from a
    # released payload shows as corrupt data (not by chance).
    code = textwrap.dedent(f"""
        import pystore
        from pystore.samples import agent_pb2
        with pystore.Store({str(path)!r}, sync=False, map_size=1 << 20) as s:
            for i in range(1200):
                with s.transaction() as t:
                    t.save_resource("Pair", "left", agent_pb2.Agent(model=str(i)))
                    t.save_resource("Log", f"l{{i:05d}}",
                                    agent_pb2.Agent(instructions=f"{{i}}" * 1000))
    """)
    subprocess.run([sys.executable, "-X", "dev", "-c", code], check=True, timeout=300,
                   env={"PYTHONMALLOC": "debug", "PATH": "/usr/bin:/bin", **_sanitizer_env()})
    with Store(path, readonly=True) as s:
        assert s.stats().map_size > 1 << 20  # the map did grow
        bad = [r.id for r in s.iter_resources("Log")
               if r.data != agent_pb2.Agent(instructions=str(int(r.id[1:])) * 1000)
               .SerializeToString()]
        assert s.count("Log") == 1200
    assert bad == []
