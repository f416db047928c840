"""The scale run: 1,000,000 records.  Gets stay flat; iteration memory stays flat."""

from __future__ import annotations

import gc
import os
import tracemalloc
from typing import Any

import pytest
import workload as wl
from conftest import FACTS, run

import pystore

TOTAL = int(os.environ.get("PYSTORE_BENCH_SCALE", "1000000"))
BULK_KIND = "Bulk"
CHUNK = 20_000


def _iter_peak(store: pystore.Store, kind: str) -> tuple[int, int]:
    gc.collect()
    tracemalloc.start()
    n = 0
    for _ in store.iter_resources(kind):
        n += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return n, peak


@pytest.fixture(scope="module")
def scale_store(workload: wl.Workload, scratch: str) -> Any:
    store = pystore.Store(os.path.join(scratch, "scale"), sync=False)
    with store.transaction() as t:
        for kind, id, msg in workload.records:
            t.save_resource(kind, id, msg)
    yield store
    store.close()


def _gets(store: pystore.Store, workload: wl.Workload) -> Any:
    get, keys = store.get_resource, workload.get_keys
    from pystore.samples.agent_pb2 import Agent

    def go() -> None:
        for kind, id in keys:
            get(kind, id, Agent)

    return go


@pytest.mark.parametrize("size", ["50k", "1m"])
def test_scale_get(
    benchmark: Any, scale_store: pystore.Store, workload: wl.Workload, size: str
) -> None:
    """The same 2,000 random gets + parse at 50,000 and at TOTAL records."""
    benchmark.group = "scale_get"
    store = scale_store
    if size == "1m":
        msgs = [m for _, _, m in workload.records]
        have = len(workload.records)
        n = 0
        while have < TOTAL:
            k = min(CHUNK, TOTAL - have)
            store.save_resources(
                BULK_KIND, [(f"blk-{n + i:07d}", msgs[(n + i) % len(msgs)]) for i in range(k)]
            )
            n += k
            have += k
        FACTS["scale/records"] = have
        FACTS["scale/data_bytes"] = os.path.getsize(os.path.join(store.path, "data.mdb"))
    run(benchmark, _gets(store, workload), len(workload.get_keys), rounds=10)


def test_scale_iter(benchmark: Any, scale_store: pystore.Store) -> None:
    """Iterate a 10,000 kind and the ~950,000 kind: peak Python memory must not grow."""
    benchmark.group = "scale_iter"
    n10, peak10 = _iter_peak(scale_store, wl.LIST_KIND)
    nbig, peakbig = _iter_peak(scale_store, BULK_KIND)
    assert n10 == wl.PER_KIND and nbig == TOTAL - 5 * wl.PER_KIND
    FACTS["scale/iter_peak_10k"] = peak10
    FACTS["scale/iter_peak_1m"] = peakbig

    def go() -> None:
        for _ in scale_store.iter_resources(BULK_KIND):
            pass

    run(benchmark, go, nbig, rounds=1)
