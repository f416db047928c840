"""AsyncStore outliving the event loop it first wrote from (review round 4).

An event loop closed while a write's commit was queued or in flight left
the store's flusher task (and the gate it held) pending forever on the dead
loop: every later write, from a new loop, queued behind it and waited for
ever, and close() could not finish.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from support import make_agent

from pystore import Store
from pystore.aio import AsyncStore


def test_writes_from_a_new_loop_after_the_first_loop_closed_mid_commit(
    store_path: Path,
) -> None:
    first = asyncio.new_event_loop()
    astore = first.run_until_complete(AsyncStore.open(store_path))
    first.run_until_complete(astore.save_resource("Agent", "before", make_agent(0)))

    async def abandon() -> None:
        # a write queued; its caller and the loop go away before it returns
        task = asyncio.ensure_future(astore.save_resource("Agent", "abandoned", make_agent(1)))
        while astore._flusher is None:
            await asyncio.sleep(0)
        assert not task.done()

    first.run_until_complete(abandon())
    first.close()  # the flusher never runs again

    async def later() -> tuple[int, bool]:
        rev = await asyncio.wait_for(
            astore.save_resource("Agent", "after", make_agent(2)), 10
        )
        created = await asyncio.wait_for(
            astore.create_resource("Agent", "made", make_agent(3)), 10
        )
        await asyncio.wait_for(astore.close(), 10)
        return rev, created > rev

    rev, later_rev_grew = asyncio.run(later())
    assert later_rev_grew
    assert astore.store.closed
    with Store(store_path) as s:
        assert s.get_record("Agent", "after").revision == rev
        assert s.exists("Agent", "made") and s.exists("Agent", "before")
