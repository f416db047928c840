"""Fixtures of the benchmark suite: the workload, and each system loaded with it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import workload as wl
from systems import SYSTEMS, System

RESULTS = os.environ.get(
    "PYSTORE_BENCH_RESULTS", os.path.join(os.path.dirname(__file__), "results")
)
# Facts that are not timings (sizes, memory), written next to the timings.
FACTS: dict[str, Any] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if FACTS:
        os.makedirs(RESULTS, exist_ok=True)
        path = os.path.join(RESULTS, "facts.json")
        old: dict[str, Any] = {}
        if os.path.exists(path):
            with open(path) as f:
                old = json.load(f)
        old.update(FACTS)
        with open(path, "w") as f:
            json.dump(old, f, indent=1, sort_keys=True)


@pytest.fixture(scope="session")
def workload() -> wl.Workload:
    return wl.build()


@pytest.fixture(scope="session")
def scratch() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="pystore-bench-", dir=os.environ.get("PYSTORE_BENCH_DIR"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def all_systems(workload: wl.Workload, scratch: str) -> Iterator[dict[str, System]]:
    """Every system opened without fsync and loaded with the workload (untimed).

    All are open at once so that each operation is measured for every system
    back to back: on a shared machine the load changes from minute to minute.
    """
    opened: dict[str, System] = {}
    try:
        for name, cls in SYSTEMS.items():
            s = cls()
            s.open(os.path.join(scratch, s.name))
            opened[name] = s
            s.load(workload.records, wl.LOAD_CHUNK)
            FACTS[f"size/{s.name}"] = s.size_on_disk()
        yield opened
    finally:
        for s in opened.values():
            s.close()


@pytest.fixture(params=list(SYSTEMS))
def system(request: pytest.FixtureRequest, all_systems: dict[str, System]) -> System:
    return all_systems[request.param]


@pytest.fixture(params=list(SYSTEMS))
def system_cls(request: pytest.FixtureRequest) -> type[System]:
    return SYSTEMS[request.param]


def run(benchmark: Any, fn: Any, ops: int, rounds: int, setup: Any = None) -> None:
    """Time ``fn`` (which does ``ops`` operations) ``rounds`` times; the report divides by ops."""
    benchmark.extra_info["ops"] = ops
    prepare = None
    if setup is not None:

        def prepare() -> None:
            setup()  # its result is not fn's arguments

    benchmark.pedantic(fn, setup=prepare, rounds=rounds, iterations=1, warmup_rounds=1)
