"""Event streams: issue 10's event contract."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest

from pystore import Event, InvalidKeyError, InvalidMessageError, ReadOnlyError, Store, StoreError
from pystore.samples.common_pb2 import ResourceMetadata
from pystore.samples.session_pb2 import Session


def ev(i: int, org: str = "") -> Session:
    return Session(subject=f"e{i}", metadata=ResourceMetadata(org_id=org))


def test_append_events_any_order_returns_new_count(store: Store) -> None:
    assert store.append_events("x", [(3, ev(3)), (1, ev(1)), (10, ev(10)), (9, ev(9))]) == 4
    assert [e.seq for e in store.read_events("x")] == [1, 3, 9, 10]  # numeric order
    assert store.last_seq("x") == 10
    assert store.append_events("x", []) == 0


def test_first_writer_wins_and_retries_are_idempotent(store: Store) -> None:
    assert store.append_events("x", [(1, ev(1)), (2, ev(2))]) == 2
    assert store.append_events("x", [(2, ev(99)), (3, ev(3)), (3, ev(98))]) == 1
    assert [e.data for e in store.read_events("x", Session)] == [ev(1), ev(2), ev(3)]
    for _ in range(3):  # a retried batch changes nothing
        assert store.append_events("x", [(1, ev(1)), (2, ev(2)), (3, ev(3))]) == 0
    assert len(store.read_events("x")) == 3


def test_append_event_assigns_next_seq(store: Store) -> None:
    assert store.last_seq("new") == 0
    assert store.append_event("new", ev(1)) == 1
    assert store.append_event("new", ev(2)) == 2
    store.append_events("new", [(7, ev(7))])
    assert store.append_event("new", ev(8)) == 8


def test_append_event_is_atomic_across_threads(store: Store) -> None:
    seqs: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for i in range(50):
            n = store.append_event("t", ev(i))
            with lock:
                seqs.append(n)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(seqs) == list(range(1, 201))
    assert [e.seq for e in store.read_events("t")] == list(range(1, 201))


def test_read_events_after_limit_types_and_stamp(store: Store) -> None:
    store.append_events("x", [(i, ev(i)) for i in range(1, 21)])
    got = store.read_events("x", after=5, limit=3)
    assert [e.seq for e in got] == [6, 7, 8]
    assert all(isinstance(e, Event) and e.stream == "x" for e in got)
    assert isinstance(got[0].data, bytes) and got[0].data == ev(6).SerializeToString()
    assert store.read_events("x", Session, after=19)[0].data == ev(20)
    assert store.read_events("x", limit=0) == []
    assert store.read_events("x", after=20) == []
    assert store.read_events("nothing") == []
    at = got[0].recorded_at
    assert at.tzinfo is dt.UTC or at.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - at).total_seconds()) < 60
    store.append_events("bad", [(1, Session())])
    store._append_raw("bad", 2, b"\xff\xff", 5)
    with pytest.raises(InvalidMessageError):
        store.read_events("bad", Session)


def test_delete_events_never_lets_a_retry_reappend(store: Store) -> None:
    store.append_events("x", [(i, ev(i)) for i in range(1, 11)])
    assert store.delete_events("x", upto=4) == 4
    assert [e.seq for e in store.read_events("x")] == [5, 6, 7, 8, 9, 10]
    assert store.append_events("x", [(i, ev(i)) for i in range(1, 11)]) == 0
    assert store.last_seq("x") == 10
    assert store.delete_events("x") == 6
    assert store.read_events("x") == [] and store.last_seq("x") == 10
    assert store.append_events("x", [(i, ev(i)) for i in range(1, 11)]) == 0
    assert store.append_event("x", ev(11)) == 11
    # upto above the last seq: last_seq never goes below it
    assert store.delete_events("y", upto=50) == 0
    assert store.last_seq("y") == 50 and store.append_event("y", ev(0)) == 51
    assert store.append_events("y", [(50, ev(50))]) == 0
    assert store.delete_events("y", upto=3) == 0 and store.last_seq("y") == 51


def test_delete_events_makes_gaps_forgotten_too(store: Store) -> None:
    store.append_events("x", [(5, ev(5))])
    store.delete_events("x", upto=5)
    assert store.append_events("x", [(2, ev(2)), (6, ev(6))]) == 1


def test_streams_sorted_with_events(store: Store) -> None:
    for name in ["b", "a", "a\x01", "ab", "é"]:
        store.append_event(name, ev(1))
    store.delete_events("ab")
    assert store.streams() == sorted(["a", "a\x01", "b", "é"])


def test_stream_and_seq_rules(store: Store) -> None:
    for bad in ["", "a\0b", "x" * 501]:
        with pytest.raises(InvalidKeyError):
            store.append_event(bad, ev(1))
        with pytest.raises(ValueError):
            store.read_events(bad)
    store.append_event("s/with/slashes and ✓", ev(1))
    for bad_type in [None, 1, b"x"]:
        with pytest.raises(TypeError):
            store.last_seq(bad_type)  # type: ignore[arg-type]
    for seq in [0, -1, 2**63]:
        with pytest.raises(ValueError):
            store.append_events("x", [(seq, ev(1))])
    for seq_t in [True, "1", 1.0]:
        with pytest.raises(TypeError):
            store.append_events("x", [(seq_t, ev(1))])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        store.append_events("x", [ev(1)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        store.append_event("x", b"raw")  # type: ignore[arg-type]
    assert store.append_events("x", [(2**63 - 1, ev(1))]) == 1
    with pytest.raises(StoreError, match="seq"):
        store.append_event("x", ev(2))  # no seq left
    with pytest.raises(ValueError):
        store.read_events("x", after=-1)
    with pytest.raises(ValueError):
        store.delete_events("x", upto=-1)
    assert store.read_events("x", after=2**63 - 1) == []
    assert store.last_seq("x") == 2**63 - 1


def test_tenancy_stripping_applies_to_events(store: Store) -> None:
    store.append_events("x", [(1, ev(1, org="org-1"))])
    store.append_event("x", ev(2, org="org-2"))
    assert [e.data.metadata.org_id for e in store.read_events("x", Session)] == ["", ""]


def test_streams_are_apart_from_kinds(store: Store) -> None:
    store.append_event("Session", ev(1))
    store.save_resource("Session", "s", ev(1))
    assert store.kinds() == ["Session"]
    assert store.count("Session") == 1 and len(store.list_resources("Session")) == 1
    assert store.delete_resources_by_kind("Session") == 1
    assert store.kinds() == [] and store.read_events("Session")[0].seq == 1
    assert store.delete_resources_by_prefix("Session", "") == 0
    assert store.streams() == ["Session"]


def test_events_in_a_transaction(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as t:
        t.append_events("x", [(1, ev(1))])
        assert t.read_events("x")[0].seq == 1 and t.last_seq("x") == 1
        raise RuntimeError
    assert store.read_events("x") == [] and store.last_seq("x") == 0
    with store.transaction() as t:
        assert t.append_event("x", ev(1)) == 1
        t.save_resource("Session", "s", ev(1))
        t.delete_events("x", upto=1)
        assert t.streams() == []
    assert store.last_seq("x") == 1 and store.count("Session") == 1


def test_events_survive_reopen_and_readonly(store_path: Path) -> None:
    with Store(store_path) as st:
        st.append_events("x", [(1, ev(1)), (2, ev(2))])
        st.delete_events("x", upto=1)
    with Store(store_path, readonly=True) as ro:
        assert [e.seq for e in ro.read_events("x")] == [2]
        assert ro.last_seq("x") == 2 and ro.streams() == ["x"]
        with pytest.raises(ReadOnlyError):
            ro.append_event("x", ev(3))
    with Store(store_path) as st:
        assert st.append_events("x", [(1, ev(1))]) == 0
