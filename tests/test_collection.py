"""Collection[M]: the typed per-kind handle, and the store methods under it
(exists, list_ids, iter_resources with a type, the recorded-type check, the
update function rules)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pystore
from pystore.samples.agent_pb2 import Agent
from pystore.samples.session_pb2 import Session


@pytest.fixture
def agents(store: pystore.Store) -> pystore.Collection[Agent]:
    store.save_resources("Agent", [(f"a{i:02d}", Agent(model=str(i))) for i in range(12)])
    store.save_resource("Agent", "b1", Agent(model="b"))
    return store.collection("Agent", Agent)


def test_reads(agents: pystore.Collection[Agent], store: pystore.Store) -> None:
    assert agents.get("a03").model == "3"
    with pytest.raises(pystore.NotFoundError):
        agents.get("zz")
    assert agents.get_or_none("zz") is None and agents.get_or_none("b1") == Agent(model="b")
    assert agents.exists("a00") and not agents.exists("a99")
    assert store.exists("Agent", "b1") and not store.exists("Session", "b1")
    assert agents.count() == 13
    assert agents.ids(limit=3) == ["a00", "a01", "a02"]
    assert agents.ids(after="a10") == ["a11", "b1"]
    assert agents.ids(prefix="b") == ["b1"]
    assert agents.ids(prefix="a1") == ["a10", "a11"]
    assert agents.ids(prefix="a1", after="a10") == ["a11"]
    assert agents.ids(prefix="a", after="0", limit=2) == ["a00", "a01"]
    assert agents.ids(limit=0) == []
    assert store.list_ids("Agent", prefix="a0", limit=2) == ["a00", "a01"]
    assert [i for i, _ in agents.items(prefix="a1")] == ["a10", "a11"]
    assert agents.items(after="a11") == [("b1", Agent(model="b"))]
    assert [m.model for _, m in agents.items(limit=2)] == ["0", "1"]


def test_prefix_that_is_itself_an_id(store: pystore.Store) -> None:
    c = store.collection("Agent", Agent)
    for id in ("x", "x/1", "x/2", "xy", "w"):
        store.save_resource("Agent", id, Agent(model=id))
    assert c.ids(prefix="x") == ["x", "x/1", "x/2", "xy"]
    assert [i for i, _ in c.items(prefix="x")] == ["x", "x/1", "x/2", "xy"]
    assert [i for i, _ in c.items(prefix="x", limit=1)] == ["x"]
    assert [i for i, _ in c.items(prefix="x/")] == ["x/1", "x/2"]


def test_pages_and_tokens(agents: pystore.Collection[Agent]) -> None:
    seen, token, pages = [], None, 0
    while True:
        page = agents.page(5, token)
        seen += [i for i, _ in page.items]
        pages += 1
        if page.next_token is None:
            break
        assert isinstance(page.next_token, str)
        token = page.next_token
    assert seen == agents.ids() and pages == 3
    first = agents.page(5)
    again = agents.page(5, first.next_token)
    assert again == agents.page(5, first.next_token)  # reusable
    with pytest.raises(pystore.InvalidKeyError):
        agents.page(5, "garbage")
    with pytest.raises(ValueError):
        agents.page(0)
    assert agents.page(13).next_token is None


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stable=st.sets(st.text("abc", min_size=1, max_size=4), max_size=25),
    churn=st.lists(st.tuples(st.booleans(), st.text("abcd", min_size=1, max_size=4)),
                   max_size=40),
    size=st.integers(1, 6),
)
def test_every_id_present_throughout_is_seen_once(
    tmp_path_factory: pytest.TempPathFactory, stable: set[str],
    churn: list[tuple[bool, str]], size: int,
) -> None:
    path = tmp_path_factory.mktemp("pages") / "s"
    with pystore.Store(path, sync=False) as s:
        c = s.collection("Agent", Agent)
        for id in stable:
            s.save_resource("Agent", id, Agent())
        seen: list[str] = []
        token, steps = None, iter(churn)
        while True:
            page = c.page(size, token)
            seen += [i for i, _ in page.items]
            # writes between pages: other ids come and go
            for add, id in [next(steps, (False, ""))]:
                if id and id not in stable:
                    if add:
                        s.save_resource("Agent", id, Agent())
                    else:
                        s.delete_resource("Agent", id)
            if page.next_token is None:
                break
            token = page.next_token
        assert len(seen) == len(set(seen)) and seen == sorted(seen)
        assert stable <= set(seen)


def test_recorded_type_is_checked(store: pystore.Store) -> None:
    store.save_resource("Agent", "a", Agent(model="m"))
    with pytest.raises(pystore.InvalidMessageError) as e:
        store.collection("Agent", Session)
    assert "pystore.samples.Agent" in str(e.value) and "pystore.samples.Session" in str(e.value)
    for call in (lambda: store.get_resource("Agent", "a", Session),
                 lambda: store.get_resource("Agent", "a", Session()),
                 lambda: store.list_resources("Agent", Session),
                 lambda: store.iter_resources("Agent", Session)):
        with pytest.raises(pystore.InvalidMessageError, match=r"Agent.*Session"):
            call()
    assert store.get_resource("Agent", "a", Agent).model == "m"  # the right type still reads
    assert store.list_resources("Agent") == [store.get_bytes("Agent", "a")]  # raw: no type
    # a kind without a recorded type (raw records) reads as any type
    store._put_raw("Raw", "r", b"", 0)
    assert store.collection("Raw", Session).get("r") == Session()
    # a kind saved with a new type now records that one
    store.save_resource("Agent", "a", Session(agent_id="x"))
    assert store.collection("Agent", Session).get("a").agent_id == "x"
    with pytest.raises(pystore.InvalidMessageError):
        store.get_resource("Agent", "a", Agent)


def test_recorded_type_is_checked_across_processes(store_path: Path) -> None:
    with pystore.Store(store_path, sync=False) as w:
        w.save_resource("Agent", "a", Agent())
    with pystore.Store(store_path, readonly=True) as r:  # a fresh cache
        with pytest.raises(pystore.InvalidMessageError):
            r.get_resource("Agent", "a", Session)
        assert r.collection("Agent", Agent).get("a") == Agent()


def test_iter_resources_with_a_type_sets_message(agents: pystore.Collection[Agent],
                                                 store: pystore.Store) -> None:
    got = list(store.iter_resources("Agent", Agent, after="a09", limit=2))
    assert [(r.id, r.message.model) for r in got] == [("a10", "10"), ("a11", "11")]
    assert all(r.message is None for r in store.iter_resources("Agent", limit=2))


async def _async_fn(a: Agent) -> None:
    a.model = "async"


class _AsyncCallable:
    async def __call__(self, a: Agent) -> None:
        a.model = "async"


@pytest.mark.parametrize("bad", [_async_fn, _AsyncCallable(), lambda a: Agent(model="new"),
                                 lambda a: 42])
def test_update_refuses_bad_functions_and_writes_nothing(
    agents: pystore.Collection[Agent], store: pystore.Store, bad: object
) -> None:
    before = store.get_record("Agent", "a01")
    with pytest.raises(TypeError):
        agents.update("a01", bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.update_resource("Agent", "a01", Agent, bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        agents.update("new", bad, create=True)  # type: ignore[arg-type]
    assert store.get_record("Agent", "a01") == before and not agents.exists("new")


def test_update_returning_none_or_its_argument(agents: pystore.Collection[Agent]) -> None:
    def set_and_return(a: Agent) -> Agent:
        a.model = "y"
        return a

    assert agents.update("a01", lambda a: setattr(a, "model", "x")).model == "x"
    assert agents.update("a01", set_and_return).model == "y"
    assert agents.get("a01").model == "y"
    with pytest.raises(pystore.NotFoundError):
        agents.update("nope", set_and_return)
    assert agents.update("nope", set_and_return, create=True) == Agent(model="y")
    assert agents.get("nope").model == "y"


def test_transaction_collection_reads_its_writes_and_rolls_back(store: pystore.Store) -> None:
    with store.transaction() as t:
        c = t.collection("Agent", Agent)
        t.save_resource("Agent", "t1", Agent(model="t"))
        assert c.get("t1").model == "t" and c.ids() == ["t1"] and c.count() == 1
    assert store.collection("Agent", Agent).get("t1").model == "t"
    with pytest.raises(RuntimeError), store.transaction() as t:
        t.collection("Agent", Agent).update("t1", lambda a: setattr(a, "model", "u"))
        raise RuntimeError
    assert store.get_resource("Agent", "t1", Agent).model == "t"


def test_writes_return_revisions_and_honour_if_revision(store: pystore.Store) -> None:
    c = store.collection("Agent", Agent)
    r1 = c.save("a", Agent(model="1"))
    assert isinstance(r1, int) and r1 == store.revision()
    with pytest.raises(pystore.ConflictError):
        c.save("a", Agent(model="x"), if_revision=r1 + 100)
    r2 = c.save("a", Agent(model="2"), if_revision=r1)
    assert r2 > r1 and c.get("a").model == "2"
    with pytest.raises(pystore.AlreadyExistsError):
        c.create("a", Agent())
    r3 = c.create("b", Agent())
    assert r3 > r2
    with pytest.raises(pystore.ConflictError):
        c.delete("a", if_revision=r1)
    assert c.delete("a", if_revision=r2) and not c.delete("a") and c.ids() == ["b"]


def test_watch_yields_this_kinds_changes(store: pystore.Store) -> None:
    c = store.collection("Agent", Agent)
    start = store.revision()
    rev = c.save("a", Agent())
    store.save_resource("Session", "s", Session())
    c.delete("a")
    changes = list(c.watch(after=start, timeout=0.2))
    assert [(ch.op, ch.kind, ch.id) for ch in changes] == [("put", "Agent", "a"),
                                                           ("delete", "Agent", "a")]
    assert changes[0].revision == rev


def test_snapshot_collection_reads_one_view(store: pystore.Store) -> None:
    c = store.collection("Agent", Agent)
    c.save("a", Agent(model="old"))
    with store.snapshot() as snap:
        sc = snap.collection("Agent", Agent)
        c.save("a", Agent(model="new"))
        c.save("b", Agent())
        assert sc.get("a").model == "old" and sc.ids() == ["a"] and sc.count() == 1
        with pytest.raises(pystore.ReadOnlyError):
            sc.save("c", Agent())
        # watching from the snapshot's revision misses nothing after it
        changes = list(sc.watch(timeout=0.2))
        assert [(ch.id, ch.op) for ch in changes] == [("a", "put"), ("b", "put")]
    assert c.get("a").model == "new"


def test_find_and_find_one_by_index(agents: pystore.Collection[Agent],
                                    store: pystore.Store) -> None:
    store.create_index("Agent", "by_model", field="model", msg_type=Agent)
    store.create_index("Agent", "slug", field="metadata.name", msg_type=Agent, unique=True)
    agents.save("x1", Agent(model="3", metadata={"name": "x-one"}))
    found = agents.find("by_model", "3")
    assert [a.model for a in found] == ["3", "3"] and all(isinstance(a, Agent) for a in found)
    assert [a.metadata.name for a in agents.find("by_model", "3", after="a03")] == ["x-one"]
    assert len(agents.find("by_model", "3", limit=1)) == 1
    assert agents.find("by_model", "nothing") == []
    assert agents.find_one("slug", "x-one").model == "3"
    with pytest.raises(pystore.NotFoundError):
        agents.find_one("slug", "nobody")
    with pytest.raises(pystore.NotFoundError):
        agents.find("no_such_index", "3")
    # the same through a transaction (its own writes) and a snapshot (its view)
    with store.transaction() as t:
        tx = t.collection("Agent", Agent)
        tx.save("x2", Agent(model="3", metadata={"name": "x-two"}))
        assert len(tx.find("by_model", "3")) == 3
        assert tx.find_one("slug", "x-two").model == "3"
    with store.snapshot() as snap:
        view = snap.collection("Agent", Agent)
        agents.delete("x2")
        assert len(view.find("by_model", "3")) == 3
        assert view.find_one("slug", "x-two").model == "3"
    assert len(agents.find("by_model", "3")) == 2
    with pytest.raises(pystore.UniqueViolationError):
        agents.save("x3", Agent(metadata={"name": "x-one"}))
    assert not agents.exists("x3")


def test_a_collection_refuses_a_message_of_another_type_and_writes_nothing(
    store_path: Path,
) -> None:
    from pystore.aio import AsyncStore

    with pystore.Store(store_path, sync=False) as s:
        agents = s.collection("Agent", Agent)
        agents.save("a1", Agent(model="m"))
        rev = s.revision()
        wrong: Any = Session(agent_id="x")
        with pytest.raises(TypeError, match=r"pystore\.samples\.Session"):
            agents.save("s1", wrong)
        with pytest.raises(TypeError, match=r"pystore\.samples\.Agent"):
            agents.create("s2", wrong)
        with s.transaction() as t, pytest.raises(TypeError):
            t.collection("Agent", Agent).save("s3", wrong)
        # nothing written, and the kind's recorded type is still Agent
        assert s.revision() == rev and s.list_ids("Agent") == ["a1"]
        assert s.collection("Agent", Agent).get("a1") == Agent(model="m")

    async def main() -> None:
        async with AsyncStore.open(store_path, sync=False) as a:
            ac = a.collection("Agent", Agent)
            with pytest.raises(TypeError):
                await ac.save("s4", wrong)
            with pytest.raises(TypeError):
                await ac.create("s5", wrong)
            async with a.transaction() as at:
                with pytest.raises(TypeError):
                    await at.collection("Agent", Agent).save("s6", wrong)
            assert await a.list_ids("Agent") == ["a1"]

    asyncio.run(main())
