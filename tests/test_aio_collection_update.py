"""``AsyncStore.collection(...).update()`` is a writer-thread write, as
``AsyncStore.update_resource`` is.

It ran ``Collection.update`` in a default-executor worker thread, outside
the store's gate: inside the task's own open transaction() it waited for
LMDB's write lock, held by that transaction (a deadlock where the store's
own update_resource raises TransactionError), and other tasks' updates
each held a worker thread while a transaction was open, so with a handful
of them every worker-thread read (list_ids, snapshots, the transaction's
own reads of the store) waited behind them: the transaction never ended.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pystore import Store, TransactionError
from pystore.aio import AsyncStore
from pystore.samples.agent_pb2 import Agent


def _mark(m: Agent) -> None:
    m.model += "u"


def test_collection_update_inside_the_tasks_own_transaction_raises(store_path: Path) -> None:
    async def main() -> None:
        s = await AsyncStore.open(store_path, sync=False)
        agents = s.collection("Agent", Agent)
        async with s.transaction() as t:
            await t.save_resource("Agent", "t", Agent())
            with pytest.raises(TransactionError):
                async with asyncio.timeout(10):  # (wait_for would run it in a task of its own)
                    await agents.update("x", _mark, create=True)
        assert await s.list_ids("Agent") == ["t"]  # the update wrote nothing
        await asyncio.wait_for(s.close(), 10)

    asyncio.run(main())


def test_other_tasks_collection_updates_wait_without_holding_worker_threads(
    store_path: Path,
) -> None:
    async def main() -> list[str]:
        s = await AsyncStore.open(store_path, sync=False)
        agents = s.collection("Agent", Agent)
        async with s.transaction() as t:
            await t.save_resource("Agent", "x", Agent(model="t"))
            ups = [asyncio.create_task(agents.update("x", _mark)) for _ in range(16)]
            await asyncio.sleep(0.05)
            # worker-thread reads go on meanwhile (they waited behind the updates)
            assert await asyncio.wait_for(s.list_ids("Agent"), 10) == []
            assert not any(u.done() for u in ups)  # they wait for the transaction
        done = await asyncio.wait_for(asyncio.gather(*ups), 10)
        await asyncio.wait_for(s.close(), 10)
        return [m.model for m in done]

    models = asyncio.run(main())
    # each update ran after the transaction committed, one after another
    assert sorted(models, key=len) == ["t" + "u" * n for n in range(1, 17)]
    with Store(store_path, readonly=True) as s:
        assert s.get_resource("Agent", "x", Agent).model == "t" + "u" * 16


def test_collection_update_of_a_transaction_and_a_snapshot(store_path: Path) -> None:
    from pystore import ReadOnlyError

    async def main() -> None:
        async with AsyncStore.open(store_path, sync=False) as s:
            async with s.transaction() as t:
                got = await t.collection("Agent", Agent).update("a", _mark, create=True)
                assert got.model == "u"
            async with s.snapshot() as snap:
                with pytest.raises(ReadOnlyError):
                    await snap.collection("Agent", Agent).update("a", _mark)
            assert (await s.get_resource("Agent", "a", Agent)).model == "u"

    asyncio.run(main())
