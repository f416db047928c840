"""The contract suite: every shared behaviour of ``Store``, proven on both
backends (``any_store`` runs each test on LMDB and on the 3-member etcd
cluster).  Documented differences are marked ``lmdb_only``/``etcd_only``
with the reason (README, "Backends")."""

from __future__ import annotations

import threading

import pytest

import pystore
from pystore import (
    AlreadyExistsError,
    ConflictError,
    InvalidKeyError,
    NotFoundError,
    ReadOnlyError,
    Store,
    StoreClosedError,
    TransactionError,
)
from pystore.samples.agent_pb2 import Agent


def _tenant(m: Agent) -> Agent:
    m.metadata.org_id = "secret-org"
    return m


def test_is_a_store(any_store: Store, backend: str) -> None:
    assert isinstance(any_store, Store)
    assert type(any_store).__name__ == ("Store" if backend == "lmdb" else "EtcdStore")


def test_crud(any_store: Store) -> None:
    s = any_store
    r1 = s.save_resource("Agent", "a", _tenant(Agent(model="one")))
    assert r1 > 0
    got = s.get_resource("Agent", "a", Agent)
    assert got.model == "one" and got.metadata.org_id == ""  # tenancy stripped
    rec = s.get_record("Agent", "a")
    assert rec.revision == r1 and rec.kind == "Agent" and rec.id == "a"
    assert Agent.FromString(s.get_bytes("Agent", "a")).model == "one"
    r2 = s.save_resource("Agent", "a", Agent(model="two"))
    assert r2 > r1 and s.get_record("Agent", "a").revision == r2
    assert s.count("Agent") == 1 and s.kinds() == ["Agent"]
    assert s.delete_resource("Agent", "a") is True
    assert s.delete_resource("Agent", "a") is False
    with pytest.raises(NotFoundError):
        s.get_resource("Agent", "a", Agent)
    with pytest.raises(KeyError):  # NotFoundError is a KeyError
        s.get_record("Agent", "a")
    assert s.count("Agent") == 0 and s.kinds() == []


def test_get_into_instance_and_bad_keys(any_store: Store) -> None:
    any_store.save_resource("Agent", "x", Agent(model="n"))
    msg = Agent(model="stale")
    assert any_store.get_resource("Agent", "x", msg) is msg and msg.model == "n"
    with pytest.raises(InvalidKeyError):
        any_store.save_resource("Ag/ent", "x", Agent())
    with pytest.raises(InvalidKeyError):
        any_store.get_resource("Agent", "", Agent)
    with pytest.raises(TypeError):
        any_store.save_resource("Agent", "x", b"not a message")  # type: ignore[arg-type]


def test_list_iter_kinds(any_store: Store) -> None:
    s = any_store
    for i in range(30):
        s.save_resource("A", f"{i:03d}", Agent(model=str(i)))
    s.save_resource("B", "x", Agent())
    s.save_resource("AA", "y", Agent())
    names = [m.model for m in s.list_resources("A", Agent)]
    assert names == [str(i) for i in range(30)]
    raw = s.list_resources("A")
    assert [Agent.FromString(b).model for b in raw] == names
    assert [r.id for r in s.iter_resources("A", after="025")] == ["026", "027", "028", "029"]
    assert [r.id for r in s.iter_resources("A", limit=3)] == ["000", "001", "002"]
    assert s.kinds() == ["A", "AA", "B"]
    assert s.count("A") == 30 and s.count("Nope") == 0


def test_create(any_store: Store) -> None:
    any_store.create_resource("Agent", "c", Agent(model="first"))
    with pytest.raises(AlreadyExistsError):
        any_store.create_resource("Agent", "c", Agent(model="second"))
    assert any_store.get_resource("Agent", "c", Agent).model == "first"


def test_if_revision(any_store: Store) -> None:
    s = any_store
    with pytest.raises(ConflictError) as ei:
        s.save_resource("Agent", "k", Agent(), if_revision=5)
    assert ei.value.actual == 0 and ei.value.expected == 5
    r = s.save_resource("Agent", "k", Agent(model="a"), if_revision=0)
    with pytest.raises(ConflictError) as ei:
        s.save_resource("Agent", "k", Agent(model="b"), if_revision=0)
    assert ei.value.actual == r
    r2 = s.save_resource("Agent", "k", Agent(model="b"), if_revision=r)
    assert r2 > r
    with pytest.raises(ConflictError):
        s.delete_resource("Agent", "k", if_revision=r)
    assert s.delete_resource("Agent", "k", if_revision=r2) is True
    assert not s.kinds()


