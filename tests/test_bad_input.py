"""Every public method, given bad input, raises a clear exception and changes nothing.

The table below names every public method of Store and Transaction; a new
public method without bad-input cases fails test_every_public_method_is_covered.
After each bad call the whole store (every record's bytes and timestamp) must
equal the snapshot taken before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pystore import (
    ConflictError,
    InvalidKeyError,
    InvalidMessageError,
    NotFoundError,
    ReadOnlyError,
    Store,
    StoreClosedError,
    StoreError,
    Transaction,
)
from pystore.samples.agent_pb2 import Agent
from pystore.samples.workflow_pb2 import Workflow

BAD_KIND_TYPES: list[object] = [None, 5, b"Agent", ["Agent"], 1.5]
BAD_KIND_VALUES: list[object] = ["", "A/B", "/", "A\0B", "k" * 600, "\ud800"]
BAD_ID_TYPES: list[object] = [None, 7, b"x", ("x",)]
BAD_ID_VALUES: list[object] = ["", "a\0b", "\0", "i" * 600, "\udfff"]
NOT_MESSAGES: list[object] = [None, "text", b"\x08\x01", {"model": "x"}, Agent, 42, object()]
NOT_CLASSES: list[object] = [None, Agent(), "Agent", int, dict, 3]

Call = Callable[[Any], object]


def _key_cases(method: str, extra: tuple[object, ...] = ()) -> Iterator[tuple[str, Call, type]]:
    """Bad kinds and ids for a method called as m(kind, id, *extra)."""
    for k in BAD_KIND_TYPES:
        yield method, lambda s, k=k: getattr(s, method)(k, "ok", *extra), TypeError
    for k in BAD_KIND_VALUES:
        yield method, lambda s, k=k: getattr(s, method)(k, "ok", *extra), InvalidKeyError
    for i in BAD_ID_TYPES:
        yield method, lambda s, i=i: getattr(s, method)("Agent", i, *extra), TypeError
    for i in BAD_ID_VALUES:
        yield method, lambda s, i=i: getattr(s, method)("Agent", i, *extra), InvalidKeyError


def _kind_cases(method: str, extra: tuple[object, ...] = ()) -> Iterator[tuple[str, Call, type]]:
    for k in BAD_KIND_TYPES:
        yield method, lambda s, k=k: getattr(s, method)(k, *extra), TypeError
    for k in BAD_KIND_VALUES:
        yield method, lambda s, k=k: getattr(s, method)(k, *extra), InvalidKeyError


async def _async_fn(msg: Agent) -> None:
    msg.model = "async"


def _data_cases() -> Iterator[tuple[str, Call, type]]:
    """Cases valid for both Store and Transaction (their shared data methods)."""
    good = Agent(model="new")
    for m in ("save_resource", "create_resource"):
        yield from _key_cases(m, (good,))
        for msg in NOT_MESSAGES:
            yield m, lambda s, m=m, msg=msg: getattr(s, m)("Agent", "a1", msg), TypeError
    yield from _key_cases("get_resource", (Agent,))
    for c in NOT_CLASSES[:1] + NOT_CLASSES[2:]:
        yield "get_resource", lambda s, c=c: s.get_resource("Agent", "a1", c), TypeError
    yield "get_resource", lambda s: s.get_resource("Agent", "missing", Agent), NotFoundError
    yield from _key_cases("get_record")
    yield from _key_cases("get_bytes")
    yield from _key_cases("delete_resource")
    yield from _kind_cases("delete_resources_by_kind")
    yield from _kind_cases("count")
    yield from _kind_cases("list_resources")
    for c in NOT_CLASSES[1:]:  # None: raw bytes
        yield "list_resources", lambda s, c=c: s.list_resources("Agent", c), TypeError
    yield from _key_cases("update_resource", (Agent, lambda m: None))
    for c in NOT_CLASSES:
        yield "update_resource", lambda s, c=c: s.update_resource("Agent", "a1", c, id), TypeError
    for fn in (None, 5, "fn"):
        yield (
            "update_resource",
            lambda s, fn=fn: s.update_resource("Agent", "a1", Agent, fn),
            TypeError,
        )

    def boom(msg: Agent) -> None:
        msg.model = "half-done"
        raise RuntimeError("fn failed")

    yield "update_resource", lambda s: s.update_resource("Agent", "a1", Agent, boom), RuntimeError
    yield "update_resource", lambda s: s.update_resource("Agent", "zz", Agent, print), NotFoundError
    yield from _kind_cases("save_resources", ([("x", good)],))
    batches: list[tuple[object, type]] = [
        (None, TypeError),
        (5, TypeError),
        ([("a",)], TypeError),
        ([("a", good, 3)], TypeError),
        (["a1"], TypeError),
        ([["a1", good]], TypeError),
        ([(1, good)], TypeError),
        ([("ok", good), ("", good)], InvalidKeyError),
        ([("ok", good), ("a\0", good)], InvalidKeyError),
        ([("ok", good), ("bad", "not a message")], TypeError),
        ([("ok", good), ("bad", None)], TypeError),
    ]
    for items, exc in batches:
        yield "save_resources", lambda s, items=items: s.save_resources("Agent", items), exc
    for k, exc in [(k, TypeError) for k in BAD_KIND_TYPES] + [
        (k, InvalidKeyError) for k in BAD_KIND_VALUES
    ]:
        yield "iter_resources", lambda s, k=k: list(s.iter_resources(k)), exc
    for kw, exc in [
        ({"after": 5}, TypeError),
        ({"after": b"a"}, TypeError),
        ({"after": "a\0"}, InvalidKeyError),
        ({"limit": -1}, ValueError),
        ({"limit": "3"}, TypeError),
        ({"limit": True}, TypeError),
        ({"limit": 1.5}, TypeError),
    ]:
        yield "iter_resources", lambda s, kw=kw: list(s.iter_resources("Agent", **kw)), exc
    yield "kinds", lambda s: s.kinds(5), TypeError
    # per-kind helpers and collections (issue 11)
    yield from _key_cases("exists")
    yield from _kind_cases("list_ids")
    for kw, exc in [({"after": 5}, TypeError), ({"prefix": b"a"}, TypeError),
                    ({"prefix": "a\0"}, InvalidKeyError), ({"after": "a\0"}, InvalidKeyError),
                    ({"limit": -1}, ValueError), ({"limit": True}, TypeError)]:
        yield "list_ids", lambda s, kw=kw: s.list_ids("Agent", **kw), exc
    yield from _kind_cases("collection", (Agent,))
    for c in NOT_CLASSES:
        yield "collection", lambda s, c=c: s.collection("Agent", c), TypeError
        if c is not None:
            yield "iter_resources", lambda s, c=c: s.iter_resources("Agent", c), TypeError
    yield "collection", lambda s: s.collection("Agent", Workflow), InvalidMessageError
    yield "get_resource", lambda s: s.get_resource("Agent", "a1", Workflow), InvalidMessageError
    yield "update_resource", lambda s: s.update_resource("Agent", "a1", Agent, _async_fn), \
        TypeError
    yield "update_resource", lambda s: s.update_resource("Agent", "a1", Agent, lambda m: Agent()), \
        TypeError
    yield from _query_cases()


BAD_STREAMS: list[tuple[object, type]] = [
    (None, TypeError), (5, TypeError), (b"x", TypeError), ("", InvalidKeyError),
    ("a\0", InvalidKeyError), ("\udfff", InvalidKeyError), ("x" * 501, InvalidKeyError),
]


def _query_cases() -> Iterator[tuple[str, Call, type]]:
    """Indexes and event streams (issue 10)."""
    good = Agent(model="new")
    for m in ("find", "find_ids", "count_index"):
        yield from _kind_cases(m, ("i", "x"))
        for name, exc in [(None, TypeError), (5, TypeError), ("", InvalidKeyError),
                          ("a\0", InvalidKeyError)]:
            yield m, lambda s, m=m, n=name: getattr(s, m)("Agent", n, "x"), exc
        for v in (None, 1.5, ["x"], ("k",), (1, "v"), Agent()):
            yield m, lambda s, m=m, v=v: getattr(s, m)("Agent", "i", v), TypeError
        yield m, lambda s, m=m: getattr(s, m)("Agent", "missing", "x"), NotFoundError
    for c in NOT_CLASSES[1:]:
        yield "find", lambda s, c=c: s.find("Agent", "i", "x", c), TypeError
    for kw, exc in [({"after": 5}, TypeError), ({"after": "a\0"}, InvalidKeyError),
                    ({"limit": -1}, ValueError), ({"limit": "3"}, TypeError)]:
        yield "find", lambda s, kw=kw: s.find("Agent", "i", "x", **kw), exc
    yield from _kind_cases("find_one", ("i", "x", Agent))
    for c in NOT_CLASSES:
        yield "find_one", lambda s, c=c: s.find_one("Agent", "i", "x", c), TypeError
    yield "find_one", lambda s: s.find_one("Agent", "missing", "x", Agent), NotFoundError
    for k in BAD_KIND_TYPES[1:]:  # None: every kind
        yield "indexes", lambda s, k=k: s.indexes(k), TypeError
    for k in BAD_KIND_VALUES:
        yield "indexes", lambda s, k=k: s.indexes(k), InvalidKeyError
    yield from _kind_cases("delete_resources_by_prefix", ("a",))
    for p, exc in [(None, TypeError), (5, TypeError), (b"a", TypeError),
                   ("a\0", InvalidKeyError), ("\udfff", InvalidKeyError),
                   ("i" * 600, InvalidKeyError)]:
        yield ("delete_resources_by_prefix",
               lambda s, p=p: s.delete_resources_by_prefix("Agent", p), exc)

    def create(s: Any, kind: object = "Agent", name: object = "i", **kw: Any) -> object:
        args = {"field": "model", "msg_type": Agent, **kw}
        return s.create_index(kind, name, **args)

    for k in BAD_KIND_TYPES:
        yield "create_index", lambda s, k=k: create(s, k), TypeError
    for k in BAD_KIND_VALUES:
        yield "create_index", lambda s, k=k: create(s, k), InvalidKeyError
    for kw, exc in [({"name": None}, TypeError), ({"name": ""}, InvalidKeyError),
                    ({"field": None}, TypeError), ({"field": "nope"}, ValueError),
                    ({"field": "temperature"}, ValueError), ({"field": "metadata"}, ValueError),
                    ({"msg_type": Agent()}, TypeError), ({"msg_type": "Agent"}, TypeError),
                    ({"unique": "yes"}, TypeError)]:
        yield "create_index", lambda s, kw=kw: create(s, **kw), exc
    for m in ("drop_index", "rebuild_index"):
        yield from _kind_cases(m, ("i",))
        yield m, lambda s, m=m: getattr(s, m)("Agent", None), TypeError
        yield m, lambda s, m=m: getattr(s, m)("Agent", "missing"), NotFoundError
    for m, extra in [("append_events", ([(1, good)],)), ("append_event", (good,)),
                     ("read_events", ()), ("last_seq", ()), ("delete_events", ())]:
        for st, exc in BAD_STREAMS:
            yield m, lambda s, m=m, st=st, e=extra: getattr(s, m)(st, *e), exc
    for evs, exc in [(None, TypeError), ([(0, good)], ValueError), ([(2**63, good)], ValueError),
                     ([(True, good)], TypeError), ([("1", good)], TypeError),
                     ([(1, "x")], TypeError), ([(1,)], TypeError), ([good], TypeError)]:
        yield "append_events", lambda s, e=evs: s.append_events("st", e), exc
    for msg in NOT_MESSAGES:
        yield "append_event", lambda s, msg=msg: s.append_event("st", msg), TypeError
    for c in NOT_CLASSES[1:]:
        yield "read_events", lambda s, c=c: s.read_events("st", c), TypeError
    for kw, exc in [({"after": -1}, ValueError), ({"after": "1"}, TypeError),
                    ({"limit": -1}, ValueError), ({"limit": 1.5}, TypeError)]:
        yield "read_events", lambda s, kw=kw: s.read_events("st", **kw), exc
    for upto, exc in [(-1, ValueError), ("3", TypeError), (2**63, ValueError)]:
        yield "delete_events", lambda s, u=upto: s.delete_events("st", upto=u), exc
    yield "streams", lambda s: s.streams(5), TypeError
    # revisions and history (issue 9)
    for rev, exc in [("1", TypeError), (True, TypeError), (-1, ValueError), (1.0, TypeError)]:
        yield ("save_resource",
               lambda s, r=rev: s.save_resource("Agent", "a1", good, if_revision=r), exc)
        yield ("delete_resource",
               lambda s, r=rev: s.delete_resource("Agent", "a1", if_revision=r), exc)
        yield "get_record_at", lambda s, r=rev: s.get_record_at("Agent", "a1", r), exc
        yield "set_history", lambda s, r=rev: s.set_history("Agent", r), exc
        yield "history", lambda s, r=rev: s.history("Agent", "a1", limit=r), exc
    yield "save_resource", lambda s: s.save_resource("Agent", "a1", good, if_revision=999), \
        ConflictError
    yield "delete_resource", lambda s: s.delete_resource("Agent", "a1", if_revision=0), \
        ConflictError
    yield "get_record_at", lambda s: s.get_record_at("Agent", "a1", 999), NotFoundError
    yield from _key_cases("get_record_at", (1,))
    yield from _key_cases("history")
    yield from _key_cases("delete_history")
    yield from _kind_cases("set_history", (1,))
    yield from _kind_cases("history_keep")


def _store_cases(tmp_path: Path) -> Iterator[tuple[str, Call, type]]:
    yield from _data_cases()
    yield "stats", lambda s: s.stats(1), TypeError
    for dest, exc in [(None, TypeError), (5, TypeError), (b"/tmp/x", TypeError)]:
        yield "backup", lambda s, d=dest: s.backup(d), exc
    yield "backup", lambda s: s.backup(s.path), StoreError
    (tmp_path / "a-file").write_bytes(b"x")
    (tmp_path / "full-dir").mkdir()
    (tmp_path / "full-dir" / "x").write_bytes(b"x")
    yield "backup", lambda s: s.backup(tmp_path / "a-file"), StoreError
    yield "backup", lambda s: s.backup(tmp_path / "full-dir"), StoreError
    yield "transaction", lambda s: s.transaction(1), TypeError
    yield "close", lambda s: s.close(1), TypeError
    yield "snapshot", lambda s: s.snapshot(1), TypeError
    yield "revision", lambda s: s.revision(1), TypeError
    for kw, exc in [({"after": -1}, ValueError), ({"after": "0"}, TypeError),
                    ({"limit": -1}, ValueError), ({"kinds": "Agent"}, TypeError),
                    ({"kinds": ["A/b"]}, ValueError)]:
        yield "changes", lambda s, kw=kw: s.changes(**kw), exc
    for kw, exc in [({"after": -1}, ValueError), ({"timeout": -1}, ValueError),
                    ({"timeout": "1"}, TypeError), ({"kinds": 5}, TypeError)]:
        yield "watch", lambda s, kw=kw: s.watch(**kw), exc


def _snapshot(store: Store) -> dict[str, list[tuple[str, bytes, int]]]:
    return {
        kind: [(r.id, r.data, r.updated_ns) for r in store.iter_resources(kind)]
        for kind in store.kinds()
    }


@pytest.fixture
def filled(store: Store) -> Store:
    store.save_resources("Agent", [(f"a{i}", Agent(model=f"m{i}")) for i in range(5)])
    store.save_resource("Workflow", "w1", Workflow())
    return store


def _expect(target: Any, name: str, call: Call, exc: type) -> None:
    """call(target) must raise exc; the failure names the method and the bad value."""
    what = f"{name} with {call.__defaults__!r}"
    try:
        call(target)
    except exc:
        return
    except BaseException as other:
        pytest.fail(f"{what}: raised {other!r}, wanted {exc.__name__}")
    pytest.fail(f"{what}: no exception, wanted {exc.__name__}")


def _run_cases(store: Store, target: Any, cases: list[tuple[str, Call, type]]) -> None:
    before = _snapshot(store)
    for name, call, exc in cases:
        _expect(target, name, call, exc)
        assert _snapshot(store) == before, f"{name} changed the store"
    assert not store.closed


def test_store_methods_reject_bad_input(filled: Store, tmp_path: Path) -> None:
    cases = list(_store_cases(tmp_path))
    assert len(cases) > 250
    _run_cases(filled, filled, cases)
    assert not (tmp_path / "a-file").is_dir()


def test_transaction_methods_reject_bad_input_and_stay_usable(filled: Store) -> None:
    before = _snapshot(filled)
    cases = [c for c in _data_cases() if c[0] not in ("kinds", "iter_resources")]
    with filled.transaction() as t:
        for name, call, exc in cases:
            _expect(t, name, call, exc)
            # The transaction is still usable after a rejected call.
            assert t.get_resource("Agent", "a1", Agent).model == "m1", name
        t.save_resource("Agent", "in-txn", Agent(model="kept"))
    after = _snapshot(filled)
    # Only the good write survives: a rejected save_resources left none of its items.
    assert [r[0] for r in after["Agent"]] == [r[0] for r in before["Agent"]] + ["in-txn"]
    after["Agent"].pop()
    assert after == before
    assert filled.get_resource("Agent", "in-txn", Agent).model == "kept"


def test_every_public_method_is_covered(tmp_path: Path) -> None:
    covered = {name for name, _, _ in _store_cases(tmp_path)}
    public = {n for n in dir(Store) if not n.startswith("_") and callable(getattr(Store, n))}
    assert public - covered == set()
    tx_public = {n for n in dir(Transaction) if not n.startswith("_")}
    tx_public = {n for n in tx_public if callable(getattr(Transaction, n))}
    assert tx_public - {name for name, _, _ in _data_cases()} == set()


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        ({"map_size": -1}, ValueError),
        ({"map_size": 0}, ValueError),
        ({"map_size": "1"}, TypeError),
        ({"map_size": True}, TypeError),
        ({"map_size": 1.0}, TypeError),
        ({"strip_fields": "org_id"}, TypeError),
        ({"strip_fields": [1]}, TypeError),
        ({"strip_fields": None}, TypeError),
    ],
)
def test_store_constructor_rejects_bad_arguments(
    tmp_path: Path, kwargs: dict[str, Any], exc: type
) -> None:
    with pytest.raises(exc):
        Store(tmp_path / "store", **kwargs)
    assert not (tmp_path / "store" / "data.mdb").exists()


@pytest.mark.parametrize("path", [None, 5, b"/tmp/x", ["/tmp"], "bad\0path"])
def test_store_constructor_rejects_bad_paths(path: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        Store(path)  # type: ignore[arg-type]


def test_store_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"data")
    with pytest.raises(StoreError):
        Store(tmp_path / "file")
    assert (tmp_path / "file").read_bytes() == b"data"


def test_readonly_and_closed_stores_refuse_every_write(filled: Store) -> None:
    before = _snapshot(filled)
    writes: list[Call] = [
        lambda s: s.save_resource("Agent", "a1", Agent()),
        lambda s: s.create_resource("Agent", "new", Agent()),
        lambda s: s.save_resources("Agent", [("a1", Agent())]),
        lambda s: s.update_resource("Agent", "a1", Agent, print),
        lambda s: s.delete_resource("Agent", "a1"),
        lambda s: s.delete_resources_by_kind("Agent"),
        lambda s: s.transaction().__enter__(),
    ]
    with Store(filled.path, readonly=True) as ro:
        for call in writes:
            with pytest.raises(ReadOnlyError):
                call(ro)
    filled.close()
    reads: list[Call] = [
        lambda s: s.get_resource("Agent", "a1", Agent),
        lambda s: s.get_record("Agent", "a1"),
        lambda s: s.get_bytes("Agent", "a1"),
        lambda s: s.list_resources("Agent"),
        lambda s: list(s.iter_resources("Agent")),
        lambda s: s.count("Agent"),
        lambda s: s.kinds(),
        lambda s: s.stats(),
    ]
    for call in writes + reads:
        with pytest.raises(StoreClosedError):
            call(filled)
    with Store(filled.path) as again:
        assert _snapshot(again) == before
