"""Which tasks count as "inside" an AsyncStore transaction(): the task that
holds it, and a task it started inside its block -- only while that
transaction is open.

``close()`` refuses to run inside the caller's own open transaction (it would
wait for itself).  A task started inside the block inherited the mark for
ever: after the transaction had committed, its close() still raised
TransactionError, so a background task started in a transaction could never
close the store.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pystore import Store, TransactionError
from pystore.aio import AsyncStore
from pystore.samples.agent_pb2 import Agent


def test_a_task_started_in_a_transaction_closes_the_store_after_it_ended(
    store_path: Path,
) -> None:
    async def main() -> None:
        s = await AsyncStore.open(store_path, sync=False)
        ended = asyncio.Event()

        async def background() -> None:
            await ended.wait()  # the transaction has committed
            await asyncio.wait_for(s.save_resource("Agent", "after", Agent()), 10)
            await asyncio.wait_for(s.close(), 10)  # raised TransactionError

        async with s.transaction() as t:
            await t.save_resource("Agent", "in", Agent())
            child = asyncio.create_task(background())
        assert t.revision > 0
        ended.set()
        await asyncio.wait_for(child, 20)
        assert s.store.closed

    asyncio.run(main())
    with Store(store_path, readonly=True) as s:
        assert s.list_ids("Agent") == ["after", "in"]


def test_a_task_started_in_an_open_transaction_still_cannot_close_inside_it(
    store_path: Path,
) -> None:
    """The guard itself stays: while the transaction is open, a close() by a
    task it started (and awaits) would wait for it, i.e. for itself."""

    async def main() -> None:
        s = await AsyncStore.open(store_path, sync=False)
        async with s.transaction() as t:
            await t.save_resource("Agent", "in", Agent())
            child = asyncio.create_task(s.close())
            with pytest.raises(TransactionError):
                await asyncio.wait_for(child, 10)
        assert await s.exists("Agent", "in")
        await asyncio.wait_for(s.close(), 10)

    asyncio.run(main())


def test_the_mark_belongs_to_one_store_and_one_transaction(store_path: Path) -> None:
    """A task started inside store A's transaction closes store B at any time,
    and A once A's transaction ended (a mark by ``id()`` could also match a
    later store that reused a closed one's id)."""

    async def main() -> None:
        a = await AsyncStore.open(store_path, sync=False)
        b = await AsyncStore.open(store_path.with_name("other"), sync=False)
        go = asyncio.Event()

        async def closer() -> None:
            await asyncio.wait_for(b.close(), 10)  # another store: never refused
            await go.wait()
            await asyncio.wait_for(a.close(), 10)

        async with a.transaction() as t:
            await t.save_resource("Agent", "x", Agent())
            child = asyncio.create_task(closer())
            await asyncio.sleep(0.05)
        go.set()
        await asyncio.wait_for(child, 20)
        assert a.store.closed and b.store.closed

    asyncio.run(main())