def test_revision_moves_forward(any_store: Store) -> None:
    before = any_store.revision()
    r = any_store.save_resource("Agent", "a", Agent())
    assert r > before and any_store.revision() >= r


def test_batch(any_store: Store) -> None:
    n = any_store.save_resources("Agent", [(f"{i}", Agent(model=str(i))) for i in range(100)])
    assert n == 100 and any_store.count("Agent") == 100
    with pytest.raises(InvalidKeyError):  # all or nothing
        any_store.save_resources("Agent", [("new", Agent()), ("", Agent())])
    assert any_store.count("Agent") == 100


@pytest.mark.lmdb_only("etcd takes at most 128 operations in one Txn (TransactionError)")
def test_big_batch(any_store: Store) -> None:
    assert any_store.save_resources("A", [(f"{i}", Agent()) for i in range(200)]) == 200


@pytest.mark.etcd_only("etcd takes at most 128 operations in one Txn")
def test_big_batch_refused(any_store: Store) -> None:
    with pytest.raises(TransactionError, match="128"):
        any_store.save_resources("A", [(f"{i}", Agent()) for i in range(200)])
    assert any_store.count("A") == 0


def test_update(any_store: Store) -> None:
    any_store.save_resource("Agent", "u", Agent(model="x"))
    out = any_store.update_resource("Agent", "u", Agent, lambda m: setattr(m, "model", "y"))
    assert out.model == "y" and any_store.get_resource("Agent", "u", Agent).model == "y"
    with pytest.raises(NotFoundError):
        any_store.update_resource("Agent", "nope", Agent, lambda m: None)

    def boom(m: Agent) -> None:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        any_store.update_resource("Agent", "u", Agent, boom)
    assert any_store.get_resource("Agent", "u", Agent).model == "y"


def test_concurrent_updates_lose_nothing(any_store: Store) -> None:
    any_store.save_resource("Agent", "n", Agent(model="0"))

    def bump(m: Agent) -> None:
        m.model = str(int(m.model) + 1)

    def worker() -> None:
        for _ in range(10):
            any_store.update_resource("Agent", "n", Agent, bump)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert any_store.get_resource("Agent", "n", Agent).model == "40"


def test_transaction_commit_and_rollback(any_store: Store) -> None:
    with any_store.transaction() as t:
        t.save_resource("A", "1", Agent(model="1"))
        t.save_resource("B", "2", Agent(model="2"))
        assert t.get_resource("A", "1", Agent).model == "1"  # own writes
        with pytest.raises(AlreadyExistsError):
            t.create_resource("A", "1", Agent())
    assert t.revision > 0
    assert any_store.get_record("A", "1").revision == any_store.get_record("B", "2").revision
    with pytest.raises(RuntimeError), any_store.transaction() as t2:
        t2.delete_resource("A", "1")
        raise RuntimeError("roll back")
    assert any_store.count("A") == 1


@pytest.mark.etcd_only("LMDB has one writer at a time: a transaction never conflicts")
def test_transaction_conflict_at_commit(any_store: Store) -> None:
    any_store.save_resource("A", "1", Agent(model="0"))
    with pytest.raises(ConflictError), any_store.transaction() as t:
        m = t.get_resource("A", "1", Agent)
        t.save_resource("A", "2", Agent(model=m.model))
        other = Store(any_store.path, timeout=10.0)
        try:
            other.save_resource("A", "1", Agent(model="changed"))
        finally:
            other.close()
    assert any_store.count("A") == 1  # nothing of t was written


@pytest.mark.etcd_only("LMDB calls fn exactly once (a single writer)")
def test_update_fn_may_run_again(any_store: Store) -> None:
    any_store.save_resource("A", "1", Agent(model="0"))
    calls = []
    other = Store(any_store.path, timeout=10.0)

    def fn(m: Agent) -> None:
        calls.append(m.model)
        if len(calls) == 1:  # a writer slips in between the read and the write
            other.save_resource("A", "1", Agent(model="1"))
        m.model += "+"

    try:
        assert any_store.update_resource("A", "1", Agent, fn).model == "1+"
    finally:
        other.close()
    assert calls == ["0", "1"]


