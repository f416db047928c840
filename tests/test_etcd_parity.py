"""Parity found by an adversarial review of the etcd backend (issue 13): calls
a user's code makes on the LMDB store, made the same way on both backends
(``any_store``), must give the same results and exceptions."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from pystore import (
    ConflictError,
    InvalidKeyError,
    Store,
    StoreError,
    Transaction,
    UniqueViolationError,
)
from pystore.cli import dump as dump_mod
from pystore.samples.agent_pb2 import Agent

if TYPE_CHECKING:
    from etcd_cluster import EtcdCluster


def _slug(value: str) -> Agent:
    m = Agent()
    m.metadata.slug = value
    return m


def _holders(s: Store, *values: str) -> list[list[str]]:
    return [s.find_ids("Agent", "slug", v) for v in values]


def test_watch_with_timeout_0_yields_what_is_already_there(any_store: Store) -> None:
    # "timeout: ends after T idle seconds": the changes already committed
    # after `after` are not idle time, whatever T is (etcd yielded nothing)
    before = any_store.revision()
    any_store.save_resource("Agent", "a", Agent())
    any_store.save_resource("Agent", "b", Agent())
    any_store.delete_resource("Agent", "a")
    got = [(c.op, c.id) for c in any_store.watch(after=before, timeout=0)]
    assert got == [("put", "a"), ("put", "b"), ("delete", "a")]
    assert [c.id for c in any_store.watch(after=before, timeout=0.001)] == ["a", "b", "a"]


def test_a_transaction_lists_the_kinds_as_it_left_them(any_store: Store) -> None:
    s = any_store
    s.save_resource("Old", "1", Agent())
    s.save_resource("Gone", "1", Agent())
    s.save_resource("Dropped", "1", Agent())
    with s.transaction() as t:
        t.save_resource("New", "1", Agent())
        t.delete_resource("Gone", "1")
        t.delete_resources_by_kind("Dropped")
        assert t.kinds() == ["New", "Old"]
    assert s.kinds() == ["New", "Old"]


def test_a_unique_value_handed_over_in_one_commit(any_store: Store) -> None:
    s = any_store
    s.save_resource("Agent", "1", _slug("s1"))
    s.save_resource("Agent", "2", _slug("s2"))
    s.create_index("Agent", "slug", field="metadata.slug", msg_type=Agent, unique=True)
    # a batch: 2 lets s2 go before 1 takes it (LMDB writes in order)
    s.save_resources("Agent", [("2", _slug("s5")), ("1", _slug("s2"))])
    assert _holders(s, "s1", "s2", "s5") == [[], ["1"], ["2"]]
    # a transaction: 1 lets s2 go, then 2 takes it
    with s.transaction() as t:
        t.save_resource("Agent", "1", _slug("s3"))
        t.save_resource("Agent", "2", _slug("s2"))
    assert _holders(s, "s2", "s3", "s5") == [["2"], ["1"], []]
    # a delete frees a value another record of the same commit takes
    with s.transaction() as t:
        t.delete_resource("Agent", "1")
        t.save_resource("Agent", "9", _slug("s3"))
    assert _holders(s, "s2", "s3") == [["2"], ["9"]]
    # so does a prefix delete
    with s.transaction() as t:
        t.delete_resources_by_prefix("Agent", "9")
        t.save_resource("Agent", "8", _slug("s3"))
    assert _holders(s, "s2", "s3") == [["2"], ["8"]]
    assert s.find_one("Agent", "slug", "s3", Agent).metadata.slug == "s3"
    assert sorted(s.list_ids("Agent")) == ["2", "8"]
    assert [(i.name, i.entries) for i in s.indexes("Agent")] == [("slug", 2)]


def test_two_records_taking_one_unique_value_in_one_commit(any_store: Store) -> None:
    s = any_store
    s.create_index("Agent", "slug", field="metadata.slug", msg_type=Agent, unique=True)
    s.save_resource("Agent", "1", _slug("held"))
    with pytest.raises(UniqueViolationError) as e:
        s.save_resources("Agent", [("7", _slug("n")), ("8", _slug("n"))])
    assert (e.value.index, e.value.value, e.value.holder) == ("slug", "n", "7")
    with pytest.raises(UniqueViolationError) as e, s.transaction() as t:
        t.save_resource("Agent", "7", _slug("m"))
        t.save_resource("Agent", "8", _slug("m"))
    assert (e.value.value, e.value.holder) == ("m", "7")
    # one of them taking a value a record outside the commit holds
    with pytest.raises(UniqueViolationError) as e:
        s.save_resources("Agent", [("7", _slug("held")), ("8", _slug("held"))])
    assert (e.value.value, e.value.holder) == ("held", "1")
    assert s.list_ids("Agent") == ["1"]
    assert _holders(s, "n", "m", "held") == [[], [], ["1"]]


def test_a_dump_lists_kept_versions_of_every_id_in_id_order(
    any_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ids where one is another's prefix followed by a byte below "/" (or by
    # "/"): etcd keeps versions under "<id>/<revision>", whose key order is
    # not the ids' order
    s = any_store
    s.set_history("W", 3)
    ids = ["a", "a/b", "a!", "a/0", "a-1", "b"]
    for i in ids:
        s.save_resource("W", i, Agent(model=i + "1"))
        s.save_resource("W", i, Agent(model=i + "2"))
    for page in (512, 1, 2):
        monkeypatch.setattr(dump_mod, "_PAGE", page)
        out = io.StringIO()
        dump_mod.dump(s, out, progress=False)
        lines = [json.loads(x) for x in out.getvalue().splitlines()]
        kept = [x["history"]["id"] for x in lines if "history" in x]
        assert kept == sorted(ids), page


def _other_writes(s: Store, write: Callable[[Store], object]) -> None:
    other = Store(s.path, timeout=10.0)
    try:
        write(other)
    finally:
        other.close()


@pytest.mark.etcd_only("LMDB has one writer at a time: a transaction never conflicts")
@pytest.mark.parametrize("change", ["create", "update", "delete"])
@pytest.mark.parametrize("read", ["list", "count", "list_ids", "find", "kinds"])
def test_a_transaction_that_listed_conflicts_with_a_change_since(
    any_store: Store, read: str, change: str
) -> None:
    # "ONE etcd Txn at exit that checks nothing it read changed": a list,
    # count or search is a read too (the total below would be stale)
    s = any_store
    s.create_index("A", "slug", field="metadata.slug", msg_type=Agent)
    s.save_resource("A", "1", _slug("x"))
    reads: dict[str, Callable[[Transaction], object]] = {
        "list": lambda t: len(t.list_resources("A")),
        "count": lambda t: t.count("A"),
        "list_ids": lambda t: len(t.list_ids("A")),
        "find": lambda t: len(t.find_ids("A", "slug", "x")),
        "kinds": lambda t: len(t.kinds()),
    }
    changes: dict[str, Callable[[Store], object]] = {
        "create": lambda o: o.save_resource("A", "2", _slug("x")),
        "update": lambda o: o.save_resource("A", "1", _slug("y")),
        "delete": lambda o: o.delete_resource("A", "1"),
    }
    with pytest.raises(ConflictError) as e, s.transaction() as t:
        seen = reads[read](t)
        _other_writes(s, changes[change])
        t.save_resource("Total", "a", Agent(model=str(seen)))
    assert "listed" in str(e.value)
    assert not s.exists("Total", "a")  # nothing of t was written
    # without a change in between it commits
    with s.transaction() as t:
        t.save_resource("Total", "a", Agent(model=str(reads[read](t))))
    assert s.exists("Total", "a")


_BAD_KINDS = ["", "a/b", "a\0", "K" * 600]
_BAD_IDS = ["", "a\0b", "x" * 600]


@pytest.mark.parametrize("kind", _BAD_KINDS)
def test_history_calls_refuse_a_bad_kind_and_store_nothing(any_store: Store, kind: str) -> None:
    s = any_store
    calls: list[Callable[[], object]] = [
        lambda: s.set_history(kind, 3), lambda: s.history_keep(kind),
        lambda: s.history(kind, "x"), lambda: s.get_record_at(kind, "x", 1),
        lambda: s.delete_history(kind, "x"),
    ]
    for call in calls:
        with pytest.raises(InvalidKeyError):
            call()
    out = io.StringIO()  # no keep count was stored under a bad kind
    dump_mod.dump(s, out, progress=False)
    assert "history_keep" not in out.getvalue()


@pytest.mark.parametrize("id", _BAD_IDS)
def test_history_calls_refuse_a_bad_id(any_store: Store, id: str) -> None:
    s = any_store
    s.set_history("W", 2)
    for call in (lambda: s.history("W", id), lambda: s.get_record_at("W", id, 1),
                 lambda: s.delete_history("W", id)):
        with pytest.raises(InvalidKeyError):
            call()


def test_an_index_name_too_long_for_a_key_is_refused(any_store: Store) -> None:
    s = any_store
    s.create_index("A", "n" * 400, field="model", msg_type=Agent)  # fits
    with pytest.raises(InvalidKeyError):
        s.create_index("A", "n" * 505, field="model", msg_type=Agent)
    assert [i.name for i in s.indexes("A")] == ["n" * 400]
    long = "n" * 505
    for call in (lambda: s.drop_index("A", long), lambda: s.rebuild_index("A", long),
                 lambda: s.find_ids("A", long, "x"), lambda: s.count_index("A", long, "x")):
        with pytest.raises(InvalidKeyError):
            call()


def test_waiting_async_watchers_leave_worker_threads_to_other_calls(store_target: str) -> None:
    # A Subscribe-style server: one AsyncStore.watch() per client.  Each
    # waits in a worker thread of the loop's default executor a step at a
    # time (LMDB: 0.25 s); on etcd each held a thread until a change came,
    # so as many watchers as threads froze every other call of the store.
    from pystore.aio import AsyncStore

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=3))
        async with AsyncStore.open(store_target) as s:
            await s.save_resource("A", "1", Agent(model="m"))

            async def follow() -> None:
                async for _ in s.watch(kinds=["Other"]):
                    pass

            tasks = [asyncio.create_task(follow()) for _ in range(3)]
            await asyncio.sleep(0.5)  # every watcher is waiting
            got = await asyncio.wait_for(s.get_resource("A", "1", Agent), 5)
            assert got.model == "m"
            await asyncio.wait_for(s.save_resource("A", "2", Agent()), 5)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert await asyncio.wait_for(s.count("A"), 5) == 2

    asyncio.run(main())


def test_a_prefix_delete_in_a_transaction_counts_its_own_writes(any_store: Store) -> None:
    s = any_store
    s.save_resources("K", [("a1", Agent()), ("a2", Agent()), ("b", Agent())])
    with s.transaction() as t:
        t.save_resource("K", "a3", Agent())  # new here
        t.delete_resource("K", "a1")  # gone here
        assert t.delete_resources_by_prefix("K", "a") == 2  # a2, a3
        assert t.delete_resources_by_prefix("K", "a") == 0
    assert s.list_ids("K") == ["b"]


def test_a_prefix_delete_drops_the_kept_versions_under_it(any_store: Store) -> None:
    # LMDB drops the kept versions of the ids under the prefix (ps_hist_drop_prefix),
    # as a kind delete drops the kind's; etcd kept them
    s = any_store
    s.set_history("H", 2)
    for id in ("a", "a-1", "a/b", "b"):
        s.save_resource("H", id, Agent(model="1"))
        s.save_resource("H", id, Agent(model="2"))
    s.delete_resource("H", "a")  # only kept versions left
    assert s.delete_resources_by_prefix("H", "a") == 2
    assert [s.history("H", id) for id in ("a", "a-1", "a/b")] == [[], [], []]
    assert [Agent.FromString(r.data).model for r in s.history("H", "b")] == ["2", "1"]
    with s.transaction() as t:
        t.delete_resources_by_prefix("H", "b")
    assert s.history("H", "b") == []


def test_events_deleted_past_the_last_seq_are_never_appended(any_store: Store) -> None:
    # "delete_events(stream, upto=N): never re-appended afterwards", also
    # for seqs not appended yet (etcd appended seq 1 again)
    s = any_store
    assert s.delete_events("e", upto=2) == 0
    assert s.last_seq("e") == 2
    assert s.append_events("e", [(1, Agent()), (2, Agent())]) == 0
    assert s.append_event("e", Agent()) == 3
    assert [ev.seq for ev in s.read_events("e")] == [3]
    s.delete_events("f", upto=2**63 - 1)  # a stream closed for good
    with pytest.raises(StoreError):
        s.append_event("f", Agent())
    assert s.streams() == ["e"]


def test_a_transaction_finds_through_its_own_writes(any_store: Store) -> None:
    s = any_store
    s.create_index("Agent", "slug", field="metadata.slug", msg_type=Agent)
    s.save_resources("Agent", [("1", _slug("v")), ("2", _slug("v")), ("3", _slug("w"))])
    with s.transaction() as t:
        t.save_resource("Agent", "4", _slug("v"))  # new with the value
        t.save_resource("Agent", "1", _slug("w"))  # moved away
        t.delete_resource("Agent", "2")
        assert t.find_ids("Agent", "slug", "v") == ["4"]
        assert t.find_ids("Agent", "slug", "w") == ["1", "3"]
        assert [m.metadata.slug for m in t.find("Agent", "slug", "w", Agent, after="1")] == ["w"]
        assert t.count_index("Agent", "slug", "v") == 1
        assert t.find_one("Agent", "slug", "v", Agent).metadata.slug == "v"
        t.delete_resources_by_prefix("Agent", "3")
        assert t.find_ids("Agent", "slug", "w") == ["1"]
        t.delete_resources_by_kind("Agent")
        assert t.find_ids("Agent", "slug", "w") == [] and t.count_index("Agent", "slug", "v") == 0
    assert s.count("Agent") == 0


def test_a_unique_violation_in_a_transaction_is_raised_at_the_call(any_store: Store) -> None:
    # as create_resource and if_revision: the caller may catch it and go on
    s = any_store
    s.create_index("Agent", "slug", field="metadata.slug", msg_type=Agent, unique=True)
    s.save_resource("Agent", "1", _slug("v"))
    with s.transaction() as t:
        with pytest.raises(UniqueViolationError) as e:
            t.create_resource("Agent", "2", _slug("v"))
        assert (e.value.value, e.value.holder) == ("v", "1")
        t.save_resource("Agent", "2", _slug("v2"))
        t.save_resource("Agent", "3", _slug("v3"))
        with pytest.raises(UniqueViolationError) as e:  # held by a record written here
            t.save_resource("Agent", "4", _slug("v3"))
        assert e.value.holder == "3"
        t.save_resource("Agent", "1", _slug("v4"))  # 1 lets v go ...
        t.save_resource("Agent", "5", _slug("v"))  # ... so 5 may take it
        t.delete_resource("Agent", "3")
        t.save_resource("Agent", "4", _slug("v3"))  # freed by the delete
    assert _holders(s, "v", "v2", "v3", "v4") == [["5"], ["2"], ["4"], ["1"]]


@pytest.mark.parametrize("timeout", [float("inf"), 1e12])
def test_a_timeout_no_clock_can_hold_is_refused_alike(store_target: str, timeout: float) -> None:
    # etcd took it, then failed every call at once ("did not answer within
    # inf s") on a healthy cluster: gRPC and the watch's waits overflow
    with pytest.raises(ValueError, match="timeout"):
        Store(store_target, timeout=timeout)
    with Store(store_target, timeout=1e6) as s:  # a long one works
        s.save_resource("A", "1", Agent())
        assert s.count("A") == 1


def test_empty_kind_and_stream_filters_mean_every_change(any_store: Store) -> None:
    # as the C core's change_wanted (and test_query_changes): no names, no filter
    s = any_store
    before = s.revision()
    s.save_resource("A", "1", Agent())
    s.append_event("st", Agent())
    s.delete_resources_by_kind("A")
    every = [(c.op, c.kind, c.stream) for c in s.changes(before)]
    assert len(every) == 3
    for kinds, streams in (([], None), (None, []), ([], [])):
        assert [(c.op, c.kind, c.stream) for c in s.changes(
            before, kinds=kinds, streams=streams)] == every
        assert [(c.op, c.kind, c.stream) for c in s.watch(
            after=before, kinds=kinds, streams=streams, timeout=0)] == every
    assert [c.op for c in s.changes(before, kinds=[], streams=["st"])] == ["append"]


def _kept(s: Store, kind: str, id: str) -> list[str]:
    return [Agent.FromString(r.data).model for r in s.history(kind, id)]


def test_a_lowered_keep_count_applies_to_the_versions_kept_already(any_store: Store) -> None:
    s = any_store
    s.set_history("V", 3)
    s.set_history("VV", 3)  # a kind whose name starts with the other's
    for id in ("a", "a/0", "b"):
        for i in range(4):
            s.save_resource("V", id, Agent(model=f"{id}:{i}"))
            s.save_resource("VV", id, Agent(model=f"{id}:{i}"))
    s.set_history("V", 1)  # no write after it
    for id in ("a", "a/0", "b"):
        assert _kept(s, "V", id) == [f"{id}:3", f"{id}:2"]
        assert len(_kept(s, "VV", id)) == 4
    with s.transaction() as t:  # lowered again with a write and a prefix delete in the txn
        t.set_history("VV", 1)
        t.save_resource("VV", "a", Agent(model="a:4"))
        t.delete_resources_by_prefix("VV", "b")
    assert _kept(s, "VV", "a") == ["a:4", "a:3"]
    assert _kept(s, "VV", "a/0") == ["a/0:3", "a/0:2"]
    assert _kept(s, "VV", "b") == []
    s.set_history("V", 0)
    assert [_kept(s, "V", id) for id in ("a", "a/0", "b")] == [["a:3"], ["a/0:3"], ["b:3"]]
    with s.transaction() as t:  # 0 with a write of the kind in the same transaction
        t.set_history("VV", 0)
        t.save_resource("VV", "a", Agent(model="a:5"))
    assert _kept(s, "VV", "a") == ["a:5"]
    assert _kept(s, "VV", "a/0") == ["a/0:3"]


def test_a_root_under_another_roots_own_name_keeps_apart(
    etcd_cluster: EtcdCluster, etcd_root: bytes
) -> None:
    # README: roots may share a cluster; only one under another's r/ m/ h/ c/
    # e/ i/ collides, so /R/a/ beside /R/ must keep every key apart
    etcd_cluster.ensure_running()
    outer_root = etcd_root.decode()
    with Store(str(etcd_cluster.url(outer_root)), sync=False, timeout=10.0) as outer, \
            Store(str(etcd_cluster.url(outer_root + "a/")), sync=False, timeout=10.0) as inner:
        outer.create_index("Agent", "slug", field="metadata.slug", msg_type=Agent, unique=True)
        inner.create_index("Agent", "slug", field="metadata.slug", msg_type=Agent, unique=True)
        outer.set_history("Agent", 2)
        inner.set_history("Agent", 2)
        start = outer.revision()
        for s, tag in ((outer, "o"), (inner, "i")):
            s.save_resource("Agent", "x", _slug(tag))
            s.save_resource("Agent", "x", _slug(tag + "2"))
            s.append_events("log", [(1, Agent(model=tag))])
        assert [c.op for c in outer.changes(after=start) if c.kind == "Agent"] == ["put", "put"]
        assert inner.find_ids("Agent", "slug", "o2") == []
        assert outer.delete_resources_by_kind("Agent") == 1
        assert outer.kinds() == []
        assert inner.list_ids("Agent") == ["x"]
        assert len(inner.history("Agent", "x")) == 2
        assert inner.find_ids("Agent", "slug", "i2") == ["x"]
        assert [e.seq for e in inner.read_events("log")] == [1]
