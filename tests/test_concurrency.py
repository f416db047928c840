"""Threads and processes sharing one store: models, GIL release, close, readers, fork."""

from __future__ import annotations

import os
import random
import sys
import threading
from pathlib import Path

import pytest
from workers import Child, payload

from pystore import Store, StoreClosedError
from pystore.samples.agent_pb2 import Agent

THREADS = 8
OPS = 1500
COUNTERS = 4


def _bump(msg: Agent) -> None:
    msg.model = str(int(msg.model or "0") + 1)


def _mixed_worker(store: Store, t: int, bumps: list[int], errors: list[BaseException]) -> None:
    """Random ops on a kind only this thread writes, checked against its own model,
    plus update_resource on shared counters and reads of every other kind."""
    rng = random.Random(t)
    kind = f"K{t}"
    model: dict[str, Agent] = {}
    try:
        for n in range(OPS):
            op = rng.random()
            x = f"id{rng.randrange(40):03d}"
            if op < 0.30:
                msg = Agent(model=f"{t}-{n}", instructions="i" * rng.randrange(5000))
                store.save_resource(kind, x, msg)
                model[x] = msg
            elif op < 0.45:
                c = rng.randrange(COUNTERS)
                store.update_resource("Counter", f"c{c}", Agent, _bump)
                bumps[c] += 1
            elif op < 0.55:
                assert store.delete_resource(kind, x) == (x in model)
                model.pop(x, None)
            elif op < 0.60:
                batch = [(f"b{j:03d}", Agent(model=f"{t}-{n}-{j}")) for j in range(10)]
                store.save_resources(kind, batch)
                model.update(batch)
            elif op < 0.62:
                assert store.delete_resources_by_kind(kind) == len(model)
                model.clear()
            elif op < 0.67:
                with store.transaction() as txn:
                    a, b = Agent(model=f"{t}-{n}-a"), Agent(model=f"{t}-{n}-b")
                    txn.save_resource(kind, "ta", a)
                    txn.save_resource(kind, "tb", b)
                    assert txn.get_resource(kind, "ta", Agent) == a
                model.update({"ta": a, "tb": b})
            elif op < 0.80:
                if x in model:
                    assert store.get_resource(kind, x, Agent) == model[x]
                else:
                    assert not any(r.id == x for r in store.iter_resources(kind))
            elif op < 0.90:
                got = store.list_resources(kind, Agent)
                assert got == [model[k] for k in sorted(model)]
                assert store.count(kind) == len(model)
            else:
                other = f"K{rng.randrange(THREADS)}"
                for m in store.list_resources(other, Agent):
                    assert m.model  # every record parses and was written whole
                assert set(store.kinds()) <= {f"K{i}" for i in range(THREADS)} | {"Counter"}
        assert store.list_resources(kind, Agent) == [model[k] for k in sorted(model)]
    except BaseException as exc:
        errors.append(exc)


def test_eight_threads_mixed_ops_against_models(store: Store) -> None:
    for c in range(COUNTERS):
        store.save_resource("Counter", f"c{c}", Agent(model="0"))
    bumps = [[0] * COUNTERS for _ in range(THREADS)]
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_mixed_worker, args=(store, t, bumps[t], errors))
        for t in range(THREADS)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads)
    assert not errors, errors
    # No lost update: every increment of every thread is in the counters.
    for c in range(COUNTERS):
        want = sum(b[c] for b in bumps)
        assert want > 0
        assert store.get_resource("Counter", f"c{c}", Agent).model == str(want)


