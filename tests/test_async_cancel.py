"""Cancelling a task at any of its awaits in AsyncStore's transaction(),
snapshot() and writes: nothing is half applied, no transaction is left open
(the writer stays free, close() returns)."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from pystore import StoreClosedError
from pystore.aio import AsyncStore
from pystore.samples.agent_pb2 import Agent

STEPS = 8  # event-loop turns before the cancel: 0 .. STEPS-1


async def _cancel_after(turns: int, coro: object) -> bool:
    """Run ``coro`` as a task, cancel it after ``turns`` loop turns; whether it
    finished before the cancel landed."""
    task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return False
    return True


@pytest.mark.parametrize("turns", range(STEPS))
def test_a_transaction_cancelled_at_any_await_leaves_the_writer_free(
    store_path: Path, turns: int
) -> None:
    async def txn(s: AsyncStore) -> None:
        async with s.transaction() as t:
            await t.save_resource("Agent", "a", Agent(model="x"))
            await t.save_resource("Agent", "b", Agent(model="x"))

    async def main() -> None:
        s = await AsyncStore.open(store_path, sync=False)
        finished = await _cancel_after(turns, txn(s))
        gc.collect()
        # the writer thread holds no transaction: writes and a new txn work
        await asyncio.wait_for(s.save_resource("Agent", "c", Agent()), 10)
        async with s.transaction() as t:
            await asyncio.wait_for(t.save_resource("Agent", "d", Agent()), 10)
        ids = await s.list_ids("Agent")
        # all or nothing: both of the cancelled transaction's writes or neither
        assert ids in (["a", "b", "c", "d"], ["c", "d"]), ids
        if finished:
            assert ids == ["a", "b", "c", "d"]
        await asyncio.wait_for(s.close(), 10)
        assert s.store.closed

    asyncio.run(main())


@pytest.mark.parametrize("turns", range(STEPS))
def test_a_snapshot_cancelled_at_any_await_is_closed(store_path: Path, turns: int) -> None:
    async def snap(s: AsyncStore) -> None:
        async with s.snapshot() as sn:
            await sn.list_ids("Agent")

    async def main() -> None:
        s = await AsyncStore.open(store_path, sync=False)
        await s.save_resource("Agent", "a", Agent())
        await _cancel_after(turns, snap(s))
        for _ in range(500):  # a worker thread may still be entering it
            gc.collect()
            if not list(s.store._snapshots):
                break
            await asyncio.sleep(0.01)
        assert not list(s.store._snapshots), "a cancelled snapshot stayed open"
        await asyncio.wait_for(s.close(), 10)

    asyncio.run(main())


def test_writes_of_a_readonly_async_store_raise_readonly_error(store_path: Path) -> None:
    from pystore import ReadOnlyError, Store

    with Store(store_path, sync=False) as s:
        s.save_resource("Agent", "x", Agent(model="1"))

    async def main() -> None:
        async with AsyncStore.open(store_path, readonly=True) as a:
            calls = [
                lambda: a.save_resource("Agent", "n", Agent()),
                lambda: a.save_resource("Agent", "x", Agent(), if_revision=1),
                lambda: a.create_resource("Agent", "n", Agent()),
                lambda: a.delete_resource("Agent", "x"),  # exists: was False
                lambda: a.delete_resource("Agent", "nope", if_revision=0),
                lambda: a.save_resource("Agent", "", Agent()),  # as Store: readonly first
            ]
            for call in calls:
                with pytest.raises(ReadOnlyError):
                    await call()

    asyncio.run(main())
    with Store(store_path, readonly=True) as s:
        assert s.list_ids("Agent") == ["x"] and s.revision() == 1


def test_a_write_queued_when_its_commit_cannot_begin_gets_the_error(store_path: Path) -> None:
    from pystore import StoreClosedError

    async def main() -> None:
        a = await AsyncStore.open(store_path, sync=False)
        save = asyncio.ensure_future(a.save_resource("Agent", "x", Agent()))
        delete = asyncio.ensure_future(a.delete_resource("Agent", "y"))
        await asyncio.sleep(0)  # both queued, their commit not begun
        assert a._pending
        a.store.close()  # the Store under it, closed behind its back
        for fut in (save, delete):  # never None (int(None): TypeError; bool(None): False)
            with pytest.raises(StoreClosedError):
                await fut
        await a.close()

    asyncio.run(main())


def test_close_waits_for_another_tasks_open_transaction(store_path: Path) -> None:
    from pystore import Store

    async def main() -> None:
        s = await AsyncStore.open(store_path, sync=False)
        inside = asyncio.Event()

        async def txn() -> int:
            async with s.transaction() as t:
                await t.save_resource("Agent", "x", Agent())
                inside.set()
                await asyncio.sleep(0.2)
                await t.save_resource("Agent", "y", Agent())
            return t.revision

        task = asyncio.create_task(txn())
        await inside.wait()
        await asyncio.wait_for(s.close(), 10)  # raised TransactionError, store left open
        assert s.store.closed
        assert await task == 1

    asyncio.run(main())
    with Store(store_path, readonly=True) as s:
        assert s.list_ids("Agent") == ["x", "y"]


def test_close_inside_the_tasks_own_transaction_raises_and_never_hangs(store_path: Path) -> None:
    from pystore import TransactionError

    async def main() -> None:
        s = await AsyncStore.open(store_path, sync=False)
        async with s.transaction() as t:
            await t.save_resource("Agent", "x", Agent())
            with pytest.raises(TransactionError):
                await asyncio.wait_for(s.close(), 10)
        assert await s.exists("Agent", "x")  # the transaction committed; the store is open
        await asyncio.wait_for(s.close(), 10)
        assert s.store.closed

    asyncio.run(main())


def test_a_store_write_inside_the_tasks_own_transaction_raises_not_deadlocks(
    store_path: Path,
) -> None:
    """As Store's: a write through the store (not ``t``) by the task holding
    the transaction() waited for that transaction, i.e. for itself."""
    from pystore import TransactionError

    async def main() -> None:
        s = await AsyncStore.open(store_path, sync=False)
        writes = [
            lambda: s.save_resource("Agent", "x", Agent()),
            lambda: s.create_resource("Agent", "x", Agent()),
            lambda: s.delete_resource("Agent", "x"),
            lambda: s.save_resources("Agent", [("y", Agent())]),
            lambda: s.update_resource("Agent", "z", Agent, lambda m: None, create=True),
            lambda: s.collection("Agent", Agent).save("w", Agent()),
        ]
        for write in writes:
            async with s.transaction() as t:
                await t.save_resource("Agent", "t", Agent())
                with pytest.raises(TransactionError):
                    await write()
        assert await s.list_ids("Agent") == ["t"]
        # another task's write waits for the transaction, as before
        async with s.transaction() as t:
            other = asyncio.ensure_future(s.save_resource("Agent", "o", Agent()))
            await asyncio.sleep(0.05)
            assert not other.done()
        await asyncio.wait_for(other, 10)
        await s.close()

    async def guarded() -> None:
        await asyncio.wait_for(main(), 30)

    asyncio.run(guarded())


def test_a_nested_transaction_in_the_same_task_raises_not_deadlocks(store_path: Path) -> None:
    from pystore import Store, TransactionError

    with (Store(store_path, sync=False) as sync_store, sync_store.transaction(),
          pytest.raises(TransactionError)):  # Store's behaviour
        sync_store.transaction().__enter__()

    async def main() -> None:
        async with AsyncStore.open(store_path, sync=False) as s:
            async with s.transaction() as t:
                await t.save_resource("Agent", "a", Agent())
                with pytest.raises(TransactionError):
                    async with s.transaction():
                        pass
            assert await s.list_ids("Agent") == ["a"]

    async def guarded() -> None:
        await asyncio.wait_for(main(), 30)

    asyncio.run(guarded())


def test_leaving_a_snapshot_with_a_read_in_flight_never_blocks_the_loop(tmp_path: Path) -> None:
    """Ending an AsyncSnapshot waits for its reads still running in worker
    threads (here a list whose task was cancelled: its thread runs on).
    It waited on the event loop, so every other task stopped meanwhile (0
    ticks of a 1 ms ticker during the exit); now the loop goes on."""
    from pystore import Store

    store = Store(tmp_path / "s", sync=False)
    store.save_resources("A", [(f"a{i:06d}", Agent(model="m", instructions="x" * 200))
                               for i in range(100_000)])

    async def main() -> tuple[int, bool, int]:
        async with AsyncStore(store) as a:
            snap = a.snapshot()
            await snap.__aenter__()
            listing = asyncio.ensure_future(snap.list_resources("A", Agent))
            await asyncio.sleep(0.005)  # the list runs in a worker thread
            listing.cancel()  # (its thread runs on)
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.001)
                    ticks += 1

            tk = asyncio.ensure_future(ticker())
            await asyncio.sleep(0)
            running = not listing.done() or listing.cancelled()
            before = ticks
            await snap.__aexit__(None, None, None)
            during = ticks - before
            tk.cancel()
            with pytest.raises(StoreClosedError):
                await snap.count("A")  # the view is ended
            return during, running, await a.count("A")

    during, running, count = asyncio.run(main())
    assert running
    assert count == 100_000
    assert during >= 1, "the event loop stopped while the snapshot ended"
    store.close()