def test_snapshot_is_pinned(any_store: Store) -> None:
    any_store.save_resource("A", "1", Agent(model="old"))
    with any_store.snapshot() as snap:
        any_store.save_resource("A", "1", Agent(model="new"))
        any_store.save_resource("A", "2", Agent())
        assert snap.get_resource("A", "1", Agent).model == "old"
        assert snap.count("A") == 1 and len(snap.list_resources("A")) == 1
        assert snap.revision < any_store.revision()
        with pytest.raises(ReadOnlyError):
            snap.save_resource("A", "3", Agent())
    with pytest.raises(StoreClosedError):
        snap.get_resource("A", "1", Agent)


def test_changes_and_delete_kind(any_store: Store) -> None:
    start = any_store.revision()
    r1 = any_store.save_resource("A", "1", Agent())
    any_store.save_resource("B", "1", Agent())
    any_store.delete_resource("A", "1")
    any_store.save_resources("C", [("x", Agent()), ("y", Agent())])
    assert any_store.delete_resources_by_kind("C") == 2
    assert any_store.delete_resources_by_kind("C") == 0
    ch = any_store.changes(start)
    assert [(c.op, c.kind, c.id) for c in ch] == [
        ("put", "A", "1"), ("put", "B", "1"), ("delete", "A", "1"),
        ("put", "C", "x"), ("put", "C", "y"), ("delete_kind", "C", None),
    ]
    assert ch[0].revision == r1
    assert [c.id for c in any_store.changes(start, kinds=["B"])] == ["1"]
    assert len(any_store.changes(start, limit=2)) == 2
    assert any_store.changes(any_store.revision()) == []
    # two kind deletes read in one go: each hides only its own deletes
    again = any_store.revision()
    any_store.save_resource("C", "z", Agent())
    any_store.delete_resources_by_kind("C")
    any_store.save_resource("C", "z", Agent())
    any_store.delete_resources_by_kind("C")
    assert [c.op for c in any_store.changes(again)] == ["put", "delete_kind"] * 2


def test_watch_follows_writes(any_store: Store) -> None:
    start = any_store.revision()
    got: list[pystore.Change] = []

    def writer() -> None:
        for i in range(5):
            any_store.save_resource("W", str(i), Agent())

    t = threading.Thread(target=writer)
    t.start()
    for c in any_store.watch(after=start, timeout=5.0):
        got.append(c)
        if len(got) == 5:
            break
    t.join()
    assert [c.id for c in got] == ["0", "1", "2", "3", "4"]
    assert list(any_store.watch(after=any_store.revision(), timeout=0.2)) == []


def test_watch_ends_when_closed(any_store: Store) -> None:
    it = any_store.watch(timeout=30)
    threading.Timer(0.3, any_store.close).start()
    assert list(it) == []


def test_closed_store(any_store: Store) -> None:
    any_store.close()
    any_store.close()
    with pytest.raises(StoreClosedError):
        any_store.get_resource("A", "1", Agent)
    with pytest.raises(StoreClosedError):
        any_store.save_resource("A", "1", Agent())


def test_readonly_refuses_writes(any_store: Store) -> None:
    any_store.save_resource("A", "1", Agent())
    ro = Store(any_store.path, readonly=True)
    try:
        assert ro.count("A") == 1
        with pytest.raises(ReadOnlyError):
            ro.save_resource("A", "2", Agent())
        with pytest.raises(ReadOnlyError):
            ro.transaction()
    finally:
        ro.close()


def test_schema_recorded(any_store: Store) -> None:
    any_store.save_resource("A", "1", Agent())
    st = any_store.stats()
    assert st.kinds["A"].count == 1 and st.kinds["A"].type_name == Agent.DESCRIPTOR.full_name
    assert st.revision >= any_store.get_record("A", "1").revision