def test_blocked_write_does_not_hold_the_gil(tmp_path: Path) -> None:
    """A thread stuck in the core (waiting for LMDB's write lock, held by another
    process) lets the other Python threads run; if the GIL were held, this
    thread could not run until the other process gave up after 20 s."""
    path = str(tmp_path / "store")
    with Store(path, sync=True) as store:
        holder = Child("holdwrite", path)
        try:
            assert holder.line() == "holding"
            started = threading.Event()

            def write() -> None:
                started.set()
                store.save_resource("Blocked", "w", payload("Blocked", "w"))

            writer = threading.Thread(target=write)
            writer.start()
            assert started.wait(timeout=10)
            threading.Event().wait(0.2)  # time to reach the lock (GIL released here)
            # Pure Python work and reads while the writer waits in C.
            total = sum(i * i for i in range(200_000))
            assert store.count("Blocked") == 0
            assert writer.is_alive(), "the write finished before the lock was released"
            holder.send("commit")
            assert holder.line() == "committed"
            writer.join(timeout=30)
            assert not writer.is_alive()
            assert store.get_resource("Held", "h", Agent) == payload("Held", "h")
            assert store.get_resource("Blocked", "w", Agent) == payload("Blocked", "w")
            assert total > 0
        finally:
            holder.kill()


def test_opening_an_existing_store_does_not_wait_for_a_writer(tmp_path: Path) -> None:
    """Another process holds the write lock: a writable Store still opens and
    reads at once (only creating a new store needs the lock)."""
    path = str(tmp_path / "store")
    with Store(path) as store:
        store.save_resource("Agent", "a", payload("Agent", "a"))
    holder = Child("holdwrite", path)
    try:
        assert holder.line() == "holding"
        opened: list[int] = []

        def open_and_count() -> None:
            with Store(path) as s:
                opened.append(s.count("Agent"))

        th = threading.Thread(target=open_and_count)
        th.start()
        th.join(timeout=10)
        assert not th.is_alive(), "opening waited for the other process's write lock"
        assert opened == [1]
        holder.send("commit")
        assert holder.line() == "committed"
    finally:
        holder.kill()


def test_fsync_commits_let_other_threads_run(tmp_path: Path) -> None:
    """With a huge switch interval a thread keeps the GIL until it blocks; the
    main thread still sees the writer's progress between its fsync'd commits."""
    done: list[int] = []
    seen: set[int] = set()
    commits = 30
    old = sys.getswitchinterval()
    with Store(tmp_path / "store", sync=True) as store:
        big = Agent(instructions="x" * 200_000)

        def write() -> None:
            for i in range(commits):
                store.save_resource("Sync", f"s{i}", big)
                done.append(i)

        writer = threading.Thread(target=write)
        sys.setswitchinterval(30.0)
        try:
            writer.start()
            while writer.is_alive():
                seen.add(len(done))
                threading.Event().wait(0.0002)  # releases the GIL briefly
            writer.join(timeout=60)
        finally:
            sys.setswitchinterval(old)
        assert len(done) == commits
        assert any(0 < n < commits for n in seen), sorted(seen)
        assert store.count("Sync") == commits


def _until_closed(store: Store, t: int, outcome: list[str], ready: threading.Barrier) -> None:
    rng = random.Random(t)
    n = 0
    try:
        while True:
            if n == 20:
                ready.wait(timeout=30)
            n += 1
            r = rng.random()
            if r < 0.3:
                store.save_resource("Close", f"t{t}-{n % 50}", Agent(model=str(n)))
            elif r < 0.5:
                store.list_resources("Close", Agent)
            elif r < 0.6:
                with store.transaction() as txn:
                    for j in range(5):
                        txn.save_resource("CloseTxn", f"t{t}-{n}-{j}", Agent(model=str(n)))
            elif r < 0.7:
                store.update_resource("Close", "shared", Agent, _bump)
            else:
                store.count("Close")
                store.kinds()
    except StoreClosedError:
        outcome.append("closed")
    except BaseException as exc:
        outcome.append(repr(exc))


@pytest.mark.parametrize("round", range(5))
def test_close_while_threads_are_mid_call(tmp_path: Path, round: int) -> None:
    path = tmp_path / "store"
    store = Store(path, sync=False)
    store.save_resource("Close", "shared", Agent(model="0"))
    outcome: list[str] = []
    ready = threading.Barrier(7)
    threads = [
        threading.Thread(target=_until_closed, args=(store, t, outcome, ready)) for t in range(6)
    ]
    for th in threads:
        th.start()
    ready.wait(timeout=30)  # every thread has made 20 calls and keeps going
    store.close()
    for th in threads:
        th.join(timeout=30)
    assert not any(th.is_alive() for th in threads)
    assert outcome == ["closed"] * 6
    store.close()  # idempotent
    with Store(path) as again:  # what was committed is whole
        groups: dict[str, int] = {}
        for rec in again.iter_resources("CloseTxn"):
            key = rec.id.rsplit("-", 1)[0]
            groups[key] = groups.get(key, 0) + 1
        assert set(groups.values()) <= {5}
        assert int(again.get_resource("Close", "shared", Agent).model) >= 0


