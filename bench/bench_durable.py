"""Durable writes from many threads / asyncio tasks: shared commits (group commit).

Every save returns only after its data is durable; with many writers the
commits (and their fsyncs) are shared.  The report compares the time per
save of one writer (one fsync per save) with 8 threads and with asyncio tasks.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import workload as wl
from conftest import run

import pystore

THREADS, PER_THREAD = 8, 20
TASKS, PER_TASK = 64, 4


@pytest.mark.parametrize("mode", ["1thread", "8threads", "async"])
def test_durable_concurrency(
    benchmark: Any, workload: wl.Workload, tmp_path: Any, mode: str
) -> None:
    benchmark.group = "durable_concurrency"
    msgs = [m for _, _, m in workload.records[:256]]
    path = str(tmp_path / "durable")
    if mode == "1thread":
        store = pystore.Store(path)

        def go() -> None:
            for n in range(40):
                store.save_resource("Agent", f"one-{n}", msgs[n])

        try:
            run(benchmark, go, 40, rounds=7)
        finally:
            store.close()
    elif mode == "8threads":
        store = pystore.Store(path)

        def writer(t: int) -> None:
            for n in range(PER_THREAD):
                store.save_resource("Agent", f"t{t}-{n}", msgs[n])

        def go() -> None:
            threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()

        try:
            run(benchmark, go, THREADS * PER_THREAD, rounds=7)
            assert store.count("Agent") == THREADS * PER_THREAD
        finally:
            store.close()
    else:
        aio = pytest.importorskip("pystore.aio")
        loop = asyncio.new_event_loop()
        astore = loop.run_until_complete(aio.AsyncStore.open(path))

        async def task(t: int) -> None:
            for n in range(PER_TASK):
                await astore.save_resource("Agent", f"a{t}-{n}", msgs[n])

        async def many() -> None:
            await asyncio.gather(*(task(t) for t in range(TASKS)))

        try:
            run(benchmark, lambda: loop.run_until_complete(many()), TASKS * PER_TASK, rounds=7)
        finally:
            loop.run_until_complete(astore.close())
            loop.close()
