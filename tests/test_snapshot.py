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
