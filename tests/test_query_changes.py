"""Issue 10 on top of issue 9: appends are changes, stream filters, prefix
deletes as one change, index and event-deletion writes make no revision,
the read methods on snapshots."""

from __future__ import annotations

import threading
from pathlib import Path

from pystore import Change, Store
from pystore.samples.session_pb2 import Session


def test_appends_are_changes_with_stream_and_seq(store: Store) -> None:
    r0 = store.revision()
    assert store.append_events("ex", [(2, Session()), (1, Session())]) == 2
    r1 = store.revision()
    assert r1 == r0 + 1  # one transaction, one revision
    ch = store.changes(r0)
    assert [(c.op, c.kind, c.id, c.stream, c.seq) for c in ch] == [
        ("append", None, None, "ex", 2), ("append", None, None, "ex", 1)]
    assert all(c.revision == r1 for c in ch)
    assert store.append_events("ex", [(1, Session())]) == 0  # skipped: no change
    assert store.revision() == r1
    assert store.append_event("ex", Session()) == 3
    assert store.changes(r1)[0].seq == 3
    store.save_resource("Session", "s", Session())
    put = store.changes(r1)[-1]
    assert (put.op, put.stream, put.seq) == ("put", None, None)


def test_filters_kinds_streams_union(store: Store) -> None:
    store.save_resource("ex", "a", Session())  # a kind named like the stream
    store.append_event("ex", Session())
    store.save_resource("Other", "b", Session())
    store.append_event("log", Session())
    everything = [(c.op, c.kind or c.stream) for c in store.changes()]
    assert everything == [("put", "ex"), ("append", "ex"), ("put", "Other"), ("append", "log")]
    assert [(c.op, c.kind) for c in store.changes(kinds=["ex"])] == [("put", "ex")]
    assert [(c.op, c.stream) for c in store.changes(streams=["ex"])] == [("append", "ex")]
    both = store.changes(kinds=["Other"], streams=["ex"])
    assert [(c.op, c.kind or c.stream) for c in both] == [("append", "ex"), ("put", "Other")]
    assert store.changes(kinds=[], streams=[]) == everything_changes(store)


def everything_changes(store: Store) -> list[Change]:
    return store.changes()


def test_watch_streams_yields_appends(store_path: Path) -> None:
    with Store(store_path, sync=False) as st:
        start = st.revision()
        got: list[Change] = []

        def follow() -> None:
            for c in st.watch(after=start, streams=["ex"], timeout=2.0):
                got.append(c)
                if len(got) == 3:
                    return

        th = threading.Thread(target=follow)
        th.start()
        st.save_resource("ex", "not-an-event", Session())
        st.append_events("ex", [(1, Session()), (5, Session())])
        st.append_event("other", Session())
        st.append_event("ex", Session())
        th.join(10)
        assert [(c.op, c.stream, c.seq, c.kind, c.id) for c in got] == [
            ("append", "ex", 1, None, None), ("append", "ex", 5, None, None),
            ("append", "ex", 6, None, None)]


def test_writes_that_make_no_revision(store: Store) -> None:
    store.save_resource("Session", "s", Session(agent_id="a"))
    store.append_events("ex", [(1, Session())])
    r = store.revision()
    store.create_index("Session", "agent", field="agent_id", msg_type=Session)
    store.create_index("Session", "agent", field="agent_id", msg_type=Session)
    store.rebuild_index("Session", "agent")
    store.drop_index("Session", "agent")
    assert store.delete_events("ex") == 1
    store.delete_events("ex", upto=10)
    assert store.revision() == r and store.changes(r) == []


def test_prefix_delete_is_one_revision_and_one_change(store: Store) -> None:
    store.save_resources("Session", [(f"p/{i}", Session()) for i in range(5)]
                         + [("q", Session())])
    r = store.revision()
    assert store.delete_resources_by_prefix("Session", "p/") == 5
    assert store.revision() == r + 1
    ch = store.changes(r)
    assert [(c.op, c.kind, c.id) for c in ch] == [("delete_prefix", "Session", "p/")]
    assert store.delete_resources_by_prefix("Session", "zzz") == 0
    assert store.revision() == r + 1  # nothing deleted: no revision
    assert store.delete_resources_by_prefix("Session", "") == 1
    assert [(c.op, c.kind, c.id) for c in store.changes(r + 1)] == [
        ("delete_prefix", "Session", "")]
    with store.transaction() as t:
        t.save_resource("Session", "x1", Session())
        t.delete_resources_by_prefix("Session", "x")
    assert [c.op for c in store.changes(r + 2)] == ["put", "delete_prefix"]


def test_snapshot_has_the_read_methods(store: Store) -> None:
    store.create_index("Session", "agent", field="agent_id", msg_type=Session)
    store.save_resource("Session", "s1", Session(agent_id="a"))
    store.append_event("ex", Session(subject="first"))
    with store.snapshot() as snap:
        store.save_resource("Session", "s2", Session(agent_id="a"))
        store.append_event("ex", Session())
        assert snap.find_ids("Session", "agent", "a") == ["s1"]
        assert snap.count_index("Session", "agent", "a") == 1
        assert snap.find_one("Session", "agent", "a", Session).agent_id == "a"
        assert len(snap.find("Session", "agent", "a")) == 1
        assert [i.entries for i in snap.indexes()] == [1]
        assert [e.seq for e in snap.read_events("ex")] == [1]
        assert snap.last_seq("ex") == 1 and snap.streams() == ["ex"]
    assert store.find_ids("Session", "agent", "a") == ["s1", "s2"]