def test_history(any_store: Store) -> None:
    s = any_store
    s.set_history("V", 2)
    assert s.history_keep("V") == 2
    revs = [s.save_resource("V", "a", Agent(model=str(i))) for i in range(4)]
    hist = s.history("V", "a")
    assert [(r.revision, Agent.FromString(r.data).model) for r in hist] == [
        (revs[3], "3"), (revs[2], "2"), (revs[1], "1")]
    assert Agent.FromString(s.get_record_at("V", "a", revs[2]).data).model == "2"
    with pytest.raises(NotFoundError):
        s.get_record_at("V", "a", revs[0])
    s.delete_resource("V", "a")
    assert [r.revision for r in s.history("V", "a")] == [revs[3], revs[2]]
    assert s.delete_history("V", "a") == 2 and s.history("V", "a") == []


def test_exists_list_ids_prefix_delete(any_store: Store) -> None:
    s = any_store
    for id in ("a/1", "a/2", "b/1", "c"):
        s.save_resource("K", id, Agent())
    assert s.exists("K", "a/1") and not s.exists("K", "zz")
    assert s.list_ids("K") == ["a/1", "a/2", "b/1", "c"]
    assert s.list_ids("K", prefix="a/") == ["a/1", "a/2"]
    assert s.list_ids("K", after="a/2", limit=1) == ["b/1"]
    start = s.revision()
    assert s.delete_resources_by_prefix("K", "a/") == 2
    assert s.list_ids("K") == ["b/1", "c"]
    ch = s.changes(start)
    assert [(c.op, c.kind, c.id) for c in ch] == [("delete_prefix", "K", "a/")]


def test_events(any_store: Store) -> None:
    s = any_store
    start = s.revision()
    assert s.append_event("log", Agent(model="1")) == 1
    assert s.append_event("log", Agent(model="2")) == 2
    assert s.append_events("log", [(2, Agent()), (5, Agent(model="5"))]) == 1  # 2 is present
    assert s.last_seq("log") == 5
    evs = s.read_events("log", Agent)
    assert [(e.seq, e.data.model) for e in evs] == [(1, "1"), (2, "2"), (5, "5")]
    assert [e.seq for e in s.read_events("log", after=1, limit=1)] == [2]
    assert s.streams() == ["log"]
    assert s.delete_events("log", upto=2) == 2
    assert s.append_events("log", [(1, Agent())]) == 0  # forgotten: skipped
    assert [e.seq for e in s.read_events("log")] == [5]
    s.save_resource("A", "x", Agent())
    appends = s.changes(start, streams=["log"])
    assert [(c.op, c.stream, c.seq) for c in appends] == [
        ("append", "log", 1), ("append", "log", 2), ("append", "log", 5)]
    assert [c.op for c in s.changes(start, kinds=["A"])] == ["put"]


def test_concurrent_appends_take_distinct_seqs(any_store: Store) -> None:
    seqs: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            n = any_store.append_event("s", Agent())
            with lock:
                seqs.append(n)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seqs) == list(range(1, 21))


def test_collection(any_store: Store) -> None:
    agents = any_store.collection("Agent", Agent)
    agents.save("a", Agent(model="x"))
    agents.create("b", Agent(model="y"))
    assert agents.get("a").model == "x" and agents.get_or_none("zz") is None
    assert agents.exists("b") and agents.count() == 2
    assert agents.update("a", lambda m: setattr(m, "model", "z")).model == "z"
    page = agents.page(1)
    assert [i for i, _ in page.items] == ["a"] and page.next_token is not None
    assert [i for i, _ in agents.page(1, page.next_token).items] == ["b"]
    assert agents.delete("a") and agents.count() == 1


