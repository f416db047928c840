"""Writes on etcd apply at most once when their answer is lost
(pystore/_etcd/once.py, docs/etcd.md "Retries").

The fault is made at the gRPC boundary of the real client: the Txn reaches
the real cluster and commits, then the caller gets ``UNAVAILABLE`` as if
the reply had been lost (or the request is held back and sent after the
retry: a proposal that commits late).  Everything else is the real
3-member cluster."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from etcd_cluster import need_etcd_extra

need_etcd_extra()

import grpc  # noqa: E402

from pystore import (  # noqa: E402
    ConflictError,
    Store,
    StoreClosedError,
    StoreUnavailableError,
    TransactionError,
    ValueTooLargeError,
)
from pystore._etcd import _common as c  # noqa: E402
from pystore._etcd import etcd_api_pb2 as pb  # noqa: E402
from pystore._etcd.client import EtcdClient  # noqa: E402
from pystore.samples.agent_pb2 import Agent  # noqa: E402

if TYPE_CHECKING:
    pass


class _Lost(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "etcdserver: request timed out (injected: the reply was lost)"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with Store(url, timeout=10.0) as s:
        yield s


class Faults:
    """Wraps the client's Txn stub: the next ``lose`` write Txns are sent
    and their replies lost (``late``: held back, raised as lost, and sent
    after the following attempt returned)."""

    def __init__(self, s: Store) -> None:
        self.client = s._client  # type: ignore[attr-defined]
        self.real = self.client._txn
        self.lose = 0
        self.late = False
        self.held: list[pb.TxnRequest] = []
        self.sent: list[pb.TxnRequest] = []
        self.late_answers: list[pb.TxnResponse] = []
        self.before_raise: Callable[[], None] | None = None
        self.client._txn = self

    def __call__(self, req: pb.TxnRequest, timeout: float) -> pb.TxnResponse:
        write = not c.txn_is_read_only(req)
        if write:
            self.sent.append(req)
        if write and self.lose > 0:
            self.lose -= 1
            if self.late:
                self.held.append(req)
            else:
                self.real(req, timeout=timeout)
                if self.before_raise is not None:
                    self.before_raise()
            raise _Lost()
        resp = self.real(req, timeout=timeout)
        while write and self.held:  # the late proposal commits now
            self.late_answers.append(self.real(self.held.pop(), timeout=timeout))
        return resp


def changes_since(s: Store, rev: int) -> list[tuple[str, str | None]]:
    return [(ch.op, ch.id) for ch in s.changes(after=rev)]


def test_a_save_whose_reply_is_lost_applies_once(store: Store) -> None:
    f = Faults(store)
    start = store.revision()
    f.lose = 1
    rev = store.save_resource("A", "x", Agent(description="one"))
    assert len(f.sent) == 2  # sent again after the lost reply
    assert store.get_record("A", "x").revision == rev
    assert changes_since(store, start) == [("put", "x")]
    assert store.revision() == rev


def test_a_delete_whose_reply_is_lost_still_says_it_existed(store: Store) -> None:
    store.save_resource("A", "x", Agent())
    f = Faults(store)
    start = store.revision()
    f.lose = 1
    assert store.delete_resource("A", "x") is True
    assert changes_since(store, start) == [("delete", "x")]
    f.lose = 1
    assert store.delete_resource("A", "x") is False  # and a missing one says so


def test_a_kind_delete_whose_reply_is_lost_counts_what_it_deleted(store: Store) -> None:
    store.save_resources("K", [(str(i), Agent()) for i in range(7)])
    store.save_resource("L", "other", Agent())
    f = Faults(store)
    start = store.revision()
    f.lose = 1
    assert store.delete_resources_by_kind("K") == 7
    assert changes_since(store, start) == [("delete_kind", None)]
    assert store.count("K") == 0 and store.count("L") == 1


def test_conditional_writes_are_sent_again_and_decided_once(store: Store) -> None:
    """A create, a conditional save and an event append lose their reply:
    each is sent again (no "outcome unknown") and applies once; the retry
    does not judge the write against its own result (no AlreadyExistsError
    for the create, no ConflictError for the conditional save)."""
    f = Faults(store)
    start = store.revision()
    f.lose = 1
    rev = store.create_resource("A", "c", Agent())
    f.lose = 1
    rev2 = store.save_resource("A", "c", Agent(description="2"), if_revision=rev)
    assert rev2 > rev and store.get_record("A", "c").revision == rev2
    f.lose = 1
    seq = store.append_event("st", Agent(description="e"))
    assert [e.seq for e in store.read_events("st")] == [seq]
    assert changes_since(store, start) == [("put", "c"), ("put", "c"), ("append", None)]


def test_a_condition_lost_meanwhile_is_still_reported(store: Store) -> None:
    """The first attempt fails its compare (another writer moved the
    record) and its reply is lost: the retry decides again, and the caller
    gets the ConflictError, not a success and not "outcome unknown"."""
    rev = store.save_resource("A", "x", Agent())
    store.save_resource("A", "x", Agent(description="moved"))
    f = Faults(store)
    f.lose = 1
    with pytest.raises(ConflictError):
        store.save_resource("A", "x", Agent(description="mine"), if_revision=rev)
    assert store.get_resource("A", "x", Agent).description == "moved"


def test_a_proposal_that_commits_late_changes_nothing(store: Store) -> None:
    """The first attempt is held back and sent only after the retry
    applied: it finds its slot holding its token and writes nothing."""
    f = Faults(store)
    f.late = True
    start = store.revision()
    f.lose = 1
    rev = store.save_resource("A", "x", Agent(description="v1"))
    assert len(f.late_answers) == 1 and f.late_answers[0].succeeded  # the guard's branch
    assert changes_since(store, start) == [("put", "x")]
    assert store.revision() == rev


def test_a_transaction_whose_reply_is_lost_commits_once(store: Store) -> None:
    f = Faults(store)
    start = store.revision()
    f.lose = 1
    with store.transaction() as t:
        t.save_resource("A", "1", Agent())
        t.save_resource("A", "2", Agent())
        t.delete_resource("A", "nothing")
    got = changes_since(store, start)
    assert sorted(got) == [("put", "1"), ("put", "2")]
    assert len({ch.revision for ch in store.changes(after=start)}) == 1


def test_a_delete_count_compacted_meanwhile_is_an_honest_error(store: Store) -> None:
    store.save_resource("A", "x", Agent())
    f = Faults(store)
    client = f.client

    def compact() -> None:
        client.compact(client.range(b"/", keys_only=True, limit=1).header.revision)

    f.before_raise = compact
    f.lose = 1
    with pytest.raises(StoreUnavailableError, match="compacted"):
        store.delete_resource("A", "x")
    assert not store.exists("A", "x")  # applied, once


def slot_keys(s: Store) -> list[bytes]:
    client: Any = s._client  # type: ignore[attr-defined]
    root = s._layout.root + b"w/"  # type: ignore[attr-defined]
    return [kv.key for kv in client.range(root, c.prefix_end(root), keys_only=True).kvs]


def test_slots_are_reused_retired_after_a_retry_and_dropped_at_close(url: str) -> None:
    s = Store(url, timeout=10.0)
    try:
        for i in range(5):
            s.save_resource("A", str(i), Agent())
        assert len(slot_keys(s)) == 1  # one call at a time: one slot
        f = Faults(s)
        f.lose = 1
        s.save_resource("A", "r", Agent())
        f.client._txn = f.real
        retired = slot_keys(s)
        s.save_resource("A", "s", Agent())
        assert len(slot_keys(s)) == 2  # the retried call's slot is not reused
        with Store(url, readonly=True) as ro:
            assert ro.count("A") == 7
    finally:
        s.close()
    with Store(url) as other:
        # close() deleted the free slot; the retired one keeps its token (a
        # late attempt of its call must still find it)
        assert slot_keys(other) == retired
        assert other.count("A") == 7


def test_close_drops_every_slot_when_none_was_retired(url: str) -> None:
    s = Store(url, timeout=10.0)
    barrier = threading.Barrier(4)

    def writer(i: int) -> None:
        barrier.wait()
        for n in range(10):
            s.save_resource("A", f"{i}-{n}", Agent())

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= len(slot_keys(s)) <= 4  # a slot per concurrent call, reused
    s.close()
    with Store(url) as other:
        assert slot_keys(other) == []
        assert other.count("A") == 40


def test_an_attempt_committing_after_close_still_applies_once(url: str) -> None:
    """The first attempt is held back past the retry AND the store's
    close(), then commits (sent by another client: a proposal already in
    the cluster does not need ours).  close() must not have deleted the
    retired slot: the late attempt finds its token and writes nothing."""
    s = Store(url, timeout=10.0)
    f = Faults(s)
    f.late = True
    real = f.real

    def hold(req: pb.TxnRequest, timeout: float) -> pb.TxnResponse:
        if f.lose and not c.txn_is_read_only(req):
            f.lose -= 1
            f.held.append(req)
            raise _Lost()
        return real(req, timeout=timeout)

    f.client._txn = hold
    start = s.revision()
    f.lose = 1
    rev = s.save_resource("A", "x", Agent(description="v1"))
    s.close()
    late = EtcdClient.from_url(url)
    try:
        (req,) = f.held
        late.txn(req.compare, req.success, req.failure)
    finally:
        late.close()
    with Store(url) as other:
        assert changes_since(other, start) == [("put", "x")]
        assert other.get_record("A", "x").revision == rev


def test_a_write_racing_close_never_goes_unguarded(url: str) -> None:
    """A save already under way in another thread reaches its Txn while
    close() deletes the slots: it must raise StoreClosedError (or apply
    once), never be sent without its guard and applied twice on a retry."""
    s = Store(url, timeout=10.0)
    s.save_resource("A", "warm", Agent())  # a slot exists: close() has one to drop
    real = s._client._txn  # type: ignore[attr-defined]
    writer_waits, close_runs = threading.Event(), threading.Event()
    lose = [0]
    outcome: list[object] = []

    def stub(req: pb.TxnRequest, timeout: float) -> pb.TxnResponse:
        if c.txn_is_read_only(req) and threading.current_thread().name == "racer":
            writer_waits.set()
            close_runs.wait(10)  # the racer's reads end once close() began
        elif not c.txn_is_read_only(req) and threading.current_thread().name != "racer":
            close_runs.set()  # close()'s own delete of the slots
            racer.join(10)
        if lose[0] and not c.txn_is_read_only(req):
            lose[0] -= 1
            real(req, timeout=timeout)
            raise _Lost()
        return real(req, timeout=timeout)

    def race() -> None:
        lose[0] = 1
        try:
            outcome.append(s.save_resource("Fresh", "x", Agent()))
        except BaseException as exc:  # the outcome is checked below
            outcome.append(exc)

    s._client._txn = stub  # type: ignore[attr-defined]
    start = s.revision()
    racer = threading.Thread(target=race, name="racer")
    racer.start()
    assert writer_waits.wait(10)
    s.close()
    racer.join(10)
    (got,) = outcome
    assert isinstance(got, (int, StoreClosedError)), got
    with Store(url) as other:
        puts = [ch for ch in changes_since(other, start) if ch == ("put", "x")]
        assert len(puts) == (1 if isinstance(got, int) else 0)


def test_a_write_refused_by_the_limits_gives_its_slot_back(url: str) -> None:
    with Store(url, timeout=10.0) as s:
        s.save_resource("A", "x", Agent())
        before = slot_keys(s)
        for _ in range(3):
            with pytest.raises(ValueTooLargeError):
                s.save_resource("A", "big", Agent(description="x" * 2_000_000))
        s.save_resource("A", "y", Agent())
        assert slot_keys(s) == before  # the same one slot, no new ones


def test_a_transaction_at_the_ops_limit_is_refused_before_sending(url: str) -> None:
    """The guard nests the write's Txn (etcd then lets it hold one op less)
    and adds one put to its success branch: a transaction of 127 ops of its
    own is refused before sending, saying why; 126 fit.  With the client's
    check off, the cluster's own refusal is the same TransactionError."""
    with Store(url, timeout=10.0) as s:
        s.save_resource("A", "warm", Agent())  # the kind's schema note is written
        refused = r"of 127 operations: a write of a store takes at most 126 \(--max-txn-ops 128"
        with pytest.raises(TransactionError, match=refused), s.transaction() as t:
            for i in range(126):  # + the change mark: 127 of its own
                t.save_resource("A", str(i), Agent())
        assert s.count("A") == 1
        with s.transaction() as t:
            for i in range(125):
                t.save_resource("A", str(i), Agent())
        assert s.count("A") == 126
    with Store(url + "?max_txn_ops=0", timeout=10.0) as s:
        with pytest.raises(TransactionError, match="too many operations"), s.transaction() as t:
            for i in range(126):
                t.save_resource("A", f"n{i}", Agent())
        assert s.count("A") == 126


def test_an_index_build_fills_txns_to_the_guarded_limit(url: str) -> None:
    """A multi-valued field gives a chunk of 100 records 200 entries: the
    build packs them into Txns as big as a guarded write may be (etcd
    refused the first one, one op too many, and create_index failed)."""
    with Store(url, timeout=20.0) as s:
        s.save_resources("R", [(f"{i:03d}", Agent(tools=[{"name": f"a{i}"}, {"name": f"b{i}"}]))
                               for i in range(100)])
        assert s.create_index("R", "t", field="tools.name", msg_type=Agent) == 200
        assert s.find_ids("R", "t", "b7") == ["007"]
