"""store.snapshot(): one consistent read view (issue 9)."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path

import pytest

from pystore import ReadOnlyError, Store, StoreClosedError
from pystore.samples.agent_pb2 import Agent


def test_snapshot_reads_have_the_store_signatures() -> None:
    from pystore.snapshot import Snapshot

    for name in ("get_resource", "get_record", "get_bytes", "list_resources", "count", "kinds",
                 "iter_resources", "history", "get_record_at"):
        assert inspect.signature(getattr(Snapshot, name)) == inspect.signature(
            getattr(Store, name)), name


def test_snapshot_is_one_consistent_view(store: Store) -> None:
    store.save_resources("A", [(f"a{i}", Agent(model="old")) for i in range(50)])
    with store.snapshot() as snap:
        assert snap.revision == 1
        stop = threading.Event()

        def write() -> None:
            n = 0
            while not stop.is_set():
                store.save_resources("A", [(f"a{i}", Agent(model=f"new{n}")) for i in range(50)])
                store.save_resource("B", f"b{n}", Agent())
                n += 1

        th = threading.Thread(target=write)
        th.start()
        try:
            for _ in range(20):
                assert {m.model for m in snap.list_resources("A", Agent)} == {"old"}
                assert snap.count("A") == 50 and snap.kinds() == ["A"]
                assert snap.get_resource("A", "a7", Agent).model == "old"
                assert snap.get_record("A", "a7").revision == 1
                assert Agent.FromString(snap.get_bytes("A", "a3")).model == "old"
                assert [r.revision for r in snap.iter_resources("A", limit=3)] == [1, 1, 1]
        finally:
            stop.set()
            th.join()
        assert store.revision() > 1
        with pytest.raises(ReadOnlyError):
            snap.save_resource("A", "x", Agent())
        with pytest.raises(ReadOnlyError):
            snap.delete_resource("A", "a1")
    with pytest.raises(StoreClosedError):
        snap.count("A")


def test_closing_the_store_closes_its_snapshots(store_path: Path) -> None:
    s = Store(store_path, sync=False)
    s.save_resource("A", "x", Agent())
    snap = s.snapshot().__enter__()
    s.close()  # does not wait for the snapshot's read transaction
    with pytest.raises(StoreClosedError):
        snap.get_record("A", "x")
    snap.close()
    with pytest.raises(StoreClosedError):
        s.snapshot()


def test_an_interrupt_right_after_the_snapshot_begins_never_hangs_close(tmp_path: Path) -> None:
    """A KeyboardInterrupt landing just after the C call that begins the
    snapshot's read txn (before anything could record it) used to leave
    that txn live while the handler's traceback held it: a close() in the
    handler then waited for it forever.  Run in a child with a timeout."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import pystore
        from pystore._lmdb.core import CTxn
        s = pystore.Store({str(tmp_path / "s")!r}, sync=False)
        from pystore.samples.agent_pb2 import Agent
        s.save_resource("A", "x", Agent(model="m"))
        real = CTxn.begin
        def begin_then_interrupt(self, env):
            real(self, env)
            CTxn.begin = real
            raise KeyboardInterrupt  # lands right after the begin returned
        CTxn.begin = begin_then_interrupt
        try:
            with s.snapshot():
                raise AssertionError("not reached")
        except KeyboardInterrupt:
            s.close()  # in the handler: its traceback is still alive
        print("closed", s.closed)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "closed True", r.stderr[-2000:]


def test_a_close_while_the_snapshot_begins_waits_for_it(tmp_path: Path) -> None:
    """The snapshot is registered with the store before its read txn begins
    (so a close always finds it).  A close() in another thread while
    __enter__ is still making C calls on that txn (its revision, the park)
    must not end the txn under it -- it did (the txn was freed by one
    thread while the other passed it to the core) -- but wait for the
    enter: then the snapshot is open and the close ends it."""
    s = Store(tmp_path / "s", sync=False)
    s.save_resource("A", "x", Agent(model="m"))
    start = s._start
    closer: list[threading.Thread] = []

    def start_then_close(txn: object) -> None:
        start(txn)  # type: ignore[arg-type]
        t = threading.Thread(target=s.close)  # from another thread, right now
        closer.append(t)
        t.start()
        t.join(0.5)  # it finished (the old code) or it waits for this enter

    s._start = start_then_close  # type: ignore[method-assign]
    snap = s.snapshot()
    snap.__enter__()  # no error: the close waited
    closer[0].join(10)
    assert not closer[0].is_alive() and s.closed
    with pytest.raises(StoreClosedError):
        snap.get_record("A", "x")
    snap.close()
