"""Every kind of write of an etcd store, its reply lost (tests/test_etcd_once.py's
``Faults`` at the gRPC boundary, the real 3-member cluster): the call's
result and the stored state are those of one application.

Covers the callers of ``EtcdClient.txn`` beyond the single saves and deletes
of test_etcd_once.py: update_resource, prefix deletes, index builds (each of
their write Txns in turn), index drops, unique keys (nested Txns), kept
versions, event deletes, transactions that listed, ``pystore load`` chunks,
and the answer rebuilt after etcd compacted the history meanwhile."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import pytest
from etcd_cluster import need_etcd_extra

need_etcd_extra()

from test_etcd_once import Faults, changes_since, store  # noqa: E402

from pystore import Store, StoreUnavailableError  # noqa: E402
from pystore._etcd import _common as c  # noqa: E402
from pystore._etcd import etcd_api_pb2 as pb  # noqa: E402
from pystore.cli import dump as dumps  # noqa: E402
from pystore.samples.agent_pb2 import Agent  # noqa: E402

if TYPE_CHECKING:
    from etcd_cluster import EtcdCluster

__all__ = ["store"]  # the fixture, shared with test_etcd_once.py


class LoseNth(Faults):
    """Loses the reply of the ``n``-th write Txn from now (0-based);
    ``writes`` counts them."""

    def __init__(self, s: Store, n: int) -> None:
        super().__init__(s)
        self.n = n
        self.writes = 0

    def __call__(self, req: pb.TxnRequest, timeout: float) -> pb.TxnResponse:
        if not c.txn_is_read_only(req):
            if self.writes == self.n:
                self.lose = 1
            self.writes += 1
        return super().__call__(req, timeout)


def compact_now(f: Faults) -> None:
    client = f.client
    client.compact(client.range(b"/", keys_only=True, limit=1).header.revision)


def test_update_resource_runs_fn_on_one_version_and_writes_once(store: Store) -> None:
    store.save_resource("A", "x", Agent(description="0"))
    f = Faults(store)
    start = store.revision()
    f.lose = 1

    def fn(m: Agent) -> None:
        m.description += "+"

    assert store.update_resource("A", "x", Agent, fn).description == "0+"
    assert store.get_resource("A", "x", Agent).description == "0+"
    assert changes_since(store, start) == [("put", "x")]


def test_a_prefix_delete_counts_and_changes_once(store: Store) -> None:
    store.save_resources("A", [(f"p{i}", Agent()) for i in range(4)] + [("q", Agent())])
    f = Faults(store)
    start = store.revision()
    f.lose = 1
    assert store.delete_resources_by_prefix("A", "p") == 4
    assert [ch.op for ch in store.changes(after=start)] == ["delete_prefix"]
    assert store.list_ids("A") == ["q"]


@pytest.mark.parametrize("unique", [False, True])
def test_an_index_build_with_any_of_its_replies_lost(url: str, unique: bool) -> None:
    """The definition, each chunk and the ready mark of a create_index:
    each of them in turn loses its reply; the index comes out whole."""
    n = 0
    while True:
        with Store(url, timeout=10.0) as s:
            kind = f"K{n}"
            s.save_resources(kind, [(str(i), Agent(instructions=f"i{i}")) for i in range(5)])
            f = LoseNth(s, n)
            assert s.create_index(kind, "ix", field="instructions", msg_type=Agent,
                                  unique=unique) == 5
            f.client._txn = f.real
            assert f.lose == 0  # the lost one was among them
            assert s.find_ids(kind, "ix", "i3") == ["3"]
            assert [i.entries for i in s.indexes(kind)] == [5]
            s.save_resource(kind, "new", Agent(instructions="i9"))
            assert s.find_ids(kind, "ix", "i9") == ["new"]
        n += 1
        if n >= f.writes:
            break
    assert n >= 2  # the definition and the ready mark at least


def test_unique_keys_taken_and_let_go_once(store: Store) -> None:
    """A unique key's put, and its holder-only delete (a nested Txn), each
    with the reply lost: the value is held by one record at a time."""
    store.create_index("U", "ix", field="instructions", msg_type=Agent, unique=True)
    f = Faults(store)
    f.lose = 1
    store.save_resource("U", "a", Agent(instructions="v"))
    f.lose = 1
    assert store.delete_resource("U", "a") is True
    f.lose = 1
    store.save_resource("U", "b", Agent(instructions="v"))  # free again
    f.lose = 1
    store.save_resource("U", "b", Agent(instructions="w"))  # b lets v go
    store.save_resource("U", "c", Agent(instructions="v"))
    assert store.find_ids("U", "ix", "v") == ["c"]
    assert store.find_ids("U", "ix", "w") == ["b"]


def test_an_index_drop_with_its_reply_lost(store: Store) -> None:
    store.save_resource("D", "a", Agent(instructions="v"))
    store.create_index("D", "ix", field="instructions", msg_type=Agent)
    f = Faults(store)
    f.lose = 1
    store.drop_index("D", "ix")
    assert store.indexes("D") == []
    f.lose = 1
    assert store.create_index("D", "ix", field="instructions", msg_type=Agent) == 1


def test_kept_versions_are_kept_once(store: Store) -> None:
    f = Faults(store)
    f.lose = 1
    store.set_history("H", 3)
    for i in range(5):
        f.lose = 1
        store.save_resource("H", "x", Agent(description=str(i)))
    got = [(r.revision, Agent.FromString(r.data).description)
           for r in store.history("H", "x")]
    assert [d for _, d in got] == ["4", "3", "2", "1"]  # the live one and 3 kept
    assert len({rev for rev, _ in got}) == 4


def test_a_transaction_that_listed_commits_once(store: Store) -> None:
    store.save_resource("A", "x", Agent())
    f = Faults(store)
    start = store.revision()
    f.lose = 1
    with store.transaction() as t:
        n = len(t.list_resources("A", Agent))
        t.save_resource("A", "y", Agent(description=str(n)))
    assert changes_since(store, start) == [("put", "y")]
    assert store.get_resource("A", "y", Agent).description == "1"


def test_an_event_delete_counts_once(store: Store) -> None:
    for _ in range(3):
        store.append_event("s", Agent())
    f = Faults(store)
    f.lose = 1
    assert store.delete_events("s", upto=2) == 2
    assert [e.seq for e in store.read_events("s")] == [3]
    f.lose = 1
    assert store.append_event("s", Agent()) == 4


def test_a_load_whose_chunks_lose_their_replies(
    store: Store, etcd_cluster: EtcdCluster, etcd_root: bytes
) -> None:
    store.save_resources("L", [(str(i), Agent(description=str(i))) for i in range(3)])
    store.set_history("L", 2)
    store.save_resource("L", "0", Agent(description="again"))
    store.append_event("s", Agent())
    out = io.StringIO()
    dumps.dump(store, out, progress=False)
    copy = etcd_cluster.url(etcd_root.decode().rstrip("/") + "-copy/")
    with Store(copy, timeout=10.0) as dst:
        f = LoseNth(dst, 0)
        start = dst.revision()
        dumps.load(dst, io.StringIO(out.getvalue()))
        assert f.writes >= 1 and f.lose == 0
        assert dst.count("L") == 3
        assert len(dst.history("L", "0")) == 2
        assert [ch.op for ch in dst.changes(after=start)].count("put") == 3
        assert [e.seq for e in dst.read_events("s")] == [1]


# -- the answer rebuilt after a compaction (once.py's ``replay``) -------------


def test_a_save_that_drops_index_entries_needs_no_compacted_history(store: Store) -> None:
    """The save's Txn deletes the record's old index entry; the caller
    reads only the revision, so a history compacted meanwhile must not
    turn the applied save into StoreUnavailableError."""
    store.create_index("I", "ix", field="instructions", msg_type=Agent)
    store.save_resource("I", "x", Agent(instructions="a"))
    f = Faults(store)
    f.before_raise = lambda: compact_now(f)
    f.lose = 1
    rev = store.save_resource("I", "x", Agent(instructions="b"))
    assert store.get_record("I", "x").revision == rev
    assert store.find_ids("I", "ix", "b") == ["x"] and store.find_ids("I", "ix", "a") == []


def test_a_save_that_drops_kept_versions_needs_no_compacted_history(store: Store) -> None:
    store.set_history("H", 1)
    for i in range(3):
        store.save_resource("H", "x", Agent(description=str(i)))
    f = Faults(store)
    f.before_raise = lambda: compact_now(f)
    f.lose = 1
    rev = store.save_resource("H", "x", Agent(description="3"))
    assert store.get_record("H", "x").revision == rev
    assert len(store.history("H", "x")) == 2


def test_a_transaction_with_a_delete_needs_no_compacted_history(store: Store) -> None:
    store.save_resource("A", "gone", Agent())
    f = Faults(store)
    f.before_raise = lambda: compact_now(f)
    f.lose = 1
    with store.transaction() as t:
        assert t.delete_resource("A", "gone") is True
        t.save_resource("A", "new", Agent())
    assert t.revision == store.get_record("A", "new").revision
    assert not store.exists("A", "gone")


def test_a_kind_delete_count_compacted_meanwhile_is_an_honest_error(store: Store) -> None:
    store.save_resources("K", [(str(i), Agent()) for i in range(3)])
    f = Faults(store)
    f.before_raise = lambda: compact_now(f)
    f.lose = 1
    with pytest.raises(StoreUnavailableError, match="compacted"):
        store.delete_resources_by_kind("K")
    assert store.count("K") == 0  # applied, once