def test_readonly_process_sees_each_committed_write(tmp_path: Path) -> None:
    """Lockstep: each write is seen by a readonly process before the next one,
    while the writer's map grows from 1 MiB several times (MAP_RESIZED there)."""
    path = str(tmp_path / "store")
    writes = 60
    with Store(path, map_size=1 << 20, sync=True) as store:
        store.save_resource("Seed", "s", Agent())
        follower = Child("follow", path, str(writes))
        try:
            assert follower.line() == "count 0"
            for k in range(writes):
                if k % 15 == 7:  # push the map past its size
                    store.save_resource("Filler", f"f{k}", Agent(instructions="z" * 1_500_000))
                x = f"f{k:05d}"
                store.save_resource("Follow", x, payload("Follow", x))
                assert follower.line() == f"count {k + 1}"
            rest = follower.finish()
            assert follower.proc.returncode == 0, follower.stderr
            assert rest == []
        finally:
            follower.kill()


def _data_size(path: Path) -> int:
    return os.path.getsize(path / "data.mdb")


def _kill_readers_then_rewrite(store: Store, path: Path, big: Agent) -> int:
    """Three processes die holding read snapshots; then 40 rewrites of ``big``.
    Returns how much data.mdb grew meanwhile."""
    store.save_resource("Big", "b", big)
    readers = [Child("hold", str(path)) for _ in range(3)]
    for r in readers:
        assert r.line() == "holding 0"
    for r in readers:
        r.kill()
    before = _data_size(path)
    for i in range(40):
        big.model = str(i)
        store.save_resource("Big", "b", big)
    return _data_size(path) - before


def _rewrites_growth(store: Store, path: Path, big: Agent) -> int:
    before = _data_size(path)
    for i in range(200):
        big.model = str(i)
        store.save_resource("Big", "b", big)
    assert store.get_resource("Big", "b", Agent) == big
    return _data_size(path) - before


def test_stale_reader_slots_of_killed_processes_are_cleared_on_open(tmp_path: Path) -> None:
    path = tmp_path / "store"
    big = Agent(instructions="r" * 64_000)
    with Store(path, sync=False) as store:
        # The dead readers still pin the snapshot they held: nothing freed
        # since can be reused and every rewrite takes new pages.
        assert _kill_readers_then_rewrite(store, path, big) > 40 * 60_000
        # Any process opening the store clears the slots of dead processes.
        opener = Child("follow", str(path), "0")
        assert opener.line() == "count 0"
        opener.finish()
        assert opener.proc.returncode == 0, opener.stderr
        assert _rewrites_growth(store, path, big) < 1_000_000


def test_long_running_writer_clears_stale_reader_slots(tmp_path: Path) -> None:
    """No other process opens the store: the writer's own commits sweep the
    reader table every 1024 commits (PS_READER_CHECK_EVERY)."""
    path = tmp_path / "store"
    big = Agent(instructions="r" * 64_000)
    with Store(path, sync=False) as store:
        assert _kill_readers_then_rewrite(store, path, big) > 40 * 60_000
        for i in range(1100):
            store.save_resource("Tick", "t", Agent(model=str(i)))
        assert _rewrites_growth(store, path, big) < 1_000_000


def test_fork_child_gets_forked_error_and_parent_keeps_working(tmp_path: Path) -> None:
    child = Child("fork", str(tmp_path / "store"))
    lines = [child.line(), child.line()]
    child.finish()
    assert child.proc.returncode == 0, child.stderr
    code = "-31012"  # PS_ERR_FORKED
    assert lines[0] == (
        f"child 0 get:ForkedError:None save:ForkedError:None count:ForkedError:None "
        f"txn:ForkedError:None c-begin:{code}"
    )
    assert lines[1] == "parent ok 4"