def test_indexes(any_store: Store) -> None:
    s = any_store
    s.save_resource("Agent", "pre", Agent(model="m"))  # backfilled
    assert s.create_index("Agent", "by_model", field="model", msg_type=Agent) == 1
    assert s.create_index("Agent", "by_model", field="model", msg_type=Agent) == 1  # no-op
    s.save_resource("Agent", "a", Agent(model="m"))
    s.save_resource("Agent", "b", Agent(model="n"))
    assert [m.model for m in s.find("Agent", "by_model", "m", Agent)] == ["m", "m"]
    assert s.find_ids("Agent", "by_model", "m") == ["a", "pre"]
    assert s.find_one("Agent", "by_model", "n", Agent).model == "n"
    assert s.count_index("Agent", "by_model", "m") == 2
    s.save_resource("Agent", "a", Agent(model="n"))  # moves a's entry
    assert s.find_ids("Agent", "by_model", "n") == ["a", "b"]
    s.delete_resource("Agent", "b")
    assert s.find_ids("Agent", "by_model", "n") == ["a"]
    assert [(i.name, i.entries) for i in s.indexes("Agent")] == [("by_model", 2)]
    with pytest.raises(NotFoundError):
        s.find_one("Agent", "by_model", "zzz", Agent)
    with pytest.raises(NotFoundError):
        s.find("Agent", "nope", "m")
    with s.transaction() as t:
        t.save_resource("Agent", "c", Agent(model="m"))
    assert s.find_ids("Agent", "by_model", "m") == ["c", "pre"]
    assert s.rebuild_index("Agent", "by_model") == 3
    s.drop_index("Agent", "by_model")
    assert s.indexes() == []


def test_unique_index(any_store: Store) -> None:
    s = any_store
    s.create_index("User", "by_email", field="model", msg_type=Agent, unique=True)
    s.save_resource("User", "u1", Agent(model="a@x"))
    with pytest.raises(pystore.UniqueViolationError) as ei:
        s.save_resource("User", "u2", Agent(model="a@x"))
    assert ei.value.holder == "u1" and ei.value.value == "a@x"
    assert not s.exists("User", "u2")
    s.save_resource("User", "u1", Agent(model="b@x"))  # frees a@x
    s.save_resource("User", "u2", Agent(model="a@x"))
    s.delete_resources_by_kind("User")
    s.save_resource("User", "u3", Agent(model="a@x"))
    assert s.find_ids("User", "by_email", "a@x") == ["u3"]


def test_async_store(store_target: str) -> None:
    import asyncio

    from pystore.aio import AsyncStore

    async def main() -> None:
        async with AsyncStore.open(store_target, timeout=10.0) as a:
            r = await a.save_resource("A", "1", Agent(model="a"))
            assert r > 0
            assert (await a.get_resource("A", "1", Agent)).model == "a"
            assert await a.exists("A", "1") and await a.count("A") == 1
            with pytest.raises(AlreadyExistsError):
                await a.create_resource("A", "1", Agent())
            out = await a.update_resource("A", "1", Agent, lambda m: setattr(m, "model", "b"))
            assert out.model == "b"
            async with a.transaction() as t:
                await t.save_resource("A", "2", Agent())
            assert await a.kinds() == ["A"]
            got = []
            async for ch in a.watch(after=r, timeout=1.0):
                got.append((ch.op, ch.id))
                if len(got) == 2:
                    break
            assert got == [("put", "1"), ("put", "2")]
            assert await a.delete_resource("A", "1") is True

    asyncio.run(main())


@pytest.mark.etcd_only("etcd knows a Txn's revision only when it commits")
def test_saves_in_a_transaction_return_0_until_the_exit(any_store: Store) -> None:
    with any_store.transaction() as t:
        assert t.save_resource("A", "1", Agent()) == 0
    assert t.revision == any_store.get_record("A", "1").revision > 0


@pytest.mark.etcd_only("on LMDB set_history makes no revision; on etcd it is a write")
def test_set_history_is_a_write(any_store: Store) -> None:
    before = any_store.revision()
    any_store.set_history("V", 2)
    assert any_store.revision() > before
    assert any_store.changes(before) == []  # but no change is reported


