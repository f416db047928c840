"""Every method of AsyncStore, AsyncTransaction and AsyncSnapshot against its
synchronous twin: the same names and parameters, and on the same data the
same results (or the same error).  Transactions run on the writer thread and
roll back on error; a snapshot answers every read from one view."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import pystore
from pystore import Store
from pystore.aio import AsyncStore
from pystore.aio_collection import AsyncCollection
from pystore.aio_ops import AsyncReads, AsyncWrites
from pystore.aio_views import AsyncSnapshot, AsyncTransaction
from pystore.records import Event, Resource
from pystore.samples.agent_pb2 import Agent
from pystore.samples.session_pb2 import Session
from pystore.snapshot import Snapshot
from pystore.transaction import Transaction

# -- the surface --------------------------------------------------------------

# Public names of the synchronous class with no async twin, and why.
NO_TWIN: dict[type, dict[str, str]] = {
    Store: {},
    Transaction: {},
    Snapshot: {},  # its writes raise ReadOnlyError; so do AsyncSnapshot's
}
# Sync methods whose twin is a plain call, not a coroutine function.
PLAIN = {
    "collection": "returns an AsyncCollection (its methods are coroutines)",
    "transaction": "returns an async context manager (async with s.transaction())",
    "snapshot": "returns an async context manager (async with s.snapshot())",
}
# Sync iterators whose twin is an async iterator (an async generator function).
ASYNC_ITER = {"iter_resources", "watch"}
# Sync attributes/properties that stay attributes/properties.
ATTRIBUTES = {"closed", "revision"}

PAIRS = [(Store, AsyncStore), (Transaction, AsyncTransaction), (Snapshot, AsyncSnapshot)]


def _public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def _params(fn: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    sig = inspect.signature(fn)
    return [(p.name, p.kind, p.default) for p in sig.parameters.values() if p.name != "self"]


@pytest.mark.parametrize(("sync", "aio"), PAIRS, ids=lambda c: c.__name__)
def test_every_public_sync_method_has_an_async_twin(sync: type, aio: type) -> None:
    missing = _public(sync) - _public(aio) - set(NO_TWIN[sync])
    assert not missing, f"{aio.__name__} lacks {sorted(missing)}"
    for name in sorted(_public(sync) - set(NO_TWIN[sync])):
        s_attr = inspect.getattr_static(sync, name)
        a_attr = inspect.getattr_static(aio, name)
        if name in ATTRIBUTES and not callable(s_attr):
            assert not callable(a_attr), f"{aio.__name__}.{name} should be an attribute"
            continue
        a_fn = getattr(aio, name)
        if name in PLAIN:
            assert not inspect.iscoroutinefunction(a_fn), name
        elif name in ASYNC_ITER:  # an async generator, or a call returning one
            assert inspect.isasyncgenfunction(a_fn) or (
                not inspect.iscoroutinefunction(a_fn)
                and "AsyncIterator" in str(inspect.signature(a_fn).return_annotation)
            ), name
        elif name in {"close"} and sync is Store:
            assert inspect.iscoroutinefunction(a_fn), name
        else:
            assert inspect.iscoroutinefunction(a_fn), f"{aio.__name__}.{name} is not async"
        assert _params(a_fn) == _params(getattr(sync, name)), f"{aio.__name__}.{name}"


def test_extra_async_names_are_only_the_documented_ones() -> None:
    # What the async classes have beyond their twins: AsyncStore.open (the
    # constructor), and AsyncSnapshot.revision, which Snapshot also has but
    # only once entered (an instance attribute, so not in dir(Snapshot)).
    assert _public(AsyncStore) - _public(Store) == {"open"}
    assert _public(AsyncTransaction) - _public(Transaction) == set()
    assert _public(AsyncSnapshot) - _public(Snapshot) == {"revision"}


@pytest.mark.parametrize(
    "cls", [AsyncStore, AsyncTransaction, AsyncSnapshot, AsyncCollection, AsyncReads, AsyncWrites]
)
def test_every_public_async_method_is_documented(cls: type) -> None:
    for name in sorted(_public(cls)):
        attr = inspect.getattr_static(cls, name)
        if isinstance(attr, property):
            attr = attr.fget
        elif isinstance(attr, classmethod):
            attr = attr.__func__
        elif not callable(attr):
            continue
        assert (attr.__doc__ or "").strip(), f"{cls.__name__}.{name} has no docstring"


def test_one_set_of_reads_and_writes() -> None:
    # The reads are written once (AsyncReads) and the writer-thread writes once
    # (AsyncWrites); the three classes only say where calls run.
    for name in _public(AsyncReads):
        owners = {c.__name__ for c in (AsyncStore, AsyncTransaction, AsyncSnapshot)
                  if name in vars(c)}
        assert not owners, f"{name} redefined in {owners}"
        if name != "collection":  # AsyncStore's checks the recorded type at once
            assert getattr(AsyncStore, name) is getattr(AsyncReads, name), name
        assert getattr(AsyncTransaction, name) is getattr(AsyncReads, name)
        assert getattr(AsyncSnapshot, name) is getattr(AsyncReads, name)
    for name in _public(AsyncWrites):
        assert getattr(AsyncStore, name) is getattr(AsyncWrites, name), name
        assert getattr(AsyncTransaction, name) is getattr(AsyncWrites, name), name


# -- the same data, read both ways ---------------------------------------------

Call = tuple[str, tuple[Any, ...], dict[str, Any]]


def _fill(s: Store) -> int:
    """Resources, an index, events and history; the revision of a kept version."""
    s.save_resources("Agent", [(f"a{i}", Agent(model=str(i % 2))) for i in range(6)])
    s.save_resource("Session", "s1", Session(agent_id="a1"))
    s.create_index("Agent", "by_model", field="model", msg_type=Agent)
    s.set_history("Wf", 5)
    old = s.save_resource("Wf", "w1", Agent(model="v1"))
    s.save_resource("Wf", "w1", Agent(model="v2"))
    s.save_resource("Wf", "w1", Agent(model="v3"))
    s.append_events("ev", [(1, Agent(model="e1")), (2, Agent(model="e2")), (5, Agent())])
    s.append_event("ev2", Agent(model="x"))
    return old


def _reads(old: int) -> list[Call]:
    return [
        ("get_resource", ("Agent", "a1", Agent), {}),
        ("get_resource", ("Agent", "nope", Agent), {}),
        ("get_resource", ("Session", "s1", Agent), {}),  # recorded as another type
        ("get_record", ("Agent", "a2"), {}),
        ("get_bytes", ("Session", "s1"), {}),
        ("exists", ("Agent", "a1"), {}),
        ("exists", ("Agent", "zz"), {}),
        ("count", ("Agent",), {}),
        ("kinds", (), {}),
        ("list_ids", ("Agent",), {"after": "a1", "limit": 2, "prefix": "a"}),
        ("list_resources", ("Agent",), {}),
        ("list_resources", ("Agent", Agent), {}),
        ("iter_resources", ("Agent", Agent), {"after": "a0", "limit": 3}),
        ("iter_resources", ("Wf",), {}),
        ("find", ("Agent", "by_model", "1"), {}),
        ("find", ("Agent", "by_model", "1", Agent), {"after": "a1", "limit": 1}),
        ("find", ("Agent", "no_index", "1"), {}),
        ("find_ids", ("Agent", "by_model", "0"), {}),
        ("find_one", ("Agent", "by_model", "0", Agent), {}),
        ("find_one", ("Agent", "by_model", "9", Agent), {}),
        ("count_index", ("Agent", "by_model", "1"), {}),
        ("indexes", (), {}),
        ("indexes", ("Session",), {}),
        ("read_events", ("ev",), {}),
        ("read_events", ("ev", Agent), {"after": 1, "limit": 1}),
        ("last_seq", ("ev",), {}),
        ("last_seq", ("none",), {}),
        ("streams", (), {}),
        ("history_keep", ("Wf",), {}),
        ("history", ("Wf", "w1"), {}),
        ("history", ("Wf", "w1"), {"limit": 2}),
        ("get_record_at", ("Wf", "w1", old), {}),
        ("get_record_at", ("Wf", "w1", 1), {}),
    ]


def _norm(value: Any, times: bool) -> Any:
    """Results made comparable: a Resource with its message, an Event as a
    tuple; ``times=False`` leaves out the write times (writes made twice)."""
    if isinstance(value, list):
        return [_norm(v, times) for v in value]
    if isinstance(value, Resource):
        fields = (value.id, value.kind, value.data, value.revision, value.message)
        return (*fields, value.updated_at, value.updated_ns) if times else fields
    if isinstance(value, Event):
        fields = (value.stream, value.seq, value.data)
        return (*fields, value.recorded_at) if times else fields
    return value


def _sync_result(
    obj: Any, name: str, args: tuple[Any, ...], kw: dict[str, Any], times: bool = True
) -> Any:
    try:
        out = getattr(obj, name)(*args, **kw)
        if name in ASYNC_ITER:
            out = list(out)
        return ("ok", _norm(out, times))
    except pystore.StoreError as exc:
        return ("error", type(exc), str(exc))


async def _async_result(
    obj: Any, name: str, args: tuple[Any, ...], kw: dict[str, Any], times: bool = True
) -> Any:
    try:
        if name in ASYNC_ITER:
            out = [r async for r in getattr(obj, name)(*args, **kw)]
        else:
            out = await getattr(obj, name)(*args, **kw)
        return ("ok", _norm(out, times))
    except pystore.StoreError as exc:
        return ("error", type(exc), str(exc))


def _covered(calls: list[Call]) -> None:
    """The calls exercise every public coroutine read of AsyncReads."""
    reads = _public(AsyncReads) - {"collection"}
    assert reads <= {c[0] for c in calls}, reads - {c[0] for c in calls}


def _run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def test_async_store_reads_return_what_the_store_returns(store_path: Path) -> None:
    with Store(store_path, sync=False) as s:
        old = _fill(s)
        calls = [
            *_reads(old),
            ("revision", (), {}),
            ("changes", (), {"after": old, "kinds": ["Wf"]}),
            ("changes", (), {"streams": ["ev"], "limit": 5}),
            ("changes", (), {"after": 10**6}),
        ]
        _covered(calls)
        expected = [_sync_result(s, *c) for c in calls]

    async def main() -> None:
        async with AsyncStore.open(store_path) as a:
            got = [await _async_result(a, *c) for c in calls]
            for c, e, g in zip(calls, expected, got, strict=True):
                assert g == e, c
            assert any(e[0] == "error" for e in expected)  # errors compared too
            assert not a.closed
        assert a.closed

    _run(main())


def test_async_snapshot_reads_match_a_snapshot_and_see_one_view(store_path: Path) -> None:
    async def main() -> None:
        async with AsyncStore.open(store_path, sync=False) as a:
            old = _fill(a.store)
            calls = _reads(old)
            _covered(calls)
            with a.store.snapshot() as sync_snap:
                async with a.snapshot() as snap:
                    assert snap.revision == sync_snap.revision == a.store.revision()
                    expected = [_sync_result(sync_snap, *c) for c in calls]
                    # Every kind of data changes after the snapshot was taken...
                    await a.save_resource("Agent", "a1", Agent(model="0"))
                    await a.save_resources("Agent", [("b9", Agent(model="0"))])
                    await a.delete_resource("Session", "s1")
                    await a.append_events("ev", [(9, Agent())])
                    await a.create_index("Agent", "late", field="model", msg_type=Agent)
                    await a.save_resource("Wf", "w1", Agent(model="v4"))
                    assert a.store.revision() > snap.revision
                    # ...and the snapshot still answers as of its revision.
                    got = [await _async_result(snap, *c) for c in calls]
                    for c, e, g in zip(calls, expected, got, strict=True):
                        assert g == e, c
                    assert (await a.count_index("Agent", "by_model", "1")
                            != await snap.count_index("Agent", "by_model", "1"))
                await snap.close()  # idempotent after the block
                with pytest.raises(pystore.StoreClosedError):
                    await snap.count("Agent")
                with pytest.raises(pystore.ReadOnlyError):
                    await snap.save_resource("Agent", "x", Agent())

    _run(main())


def test_async_transaction_reads_match_and_see_its_own_writes(store_path: Path) -> None:
    with Store(store_path, sync=False) as s:
        old = _fill(s)
        calls = _reads(old)
        _covered(calls)
        expected = [_sync_result(s, *c) for c in calls]
        with pytest.raises(RuntimeError), s.transaction() as t:
            t.save_resource("Agent", "a1", Agent(model="new"))
            t.append_event("ev", Agent())
            after_writes = [_sync_result(t, *c, times=False) for c in calls]
            raise RuntimeError("roll back")
        assert [_sync_result(s, *c) for c in calls] == expected

    async def main() -> None:
        async with AsyncStore.open(store_path, sync=False) as a, a.transaction() as t:
            got = [await _async_result(t, *c) for c in calls]
            for c, e, g in zip(calls, expected, got, strict=True):
                assert g == e, c
            await t.save_resource("Agent", "a1", Agent(model="new"))
            await t.append_event("ev", Agent())
            got = [await _async_result(t, *c, times=False) for c in calls]
            for c, e, g in zip(calls, after_writes, got, strict=True):
                assert g == e, c
            assert got != [await _async_result(a, *c, times=False) for c in calls]

    _run(main())


# -- writes: the same sequence through Store/Transaction and their twins -------


def _writes() -> list[Call]:
    def touch(a: Agent) -> None:
        a.model = "touched"

    return [
        ("save_resource", ("Agent", "a1", Agent(model="1")), {}),
        ("save_resource", ("Agent", "a1", Agent(model="1b")), {"if_revision": 999}),
        ("create_resource", ("Agent", "a2", Agent(model="2")), {}),
        ("create_resource", ("Agent", "a2", Agent(model="2")), {}),
        ("save_resources", ("Agent", [("a3", Agent(model="1")), ("a4", Agent(model="2"))]), {}),
        ("create_index", ("Agent", "by_model"), {"field": "model", "msg_type": Agent}),
        ("create_index", ("Agent", "uniq"), {"field": "model", "msg_type": Agent,
                                             "unique": True}),
        ("rebuild_index", ("Agent", "by_model"), {}),
        ("update_resource", ("Agent", "a1", Agent, touch), {}),
        ("update_resource", ("Agent", "zz", Agent, touch), {}),
        ("update_resource", ("Agent", "zz", Agent, touch), {"create": True}),
        ("set_history", ("Agent", 3), {}),
        ("save_resource", ("Agent", "a1", Agent(model="y")), {}),
        ("save_resource", ("Agent", "a1", Agent(model="z")), {}),
        ("delete_history", ("Agent", "a1"), {}),
        ("delete_resource", ("Agent", "a2"), {"if_revision": 1}),
        ("delete_resource", ("Agent", "a2"), {}),
        ("delete_resource", ("Agent", "a2"), {}),
        ("delete_resources_by_prefix", ("Agent", "a3"), {}),
        ("append_events", ("ev", [(1, Agent()), (2, Agent(model="e")), (1, Agent())]), {}),
        ("append_event", ("ev", Agent(model="f")), {}),
        ("delete_events", ("ev",), {"upto": 1}),
        ("append_events", ("ev", [(1, Agent(model="again"))]), {}),
        ("drop_index", ("Agent", "by_model"), {}),
        ("drop_index", ("Agent", "by_model"), {}),
        ("save_resource", ("Session", "s", Session()), {}),
        ("delete_resources_by_kind", ("Session",), {}),
        ("delete_events", ("ev",), {}),
    ]


def _state(s: Store) -> Any:
    kinds = {k: [(r.id, r.data, r.revision) for r in s.iter_resources(k)] for k in s.kinds()}
    events = {st: [(e.seq, e.data) for e in s.read_events(st)] for st in s.streams()}
    history = [(r.data, r.revision) for r in s.history("Agent", "a1")]
    return (kinds, events, {st: s.last_seq(st) for st in ("ev",)}, s.indexes(),
            s.history_keep("Agent"), history, s.revision())


def _write_names() -> set[str]:
    return _public(AsyncWrites) | {"save_resource", "create_resource", "delete_resource"}


def test_async_store_writes_return_and_leave_what_the_store_does(tmp_path: Path) -> None:
    calls = _writes()
    assert _write_names() <= {c[0] for c in calls}
    with Store(tmp_path / "sync", sync=False) as s:
        expected = [_sync_result(s, *c) for c in calls]
        want = _state(s)
    assert any(e[0] == "error" for e in expected)

    async def main() -> None:
        async with AsyncStore.open(tmp_path / "async") as a:  # durable: group commit
            got = [await _async_result(a, *c) for c in calls]
            for c, e, g in zip(calls, expected, got, strict=True):
                assert g == e, c
            assert _state(a.store) == want

    _run(main())


def test_async_transaction_writes_match_a_transaction(tmp_path: Path) -> None:
    # In one transaction an error spoils it: only the calls that succeed.
    with Store(tmp_path / "probe", sync=False) as s:
        ok_calls = [c for c in _writes() if _sync_result(s, *c)[0] == "ok"]
    assert len(ok_calls) < len(_writes())
    assert _write_names() <= {c[0] for c in ok_calls}
    with Store(tmp_path / "sync", sync=False) as s:
        with s.transaction() as t:
            expected = [_sync_result(t, *c) for c in ok_calls]
        want, sync_rev = _state(s), t.revision

    threads: set[str] = set()

    def mark(a: Agent) -> None:
        threads.add(threading.current_thread().name)

    async def main() -> None:
        async with AsyncStore.open(tmp_path / "async") as a:
            async with a.transaction() as t:
                assert t.revision == 0
                got = [await _async_result(t, *c) for c in ok_calls]
                await t.update_resource("Agent", "a1", Agent, mark)
                assert a.store.revision() == 0  # nothing visible before the commit
            for c, e, g in zip(ok_calls, expected, got, strict=True):
                assert g == e, c
            assert t.revision == sync_rev == a.store.revision()
            assert _state(a.store) == want
            with pytest.raises(pystore.TransactionError):
                await t.count("Agent")  # finished

    _run(main())
    # The sync Transaction refuses calls from any thread but the one that began
    # it, so every call above ran on that thread: the store's writer thread.
    assert threads and all(n.startswith("pystore-commit") for n in threads), threads


def test_async_transaction_rolls_every_write_back_on_error(tmp_path: Path) -> None:
    calls = _writes()
    with Store(tmp_path / "probe", sync=False) as s:
        ok_calls = [c for c in calls if _sync_result(s, *c)[0] == "ok"]

    async def main() -> None:
        async with AsyncStore.open(tmp_path / "async") as a:
            await a.save_resource("Agent", "a1", Agent(model="before"))
            await a.append_event("ev", Agent())
            before = _state(a.store)
            with pytest.raises(RuntimeError):
                async with a.transaction() as t:
                    for c in ok_calls:
                        await _async_result(t, *c)
                    assert await t.count("Agent") > 1
                    raise RuntimeError("boom")
            assert t.revision == 0
            assert _state(a.store) == before
            # an error raised by a call spoils the transaction the same way
            with pytest.raises(pystore.AlreadyExistsError):
                async with a.transaction() as t2:
                    await t2.save_resource("Agent", "b", Agent())
                    await t2.create_resource("Agent", "a1", Agent())
            assert _state(a.store) == before

    _run(main())


def test_async_views_refuse_use_outside_their_block(store_path: Path) -> None:
    async def main() -> None:
        async with AsyncStore.open(store_path, sync=False) as a:
            t = a.transaction()
            with pytest.raises(pystore.TransactionError):
                await t.find_ids("Agent", "i", "v")
            snap = a.snapshot()
            with pytest.raises(pystore.StoreClosedError):
                await snap.read_events("ev")
        with pytest.raises(pystore.StoreClosedError):
            await a.history("Agent", "a")
        with pytest.raises(pystore.StoreClosedError):
            await a.get_resource("Agent", "a", Agent)
        with pytest.raises(pystore.StoreClosedError):
            await a.set_history("Agent", 1)

    _run(main())


def test_async_snapshot_writes_raise_read_only_as_a_snapshot_does(tmp_path: Path) -> None:
    """Every write Snapshot has raises ReadOnlyError there; AsyncSnapshot had
    only save/create/delete_resource (AttributeError for the others)."""
    calls = [c for c in _writes() if hasattr(Snapshot, c[0])]
    names = {c[0] for c in calls}
    assert names >= {"save_resources", "update_resource", "append_event", "set_history"}
    path = tmp_path / "s"
    with Store(path, sync=False) as s:
        _fill(s)
        before = _state(s)
        with s.snapshot() as snap:
            for name, args, kwargs in calls:
                with pytest.raises(pystore.ReadOnlyError):
                    getattr(snap, name)(*args, **kwargs)

    async def main() -> None:
        async with AsyncStore.open(path) as a, a.snapshot() as snap:
            for name, args, kwargs in calls:
                with pytest.raises(pystore.ReadOnlyError):
                    await getattr(snap, name)(*args, **kwargs)

    _run(main())
    with Store(path, sync=False) as s:
        assert _state(s) == before
