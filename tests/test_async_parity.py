"""AsyncStore parity: open as an async context manager, transaction() on the
writer thread, collections with coroutine methods, stats, backup, reads."""

from __future__ import annotations

import asyncio
import inspect
import threading
from pathlib import Path

import pytest

import pystore
from pystore.aio import AsyncStore
from pystore.aio_collection import AsyncCollection
from pystore.samples.agent_pb2 import Agent
from pystore.samples.session_pb2 import Session


def test_open_without_await_and_with_await(store_path: Path) -> None:
    async def main() -> None:
        async with AsyncStore.open(store_path, sync=False) as s:
            await s.save_resource("Agent", "a", Agent(model="m"))
            assert isinstance(s, AsyncStore)
        assert s.store.closed
        s2 = await AsyncStore.open(store_path)
        try:
            assert (await s2.get_resource("Agent", "a", Agent)).model == "m"
        finally:
            await s2.close()

    asyncio.run(main())


def test_transaction_commits_on_the_writer_thread(store_path: Path) -> None:
    threads: set[str] = set()

    def mark(a: Agent) -> None:
        threads.add(threading.current_thread().name)
        a.model = "updated"

    async def main() -> None:
        async with AsyncStore.open(store_path) as s:
            async with s.transaction() as t:
                await t.save_resource("Agent", "a", Agent(model="m"))
                await t.create_resource("Agent", "b", Agent())
                assert (await t.get_resource("Agent", "a", Agent)).model == "m"  # own write
                assert await s.count("Agent") == 0  # not committed yet
                await t.update_resource("Agent", "a", Agent, mark)
                assert await t.list_ids("Agent") == ["a", "b"]
                assert await t.collection("Agent", Agent).get("a") == Agent(model="updated")
            assert await s.count("Agent") == 2
            assert (await s.get_resource("Agent", "a", Agent)).model == "updated"

    asyncio.run(main())
    assert threads and all(n.startswith("pystore-commit") for n in threads), threads


def test_transaction_rolls_back_on_error_and_cancel(store_path: Path) -> None:
    async def main() -> None:
        async with AsyncStore.open(store_path) as s:
            with pytest.raises(RuntimeError):
                async with s.transaction() as t:
                    await t.save_resource("Agent", "x", Agent())
                    raise RuntimeError("boom")
            assert not await s.exists("Agent", "x")

            started = asyncio.Event()

            async def long_txn() -> None:
                async with s.transaction() as t:
                    await t.save_resource("Agent", "y", Agent())
                    started.set()
                    await asyncio.sleep(30)

            task = asyncio.create_task(long_txn())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not await s.exists("Agent", "y")
            # the writer is free again
            await s.save_resource("Agent", "z", Agent())
            assert await s.exists("Agent", "z")

    asyncio.run(main())


def test_group_writes_wait_for_an_open_transaction(store_path: Path) -> None:
    async def main() -> None:
        async with AsyncStore.open(store_path) as s:
            async with s.transaction() as t:
                await t.save_resource("Agent", "in-txn", Agent())
                outside = asyncio.create_task(s.save_resource("Agent", "outside", Agent()))
                batch = asyncio.create_task(s.save_resources("Agent", [("b", Agent())]))
                await asyncio.sleep(0.05)
                assert not outside.done() and not batch.done()
            await asyncio.wait_for(asyncio.gather(outside, batch), 30)
            assert await s.list_ids("Agent") == ["b", "in-txn", "outside"]

    asyncio.run(main())


def test_async_collection(store_path: Path) -> None:
    async def main() -> None:
        async with AsyncStore.open(store_path, sync=False) as s:
            agents = s.collection("Agent", Agent)  # a plain call
            assert isinstance(agents, AsyncCollection)
            for name in ("get", "get_or_none", "exists", "ids", "items", "page", "save",
                         "create", "update", "delete", "count", "find", "find_one"):
                assert inspect.iscoroutinefunction(getattr(agents, name)), name
            await s.save_resources("Agent", [(f"a{i}", Agent(model=str(i))) for i in range(5)])
            assert (await agents.get("a1")).model == "1"
            assert await agents.get_or_none("zz") is None
            assert await agents.exists("a2") and await agents.count() == 5
            assert await agents.ids(prefix="a", after="a2") == ["a3", "a4"]
            assert [i for i, _ in await agents.items(limit=2)] == ["a0", "a1"]
            page = await agents.page(3)
            rest = await agents.page(3, page.next_token)
            assert [i for i, _ in page.items + rest.items] == [f"a{i}" for i in range(5)]
            assert rest.next_token is None
            got = await agents.update("a1", lambda a: setattr(a, "model", "x"))
            assert got.model == "x"

            async def bad(a: Agent) -> None:
                pass

            with pytest.raises(TypeError):
                await agents.update("a1", bad)
            s.store.save_resource("Session", "s", Session())
            with pytest.raises(pystore.InvalidMessageError):
                s.collection("Session", Agent)

    asyncio.run(main())