def test_create_index_on_a_big_kind(any_store: Store) -> None:
    """Far more records than one etcd Txn takes (128 operations): the same
    entries, finds and errors on both backends."""
    s = any_store
    for i in range(0, 300, 100):
        s.save_resources("Big", [(f"{j:04d}", Agent(model=f"m{j % 7}", instructions=f"u{j}"))
                                 for j in range(i, i + 100)])
    assert s.create_index("Big", "m", field="model", msg_type=Agent) == 300
    assert s.create_index("Big", "u", field="instructions", msg_type=Agent, unique=True) == 300
    assert sorted((i.name, i.entries) for i in s.indexes("Big")) == [("m", 300), ("u", 300)]
    assert s.find_ids("Big", "m", "m3") == [f"{j:04d}" for j in range(300) if j % 7 == 3]
    assert s.count_index("Big", "m", "m0") == len(range(0, 300, 7))
    assert s.find_one("Big", "u", "u299", Agent).instructions == "u299"
    with pytest.raises(pystore.UniqueViolationError):
        s.save_resource("Big", "new", Agent(instructions="u5"))
    assert s.rebuild_index("Big", "u") == 300
    s.drop_index("Big", "u")
    s.save_resource("Big", "0250", Agent(instructions="u3"))  # a collision deep in the kind
    with pytest.raises(pystore.UniqueViolationError) as ei:
        s.create_index("Big", "u", field="instructions", msg_type=Agent, unique=True)
    assert (ei.value.value, ei.value.holder) == ("u3", "0003")
    assert [i.name for i in s.indexes()] == ["m"]  # nothing of the failed create
    with pytest.raises(NotFoundError):
        s.find_ids("Big", "u", "u3")
    s.save_resource("Big", "0250", Agent(instructions="u250"))
    assert s.create_index("Big", "u", field="instructions", msg_type=Agent, unique=True) == 300


def test_kind_delete_then_write_in_one_transaction(any_store: Store, backend: str) -> None:
    any_store.save_resource("K", "old", Agent())
    if backend == "lmdb":
        with any_store.transaction() as t:
            t.delete_resources_by_kind("K")
            t.save_resource("K", "new", Agent())
        assert any_store.list_ids("K") == ["new"]
        return
    # etcd (documented difference): one Txn cannot delete a range and put inside it
    with pytest.raises(TransactionError), any_store.transaction() as t:
        t.delete_resources_by_kind("K")
        t.save_resource("K", "new", Agent())
    assert any_store.list_ids("K") == ["old"]


def test_a_child_process_must_open_its_own(any_store: Store) -> None:
    import os

    any_store.save_resource("A", "1", Agent())
    pid = os.fork()
    if pid == 0:  # the child: the parent's store refuses, its own works
        code = 1
        try:
            any_store.count("A")
        except pystore.ForkedError:
            code = 0
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert any_store.count("A") == 1  # the parent's store still works


def test_same_signature_on_both_backends() -> None:
    import inspect

    from etcd_cluster import need_etcd_extra

    need_etcd_extra()  # the etcd backend imports grpc
    from pystore._etcd.store import EtcdStore

    assert inspect.signature(EtcdStore.__init__) == inspect.signature(Store.__init__)
    for name in ("save_resource", "update_resource", "changes", "watch", "delete_resource",
                 "delete_resources_by_kind", "snapshot", "transaction", "stats"):
        assert inspect.signature(getattr(EtcdStore, name)) == inspect.signature(
            getattr(Store, name)), name


def test_a_transaction_reads_its_own_writes_in_lists(any_store: Store) -> None:
    any_store.save_resources("L", [("a", Agent(model="a")), ("c", Agent(model="c"))])
    with any_store.transaction() as t:
        t.save_resource("L", "b", Agent(model="b"))
        t.delete_resource("L", "c")
        t.save_resource("L", "a", Agent(model="a2"))
        assert [m.model for m in t.list_resources("L", Agent)] == ["a2", "b"]
        assert t.count("L") == 2 and t.list_ids("L") == ["a", "b"]
        assert [r.id for r in t.iter_resources("L", after="a")] == ["b"]
        assert t.exists("L", "b") and not t.exists("L", "c")
        t.delete_resources_by_prefix("L", "a")
        assert t.list_ids("L") == ["b"]
        with pytest.raises(NotFoundError):
            t.get_resource("L", "a", Agent)
    assert any_store.list_ids("L") == ["b"]


@pytest.mark.parametrize(("options", "exc"), [
    ({"timeout": "10"}, TypeError), ({"timeout": 0}, ValueError), ({"timeout": True}, TypeError),
    ({"map_size": 0}, ValueError), ({"map_size": 1.5}, TypeError),
    ({"keep_changes": 0}, ValueError), ({"keep_changes": "5"}, TypeError),
    ({"strip_fields": "org_id"}, TypeError), ({"strip_fields": [1]}, TypeError),
])
def test_bad_options_are_refused_alike(store_target: str, options: dict[str, object],
                                       exc: type[Exception]) -> None:
    """Every backend checks every option, also those it ignores."""
    with pytest.raises(exc):
        Store(store_target, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["", "A/B", "a\0b", "k" * 600])
