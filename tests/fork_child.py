"""Programs of test_procs_fork.py: ``python fork_child.py MODE STORE``.

``sync``: a Store with an index, history, events, an open snapshot, a
watch and a collection, and another thread holding a write transaction,
then fork(): the child calls everything on the parent's objects (each must
raise ForkedError, never wait), opens its own Store and writes; the parent
commits its transaction afterwards.  ``async``: the same for an AsyncStore,
whose writer thread does not exist in the child.  Prints one line per side.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pystore import Store
from pystore.aio import AsyncStore
from pystore.samples.agent_pb2 import Agent


def outcome(fn: Callable[[], Any]) -> str:
    try:
        fn()
    except Exception as exc:
        return type(exc).__name__
    return "ok"


def run_sync(path: str) -> None:
    s = Store(path, sync=False)
    s.save_resource("A", "x", Agent(model="1"))
    s.create_index("A", "model", field="model", msg_type=Agent)
    s.set_history("A", 3)
    s.append_event("st", Agent(model="e"))
    snap = s.snapshot().__enter__()
    col = s.collection("A", Agent)
    held, go = threading.Event(), threading.Event()

    def holder() -> None:
        with s.transaction() as t:
            t.save_resource("A", "y", Agent(model="2"))
            held.set()
            go.wait()

    th = threading.Thread(target=holder)
    th.start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        calls: dict[str, Callable[[], Any]] = {
            "snap.get": lambda: snap.get_resource("A", "x", Agent),
            "snap.find": lambda: snap.find_ids("A", "model", "1"),
            "watch": lambda: next(s.watch(after=0, timeout=0.1)),
            "revision": s.revision,
            "changes": lambda: s.changes(0),
            "col.get": lambda: col.get("x"),
            "col.save": lambda: col.save("z", Agent()),
            "append": lambda: s.append_event("st", Agent()),
            "events": lambda: s.read_events("st"),
            "history": lambda: s.history("A", "x"),
            "find": lambda: s.find_ids("A", "model", "1"),
            "update": lambda: s.update_resource("A", "x", Agent, lambda m: None),
            "snapshot": lambda: s.snapshot().__enter__(),
            "backup": lambda: s.backup(path + "-backup"),
        }
        out = {name: outcome(fn) for name, fn in calls.items()}
        bad = {k: v for k, v in out.items() if v != "ForkedError"}
        snap.__exit__(None, None, None)
        s.close()
        with Store(path, sync=False) as own:  # waits for the parent's txn
            own.save_resource("A", "child", Agent())
        print("child", bad or "ok", flush=True)
        os._exit(0)
    time.sleep(0.5)
    go.set()
    th.join()
    _, status = os.waitpid(pid, 0)
    snap.__exit__(None, None, None)
    print("parent", status, sorted(s.list_ids("A")), flush=True)
    s.close()


def run_async(path: str) -> None:
    async def opened() -> AsyncStore:
        s = await AsyncStore.open(path, sync=False)
        await s.save_resource("A", "x", Agent(model="1"))
        return s

    loop = asyncio.new_event_loop()
    s = loop.run_until_complete(opened())
    pid = os.fork()
    if pid == 0:
        async def txn() -> None:
            async with s.transaction() as t:
                await t.save_resource("A", "t", Agent())

        async def snap() -> None:
            async with s.snapshot() as sn:
                await sn.get_resource("A", "x", Agent)

        async def watch() -> None:
            async for _ in s.watch(after=0, timeout=0.1):
                pass

        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "get": lambda: s.get_resource("A", "x", Agent),
            "save": lambda: s.save_resource("A", "y", Agent()),
            "save_resources": lambda: s.save_resources("A", [("z", Agent())]),
            "update": lambda: s.update_resource("A", "x", Agent, lambda m: None),
            "append": lambda: s.append_event("st", Agent()),
            "txn": txn, "snapshot": snap, "watch": watch,
            "collection": lambda: s.collection("A", Agent).get("x"),
        }

        async def child() -> dict[str, str]:
            out = {}
            for name, fn in calls.items():
                try:
                    await asyncio.wait_for(fn(), 5)
                    out[name] = "ok"
                except TimeoutError:
                    out[name] = "HANG"
                except Exception as exc:
                    out[name] = type(exc).__name__
            for name in ("close", "close again"):
                try:
                    await asyncio.wait_for(s.close(), 5)
                except TimeoutError:
                    out[name] = "HANG"
            return out

        out = asyncio.run(child())
        bad = {k: v for k, v in out.items() if v != "ForkedError"}
        print("child", bad or "ok", flush=True)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    got = loop.run_until_complete(s.get_resource("A", "x", Agent)).model
    loop.run_until_complete(s.save_resource("A", "after", Agent()))
    print("parent", status, got, loop.run_until_complete(s.count("A")), flush=True)
    loop.run_until_complete(s.close())


if __name__ == "__main__":
    {"sync": run_sync, "async": run_async}[sys.argv[1]](sys.argv[2])