def test_stats_backup_and_typed_iteration(store_path: Path, tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncStore.open(store_path, sync=False) as s:
            await s.save_resources("Agent", [(f"a{i}", Agent(model=str(i))) for i in range(3)])
            st = await s.stats()
            assert st.kinds["Agent"].count == 3 and st.data_bytes > 0
            size = await s.backup(tmp_path / "bk")
            assert size > 0 and pystore.Store(tmp_path / "bk").count("Agent") == 3
            models = [r.message.model async for r in s.iter_resources("Agent", Agent)]
            assert models == ["0", "1", "2"]
            assert await s.list_resources("Agent", Agent) == [Agent(model=str(i))
                                                              for i in range(3)]

    asyncio.run(main())


def test_async_snapshot_and_collection_writes(store_path: Path) -> None:
    async def main() -> None:
        async with AsyncStore.open(store_path) as s:
            agents = s.collection("Agent", Agent)
            r1 = await agents.save("a", Agent(model="old"))
            assert r1 == s.store.revision()
            with pytest.raises(pystore.ConflictError):
                await agents.save("a", Agent(), if_revision=r1 + 50)
            async with s.snapshot() as snap:
                assert snap.revision == r1
                await agents.save("a", Agent(model="new"))
                assert (await snap.get_resource("Agent", "a", Agent)).model == "old"
                assert await snap.collection("Agent", Agent).ids() == ["a"]
                assert await snap.count("Agent") == 1 and await snap.kinds() == ["Agent"]
            assert await agents.create("b", Agent()) > r1
            assert await agents.delete("b") and not await agents.exists("b")
            seen = [ch.id async for ch in agents.watch(after=r1, timeout=0.2)]
            assert seen == ["a", "b", "b"]

    asyncio.run(main())


def test_async_collection_find(store_path: Path) -> None:
    async def main() -> None:
        async with AsyncStore.open(store_path, sync=False) as s:
            await s.save_resources("Agent", [(f"a{i}", Agent(model=str(i % 2))) for i in range(6)])
            await s.create_index("Agent", "by_model", field="model", msg_type=Agent)
            agents = s.collection("Agent", Agent)
            assert inspect.iscoroutinefunction(agents.find)
            found = await agents.find("by_model", "1")
            assert [a.model for a in found] == ["1", "1", "1"]
            assert len(await agents.find("by_model", "1", after="a1", limit=1)) == 1
            assert (await agents.find_one("by_model", "0")).model == "0"
            with pytest.raises(pystore.NotFoundError):
                await agents.find_one("by_model", "7")

    asyncio.run(main())


def test_an_async_transactions_collection_of_another_type_refuses_writes_too(
    store_path: Path,
) -> None:
    """An async transaction's collections check the recorded type at their
    first read (they are made outside its thread); a write through one came
    first and recorded its type over the kind's, so the kind's records no
    longer read."""
    with pystore.Store(store_path, sync=False) as s:
        s.save_resource("Agent", "a", Agent(model="m"))
        with pytest.raises(pystore.InvalidMessageError):
            s.collection("Agent", Session)  # the sync handle: at creation

    async def main() -> None:
        async with AsyncStore.open(store_path, sync=False) as a:
            with pytest.raises(pystore.InvalidMessageError):
                a.collection("Agent", Session)  # the store's: at creation, as sync
            for write in ("save", "create"):
                with pytest.raises(pystore.InvalidMessageError):
                    async with a.transaction() as t:
                        wrong = t.collection("Agent", Session)  # unchecked until used
                        await getattr(wrong, write)("s", Session())
            assert await a.list_ids("Agent") == ["a"]
            assert await a.collection("Agent", Agent).get("a") == Agent(model="m")
            # a kind without a recorded type takes any: the first save records it
            assert await a.collection("New", Session).save("n", Session()) > 0

    asyncio.run(main())
