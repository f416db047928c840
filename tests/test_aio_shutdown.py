"""An ``AsyncStore.transaction()`` whose exit is cancelled as the event loop
ends (``asyncio.run`` cancels every task left, a second Ctrl-C): its commit
is queued on the writer thread before anything can cancel it, so the store
closes cleanly and the transaction is whole (found by test_aio_sigint.py in
CI: close() ran on the writer thread inside the still-open transaction,
raised TransactionError, and the process hung)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from pystore import Store
from pystore.aio import AsyncStore
from pystore.samples.agent_pb2 import Agent


def test_a_transaction_exit_cancelled_at_once_still_ends_it(tmp_path: Path) -> None:
    path = tmp_path / "s"

    async def main() -> None:
        s = await AsyncStore.open(path, sync=False)
        t = s.transaction()
        await t.__aenter__()
        await t.save_resource("A", "x", Agent(model="x"))
        await t.save_resource("B", "x", Agent(model="x"))
        leaving = asyncio.ensure_future(t.__aexit__(None, None, None))
        await asyncio.sleep(0)  # the exit starts, and waits
        # what asyncio.run does when it ends: cancel every task left
        me = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not me:
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await leaving
        await asyncio.wait_for(s.close(), 10)
        assert s.store.closed

    asyncio.run(main())
    with Store(path, readonly=True) as r:  # committed whole (its exit was queued)
        assert r.list_ids("A") == ["x"] and r.list_ids("B") == ["x"]
