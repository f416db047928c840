"""AsyncStore used from more than one event loop: close() from another
thread's loop while the first loop writes, and a transaction() whose event
loop was closed while it was open.

* close() from a second thread (its own loop) while the store's loop had
  writes in flight raised a bare RuntimeError ("attached to a different
  loop") and left the store half closed: new writes refused, the Store
  open, its watchers and snapshots running on.
* A loop closed while a task was inside ``transaction()`` left the LMDB
  write transaction open on the writer thread for good: every other writer
  of the path in this process (another thread's Store) blocked, and the
  AsyncStore's later writes and close() from a new loop hung.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
from pathlib import Path
from typing import Any

import pytest

from pystore import Store, StoreClosedError, StoreError
from pystore.aio import AsyncStore
from pystore.samples.agent_pb2 import Agent


def _close_from_thread(astore: AsyncStore) -> dict[str, Any]:
    """``asyncio.run(astore.close())`` in a new thread; its outcome."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            asyncio.run(asyncio.wait_for(astore.close(), 20))
            out["ok"] = True
        except BaseException as exc:  # reported to the test
            out["error"] = exc

    th = threading.Thread(target=run)
    th.start()
    th.join(30)
    out["alive"] = th.is_alive()
    return out


def test_close_from_another_threads_loop_while_writes_are_in_flight(store_path: Path) -> None:
    acked: dict[str, int] = {}
    ended: dict[str, str] = {}

    async def main() -> dict[str, Any]:
        s = await AsyncStore.open(store_path, sync=True)
        in_txn = asyncio.Event()

        async def writer(i: int) -> None:
            n = 0
            while True:
                key = f"w{i}-{n}"
                try:
                    acked[key] = await s.save_resource("Agent", key, Agent(model=key))
                except StoreClosedError:
                    ended[f"w{i}"] = "closed"
                    return
                n += 1

        async def txn() -> None:
            async with s.transaction() as t:
                await t.save_resource("Agent", "txn", Agent())
                in_txn.set()
                await asyncio.sleep(0.3)  # close() must wait for it

        async def watch() -> None:
            async for _ in s.watch(after=0):
                pass
            ended["watch"] = "ended"

        tasks = [asyncio.create_task(writer(i)) for i in range(16)]
        tasks += [asyncio.create_task(txn()), asyncio.create_task(watch())]
        await in_txn.wait()
        assert s._flusher is not None or s._pending  # writes queued behind the transaction
        out = await asyncio.to_thread(_close_from_thread, s)
        _, pending = await asyncio.wait(tasks, timeout=20)
        out["pending"] = len(pending)
        out["closed"] = s.store.closed
        for task in pending:
            task.cancel()
        return out

    out = asyncio.run(main())
    assert not out["alive"], "close() from another thread hung"
    assert out.get("ok"), f"close() from another thread raised {out.get('error')!r}"
    assert out["closed"], "the Store stayed open"
    assert out["pending"] == 0, "tasks of the store's loop ran on after close()"
    assert ended["watch"] == "ended" and len(ended) == 17
    with Store(store_path, readonly=True) as s:
        assert s.exists("Agent", "txn")
        for key, rev in acked.items():  # every acknowledged write is stored
            assert s.get_record("Agent", key).revision == rev


async def _stuck_in_transaction(astore: AsyncStore, writes: Any) -> asyncio.Task[None]:
    """A task inside ``astore.transaction()`` that made ``writes(t)`` and
    then waits there (for its loop to be closed under it)."""
    inside = asyncio.Event()

    async def txn() -> None:
        async with astore.transaction() as t:
            await writes(t)
            inside.set()
            await asyncio.sleep(3600)

    task = asyncio.ensure_future(txn())
    await inside.wait()
    return task


def test_a_transaction_whose_loop_closed_is_rolled_back_and_frees_the_writer(
    store_path: Path,
) -> None:
    with Store(store_path, sync=False) as s:
        s.save_resource("Agent", "before", Agent())
    first = asyncio.new_event_loop()
    astore = first.run_until_complete(AsyncStore.open(store_path, sync=False))

    async def writes(t: Any) -> None:
        await t.save_resource("Agent", "abandoned", Agent())
        await t.delete_resource("Agent", "before")

    task = first.run_until_complete(_stuck_in_transaction(astore, writes))
    first.close()  # the task never runs again, still inside its transaction
    assert not task.done()
    del task
    gc.collect()

    # another thread's Store of the path writes within a bound
    def other() -> None:
        with Store(store_path, sync=False) as o:
            o.save_resource("Agent", "other", Agent())

    th = threading.Thread(target=other, daemon=True)
    th.start()
    th.join(10)
    assert not th.is_alive(), "the abandoned transaction kept LMDB's write lock"

    async def later() -> int:
        rev = await asyncio.wait_for(astore.save_resource("Agent", "later", Agent()), 10)
        async with astore.transaction() as t:
            await asyncio.wait_for(t.save_resource("Agent", "txn2", Agent()), 10)
        await asyncio.wait_for(astore.close(), 10)
        return rev

    assert asyncio.run(later()) > 0
    assert astore.store.closed
    with Store(store_path, readonly=True) as s:  # rolled back: none of its writes
        assert s.list_ids("Agent") == ["before", "later", "other", "txn2"]
        assert {c.id for c in s.changes()} == {"before", "later", "other", "txn2"}


def test_a_transaction_whose_loop_closed_is_rolled_back_by_the_next_use(
    store_path: Path,
) -> None:
    """The task is still referenced (never collected): the store's next use
    from a new loop rolls the transaction back instead of waiting for it."""
    first = asyncio.new_event_loop()
    astore = first.run_until_complete(AsyncStore.open(store_path, sync=False))

    async def writes(t: Any) -> None:
        await t.save_resource("Agent", "abandoned", Agent())

    kept = first.run_until_complete(_stuck_in_transaction(astore, writes))
    first.close()

    async def later() -> list[str]:
        async with astore.transaction() as t:
            await asyncio.wait_for(t.save_resource("Agent", "t", Agent()), 10)
        await asyncio.wait_for(astore.update_resource(
            "Agent", "u", Agent, lambda m: None, create=True), 10)
        await asyncio.wait_for(astore.save_resource("Agent", "s", Agent()), 10)
        ids = await astore.list_ids("Agent")
        await asyncio.wait_for(astore.close(), 10)
        return ids

    assert asyncio.run(asyncio.wait_for(later(), 30)) == ["s", "t", "u"]
    assert not kept.done()


def test_close_from_another_loop_while_the_stores_loop_is_stopped_is_a_store_error(
    store_path: Path,
) -> None:
    """docs/durability.md: the store's work waits on a loop that is stopped
    (not closed): close() from another loop cannot run there, so it says so
    (StoreError) instead of waiting for ever; that loop then closes it."""
    first = asyncio.new_event_loop()
    astore = first.run_until_complete(AsyncStore.open(store_path, sync=False))

    async def writes(t: Any) -> None:
        await t.save_resource("Agent", "held", Agent())

    task = first.run_until_complete(_stuck_in_transaction(astore, writes))

    async def close_here() -> None:
        await asyncio.wait_for(astore.close(), 10)

    with pytest.raises(StoreError, match="stopped"):
        asyncio.run(close_here())
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        first.run_until_complete(task)
    first.run_until_complete(asyncio.wait_for(astore.close(), 10))
    first.close()
    assert astore.store.closed
    with Store(store_path, readonly=True) as s:  # the cancelled transaction: rolled back
        assert s.list_ids("Agent") == []
