"""Map growth of one store while a thread holds a transaction of another
(csrc/ps_registry.c, the gate).

The gate let a thread with a live transaction of ANY store skip waiting for
a growth (so a thread never waits for a growth that waits for it), so such a
thread began reads of a second store while that store's map was being
remapped (a segmentation fault), and a growth of the second store from such
a thread was refused (MDB_MAP_RESIZED from a save).  Its own live
transactions are now counted per store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pystore import Store
from pystore.samples.agent_pb2 import Agent

MODES = {"writemap": {}, "pwrite": {"PYSTORE_WRITEMAP": "0"}}

_READER = textwrap.dedent(
    """
    import sys, threading, time
    import pystore
    from pystore.samples.agent_pb2 import Agent

    base = sys.argv[1]
    x = pystore.Store(base + "/x", sync=False)
    y = pystore.Store(base + "/y", sync=False, map_size=1 << 20)
    x.save_resource("A", "x", Agent(model="x"))
    y.save_resource("A", "k", Agent(model="k"))
    want = y.get_bytes("A", "k")
    stop = threading.Event()
    seen = []

    def reader():
        try:
            with x.transaction() as t:  # a live txn of x for the whole loop
                t.save_resource("A", "x", Agent(model="x2"))
                n = 0
                while not stop.is_set():
                    n += 1
                    assert y.get_bytes("A", "k") == want
                    assert y.get_resource("A", "k", Agent).model == "k"
                    if n % 64 == 0:
                        assert y.list_resources("A") == [want]
                        assert [r.id for r in y.iter_resources("A")] == ["k"]
                seen.append(n)
        except BaseException as exc:
            seen.append(exc)

    th = threading.Thread(target=reader)
    th.start()
    i, deadline = 0, time.monotonic() + 20
    while y.stats().map_size < 48 << 20 and time.monotonic() < deadline and th.is_alive():
        i += 1
        y.save_resource("F", f"f{i}", Agent(instructions="z" * 60_000))
    stop.set()
    th.join(60)
    assert len(seen) == 1 and isinstance(seen[0], int), seen
    print("ok", y.stats().map_size >> 20, "MiB", seen[0], "reads")
    """
)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_reads_inside_another_stores_transaction_while_the_map_grows(
    tmp_path: Path, mode: str
) -> None:
    """Segmentation fault on main within a second (writemap)."""
    env = {**os.environ, **MODES[mode]}
    r = subprocess.run([sys.executable, "-c", _READER, str(tmp_path)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert r.stdout.startswith("ok"), r.stdout
    assert int(r.stdout.split()[1]) >= 48, r.stdout  # it grew all the way


@pytest.mark.parametrize("mode", sorted(MODES))
def test_saves_inside_another_stores_transaction_grow_the_map(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """StoreError 'MDB_MAP_RESIZED' from the save on main, at the first growth."""
    for k, v in MODES[mode].items():
        monkeypatch.setenv(k, v)
    with Store(tmp_path / "x", sync=False) as x, \
            Store(tmp_path / "y", sync=False, map_size=1 << 20) as y:
        x.save_resource("A", "x", Agent(model="x"))
        y.save_resource("F", "f", Agent(model="f"))
        with x.transaction() as t:
            t.save_resource("A", "x", Agent(model="x2"))
            for i in range(80):  # ~5 MB: several growths
                y.save_resource("F", f"f{i}", Agent(instructions="z" * 60_000))
            assert y.save_resources("F", [(f"b{i}", Agent(instructions="b" * 60_000))
                                          for i in range(40)]) == 40
            with y.transaction() as ty:  # a transaction of y inside one of x
                for i in range(40):
                    ty.save_resource("F", f"t{i}", Agent(instructions="t" * 60_000))
        assert y.stats().map_size > 4 << 20
        assert y.count("F") == 161
        assert x.get_resource("A", "x", Agent).model == "x2"
