"""Cancellation under load, on a durable store (sync=True: the AsyncStore's
group commit): 64 tasks write while some are cancelled at random points,
a watcher follows, and then

* no task hangs, and another thread's Store writes within a bound;
* every acknowledged write is stored at the revision it was given (nothing
  is acknowledged unwritten, nothing acknowledged is lost);
* the change log matches the data, and the watcher saw exactly the log.

Then each writer-thread operation (update_resource, append_event,
save_resources, delete_resources_by_prefix, transaction()) cancelled after
0..N event-loop turns: applied whole or not at all, and the writer free.
"""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path

import pytest

from pystore import AlreadyExistsError, Store
from pystore.aio import AsyncStore
from pystore.records import Change
from pystore.samples.agent_pb2 import Agent


def _other_thread_writes(path: Path, key: str) -> bool:
    """Whether another thread's Store of ``path`` writes within 10 s."""

    def run() -> None:
        with Store(path, sync=False) as o:
            o.save_resource("Other", key, Agent())

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(10)
    return not th.is_alive()


@pytest.mark.parametrize("seed", range(3))
def test_64_durable_writers_with_random_cancels_lose_and_invent_nothing(
    store_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    acked: dict[str, int] = {}
    deleted: dict[str, bool] = {}
    delete_asked: set[str] = set()  # a cancelled delete may still commit
    created: set[str] = set()
    seen: list[Change] = []

    async def writer(s: AsyncStore, i: int) -> None:
        for j in range(8):
            key = f"w{i:02d}-{j}"
            acked[key] = await s.save_resource("A", key, Agent(model=key))
            if j % 3 == 2:  # a create that conflicts, then one that does not
                with pytest.raises(AlreadyExistsError):
                    await s.create_resource("A", key, Agent())
                await s.create_resource("C", key, Agent())
                created.add(key)
            if j % 4 == 3:
                gone = f"w{i:02d}-{j - 1}"
                delete_asked.add(gone)
                deleted[gone] = await s.delete_resource("A", gone)

    async def watcher(s: AsyncStore) -> None:
        async for ch in s.watch(after=0):
            seen.append(ch)

    async def main() -> None:
        s = await AsyncStore.open(store_path, sync=True)
        watch = asyncio.create_task(watcher(s))
        tasks = [asyncio.create_task(writer(s, i)) for i in range(64)]
        for _ in range(24):
            await asyncio.sleep(rng.random() * 0.004)
            rng.choice(tasks).cancel()
        done, pending = await asyncio.wait(tasks, timeout=30)
        assert not pending, f"{len(pending)} writers hung"
        for t in done:  # each finished or was cancelled: no other error
            assert t.cancelled() or t.exception() is None, t.exception()
        assert await asyncio.to_thread(_other_thread_writes, store_path, "during")
        await asyncio.wait_for(s.save_resource("A", "last", Agent()), 10)
        await asyncio.wait_for(s.close(), 10)
        await asyncio.wait_for(watch, 10)  # ends with the store

    asyncio.run(main())
    with Store(store_path, readonly=True) as s:
        log = s.changes()
        logged_deletes = {c.id for c in log if c.op == "delete"}
        for key, rev in acked.items():
            if key in deleted:
                assert deleted[key] and not s.exists("A", key), key
            elif key in delete_asked and key in logged_deletes:
                assert not s.exists("A", key), key
            else:
                assert s.get_record("A", key).revision == rev, key
        assert logged_deletes <= delete_asked
        assert created <= set(s.list_ids("C"))
        live: dict[tuple[str | None, str | None], bool] = {}
        for ch in log:
            live[(ch.kind, ch.id)] = ch.op == "put"
        for kind in ("A", "C"):
            assert {i for (k, i), put in live.items() if put and k == kind} == set(
                s.list_ids(kind))
        revs = [ch.revision for ch in log]
        assert revs == sorted(revs)
        # the watcher saw the log, in order, with no gap and no repeat: all of
        # it up to the close (it ends with the store: what was committed
        # just before may be left for the next watch(after=...))
        got = [(c.revision, c.op, c.kind, c.id) for c in seen]
        assert got == [(c.revision, c.op, c.kind, c.id) for c in log][:len(got)]
        assert got and got[-1][0] >= max(acked.values())


def _bump(m: Agent) -> None:
    m.model += "x"


async def _txn(s: AsyncStore) -> None:
    async with s.transaction() as t:
        await t.save_resource("T", "a", Agent())
        await t.update_resource("T", "b", Agent, _bump, create=True)
        await t.append_event("tev", Agent())


OPS = {
    "update": lambda s: s.update_resource("U", "u", Agent, _bump, create=True),
    "append": lambda s: s.append_event("ev", Agent()),
    "batch": lambda s: s.save_resources("B", [(f"b{i:02d}", Agent()) for i in range(40)]),
    "prefix": lambda s: s.delete_resources_by_prefix("B", "b1"),
    "txn": _txn,
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_writer_thread_operations_cancelled_at_any_turn_apply_whole_or_not(
    store_path: Path, name: str
) -> None:
    op = OPS[name]

    async def main() -> list[bool]:
        s = await AsyncStore.open(store_path, sync=True)
        finished: list[bool] = []
        for turns in range(10):
            before = await s.revision()
            task = asyncio.ensure_future(op(s))
            for _ in range(turns):
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
                finished.append(True)
            except asyncio.CancelledError:
                finished.append(False)
            # the writer is free: another thread's Store, then this store
            assert await asyncio.to_thread(_other_thread_writes, store_path, f"o{turns}")
            await asyncio.wait_for(s.save_resource("S", f"s{turns}", Agent()), 10)
            snap = s.store.changes(after=before)
            if name == "batch":  # one commit of all 40 or none
                puts = [c for c in snap if c.kind == "B"]
                assert len(puts) in (0, 40)
            if name == "txn":
                kinds = sorted(str(c.kind or c.stream) for c in snap if c.kind != "S"
                               and c.kind != "Other")
                assert kinds in ([], ["T", "T", "tev"]), kinds
        await asyncio.wait_for(s.close(), 10)
        return finished

    finished = asyncio.run(main())
    assert not all(finished), "no cancel landed before the operation ended"
    with Store(store_path, readonly=True) as s:
        if name == "update":  # each applied update added exactly one x
            model = s.get_resource("U", "u", Agent).model if s.exists("U", "u") else ""
            assert model == "x" * sum(1 for c in s.changes() if c.kind == "U")
        if name == "append":
            assert s.last_seq("ev") == sum(1 for c in s.changes() if c.stream == "ev")
        if name == "txn":
            assert (s.exists("T", "a"), s.exists("T", "b")) in ((True, True), (False, False))