def test_a_malformed_kind_in_a_change_filter_is_invalid_key(any_store: Store, kind: str) -> None:
    # README: a kind is a non-empty str without '/' or NUL, within the key
    # limit; "Violations raise InvalidKeyError" -- also in kinds=[...] of
    # changes() and watch() (they raised a bare ValueError, or accepted it)
    with pytest.raises(InvalidKeyError):
        any_store.changes(0, kinds=[kind])
    with pytest.raises(InvalidKeyError):
        any_store.watch(kinds=["Agent", kind])


def test_finds_and_create_index_refuse_another_type_than_the_kinds(any_store: Store) -> None:
    # issue 11: reading a kind as a type other than the one the store
    # recorded for it is InvalidMessageError naming both -- find and
    # find_one parsed Agent records as Session messages, and create_index
    # built an index of Session's field over Agent records
    from pystore.samples.session_pb2 import Session

    s = any_store
    s.save_resource("Agent", "a", Agent(model="m"))
    s.create_index("Agent", "model", field="model", msg_type=Agent)
    assert s.find("Agent", "model", "m", Agent)[0].model == "m"
    with pytest.raises(pystore.InvalidMessageError, match=r"Agent.*Session"):
        s.find("Agent", "model", "m", Session)
    with pytest.raises(pystore.InvalidMessageError, match=r"Agent.*Session"):
        s.find_one("Agent", "model", "m", Session)
    with pytest.raises(pystore.InvalidMessageError, match=r"Agent.*Session"):
        s.find_one("Agent", "model", "nothing", Session)
    with s.snapshot() as snap, pytest.raises(pystore.InvalidMessageError):
        snap.find("Agent", "model", "m", Session)
    with pytest.raises(pystore.InvalidMessageError, match=r"Agent.*Session"):
        s.create_index("Agent", "subject", field="subject", msg_type=Session)
    assert [i.name for i in s.indexes("Agent")] == ["model"]
    with pytest.raises(pystore.InvalidMessageError), s.transaction() as t:
        t.find_one("Agent", "model", "m", Session)
    assert s.find_one("Agent", "model", "m", Agent).model == "m"
    assert s.find("Agent", "model", "m") == [Agent(model="m").SerializeToString()]


def test_a_prefix_delete_drops_the_kept_versions_under_it(any_store: Store) -> None:
    # docs/format.md, "Version history": a prefix delete is a kind delete of
    # part of the kind (its ids' kept versions go); delete_resource keeps
    # the last version; ids outside the prefix keep theirs
    s = any_store
    s.set_history("Agent", 3)
    for model in ("1", "2"):
        s.save_resources("Agent", [(i, Agent(model=model)) for i in ("tmp-1", "tmp-2", "keep")])
    s.delete_resource("Agent", "tmp-2")
    assert [Agent.FromString(r.data).model for r in s.history("Agent", "tmp-2")] == ["2", "1"]
    assert s.delete_resources_by_prefix("Agent", "tmp-") == 1
    assert s.history("Agent", "tmp-1") == [] and s.history("Agent", "tmp-2") == []
    assert [Agent.FromString(r.data).model for r in s.history("Agent", "keep")] == ["2", "1"]


def test_calls_with_nothing_to_do_still_check_the_store(
    backend: str, store_target: str
) -> None:
    # issue 2: after close() every call raises StoreClosedError, also one
    # with nothing to read or write; a read-only store refuses an empty append
    s = Store(store_target, sync=False, timeout=10.0)
    s.save_resource("A", "x", Agent())
    assert s.append_events("st", []) == 0 and s.list_ids("A", limit=0) == []
    assert s.history("A", "x", limit=0) == [] and s.read_events("st", limit=0) == []
    s.close()
    for call in (lambda: s.append_events("st", []), lambda: s.list_ids("A", limit=0),
                 lambda: s.history("A", "x", limit=0), lambda: s.read_events("st", limit=0),
                 lambda: list(s.iter_resources("A", limit=0))):
        with pytest.raises(StoreClosedError):
            call()
    with Store(store_target, readonly=True, timeout=10.0) as ro, pytest.raises(ReadOnlyError):
        ro.append_events("st", [])
