"""Group commit (durable Store shared by threads) and AsyncStore (asyncio tasks)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support import make_agent

import pystore
import pystore._lmdb.group as group_mod
import pystore.aio as aio_mod
from pystore import AlreadyExistsError, InvalidKeyError, StoreClosedError
from pystore.aio import AsyncStore
from pystore.samples import agent_pb2


def _count_in_other_process(path: Path, kind: str) -> int:
    code = (
        "import sys, pystore\n"
        f"s = pystore.Store({str(path)!r}, readonly=True)\n"
        f"print(s.count({kind!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout)


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[int]:
    """Record the size of every batch committed (the real commit still runs)."""
    sizes: list[int] = []
    real = group_mod.commit_ops

    def counted(store: pystore.Store, ops: list[group_mod.Op]) -> None:
        sizes.append(len(ops))
        real(store, ops)

    monkeypatch.setattr(module, "commit_ops", counted)
    return sizes


def test_threads_share_commits_and_every_save_lands(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = _counting(monkeypatch, group_mod)
    s = pystore.Store(store_path)  # sync=True: durable, group commit on
    blocker_in, blocker_out = threading.Event(), threading.Event()

    def blocker() -> None:  # holds the write lock so the writers pile up
        with s.transaction() as t:
            t.save_resource("Agent", "first", make_agent(0))
            blocker_in.set()
            blocker_out.wait(60)

    b = threading.Thread(target=blocker)
    b.start()
    assert blocker_in.wait(60)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            s.save_resource("Agent", f"w{n}", make_agent(n))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 60
    while len(s._group._queue) < 7 and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.001)  # one leader is blocked in begin; the others queue
    blocker_out.set()
    for th in [*threads, b]:
        th.join(60)
    assert not errors, errors
    assert sorted(sizes) == [1, 7]  # 8 durable saves, 2 commits
    assert s.count("Agent") == 9
    s.close()
    assert _count_in_other_process(store_path, "Agent") == 9


def test_group_keeps_each_writes_outcome(store_path: Path) -> None:
    s = pystore.Store(store_path)
    s.save_resource("Agent", "taken", make_agent(1))
    with pytest.raises(AlreadyExistsError):
        s.create_resource("Agent", "taken", make_agent(2))
    assert s.delete_resource("Agent", "taken") is True
    assert s.delete_resource("Agent", "taken") is False
    with pytest.raises(InvalidKeyError):
        s.save_resource("A/B", "x", make_agent(1))
    with pytest.raises(TypeError):
        s.save_resource("Agent", "x", b"not a message")  # type: ignore[arg-type]
    # this thread holds a txn: refused, no deadlock
    with s.transaction(), pytest.raises(pystore.StoreError):
        s.save_resource("Agent", "y", make_agent(1))
    s.close()
    with pytest.raises(StoreClosedError):
        s.save_resource("Agent", "z", make_agent(1))


def test_async_store_basics(store_path: Path) -> None:
    async def main() -> None:
        async with await AsyncStore.open(store_path) as a:
            await a.save_resource("Agent", "a1", make_agent(1))
            await a.create_resource("Agent", "a2", make_agent(2))
            with pytest.raises(AlreadyExistsError):
                await a.create_resource("Agent", "a2", make_agent(3))
            got = await a.get_resource("Agent", "a1", agent_pb2.Agent)
            assert got.metadata.name == "Agent 1" and got.metadata.org_id == ""
            assert await a.get_bytes("Agent", "a2") == (await a.get_record("Agent", "a2")).data
            assert await a.count("Agent") == 2 and await a.kinds() == ["Agent"]
            assert len(await a.list_resources("Agent", agent_pb2.Agent)) == 2
            assert [r.id async for r in a.iter_resources("Agent")] == ["a1", "a2"]
            assert (
                await a.save_resources("Tool", [(f"t{n}", make_agent(n)) for n in range(600)])
                == 600
            )
            assert len([r async for r in a.iter_resources("Tool", after="t1")]) == 598

            def bump(m: agent_pb2.Agent) -> None:
                m.model = "bumped"

            assert (await a.update_resource("Agent", "a1", agent_pb2.Agent, bump)).model == "bumped"
            assert await a.delete_resource("Agent", "a1") is True
            assert await a.delete_resources_by_kind("Tool") == 600
            with pytest.raises(TypeError):
                await a.save_resource("Agent", "bad", "nope")  # type: ignore[arg-type]
            with pytest.raises(InvalidKeyError):
                await a.save_resource("", "x", make_agent(1))
        with pytest.raises(StoreClosedError):
            await a.save_resource("Agent", "late", make_agent(1))
        await a.close()  # idempotent

    asyncio.run(main())


def test_async_tasks_share_commits(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = _counting(monkeypatch, aio_mod)

    async def main() -> None:
        a = await AsyncStore.open(store_path)
        outcomes = await asyncio.gather(
            *(a.save_resource("Agent", f"a{n}", make_agent(n)) for n in range(100)),
            a.create_resource("Agent", "dup", make_agent(1)),
            a.create_resource("Agent", "dup", make_agent(2)),
            return_exceptions=True,
        )
        # each save returns the revision of the commit holding it (shared commits share one)
        assert all(isinstance(o, int) and o >= 1 for o in outcomes[:100])
        assert len(set(outcomes[:100])) < 100
        assert sorted(type(o).__name__ for o in outcomes[100:]) == [
            "AlreadyExistsError",
            "int",
        ]
        assert await a.count("Agent") == 101
        await a.close()

    asyncio.run(main())
    assert sum(sizes) == 102 and len(sizes) < 102  # all queued before the first commit ran
    assert sizes[0] == 102
    assert _count_in_other_process(store_path, "Agent") == 101


def test_async_store_requires_a_store() -> None:
    with pytest.raises(TypeError):
        AsyncStore("path")  # type: ignore[arg-type]


def test_a_bad_key_fails_alone_and_at_once(store_path: Path) -> None:
    """Keys are checked before a write queues: a bad one never reaches (and
    never fails) a shared commit, and does not wait for the write lock."""
    s = pystore.Store(store_path)
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with s.transaction() as t:
            t.save_resource("Agent", "held", make_agent(0))
            held.set()
            release.wait(60)

    h = threading.Thread(target=holder)
    h.start()
    assert held.wait(60)
    outcome: list[BaseException] = []

    def bad() -> None:
        try:
            s.save_resource("Agent", "x" * 600, make_agent(1))  # key over 511 bytes
        except BaseException as exc:
            outcome.append(exc)

    b = threading.Thread(target=bad)
    b.start()
    b.join(30)  # would block behind the holder if the key were checked in the batch
    done_before_release = not b.is_alive()
    release.set()
    h.join(60)
    b.join(60)
    assert done_before_release
    assert len(outcome) == 1 and isinstance(outcome[0], InvalidKeyError)

    async def main() -> None:
        a = AsyncStore(s)
        results = await asyncio.gather(
            a.save_resource("Agent", "ok", make_agent(2)),
            a.save_resource("Agent", "bad\0id", make_agent(3)),
            return_exceptions=True,
        )
        assert isinstance(results[0], int) and isinstance(results[1], InvalidKeyError)
        await a.close()

    asyncio.run(main())
    with pystore.Store(store_path, readonly=True) as ro:
        assert sorted(r.id for r in ro.iter_resources("Agent")) == ["held", "ok"]
