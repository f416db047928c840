"""One benchmark per operation of the issue, for every system, in the same run.

Each round does many operations; the report divides a round's median by
``extra_info["ops"]``.  Reads pick random existing keys; writes upsert
existing keys (the store's size stays put).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import workload as wl
from conftest import FACTS, run
from systems import System

from pystore.samples.agent_pb2 import Agent


def test_save_one(benchmark: Any, system: System, workload: wl.Workload) -> None:
    benchmark.group = "save_one"
    items = [workload.records[n] for n in workload.save_keys]
    save = system.save_one

    def go() -> None:
        for kind, id, msg in items:
            save(kind, id, msg)

    run(benchmark, go, len(items), rounds=10)


def test_save_durable(
    benchmark: Any, system_cls: type[System], workload: wl.Workload, tmp_path: Any
) -> None:
    benchmark.group = "save_durable"
    s = system_cls()
    s.open(str(tmp_path / "durable"), durable=True)
    items = [workload.records[n] for n in workload.save_keys[: wl.DURABLE_PER_ROUND]]
    save = s.save_one

    def go() -> None:
        for kind, id, msg in items:
            save(kind, id, msg)

    try:
        run(benchmark, go, len(items), rounds=5)
    finally:
        s.close()


def test_save_batch(benchmark: Any, system: System, workload: wl.Workload) -> None:
    benchmark.group = "save_batch"
    save_many, delete_kind = system.save_many, system.delete_kind

    def go() -> None:
        save_many(wl.BATCH_KIND, workload.batch)

    run(benchmark, go, len(workload.batch), rounds=5, setup=lambda: delete_kind(wl.BATCH_KIND))


def test_serialize_batch(benchmark: Any, workload: wl.Workload) -> None:
    """What serializing the batch costs alone (part of every system's save)."""
    benchmark.group = "serialize_batch"
    msgs = [m for _, m in workload.batch]

    def go() -> None:
        for m in msgs:
            m.SerializeToString()

    run(benchmark, go, len(msgs), rounds=5)


def test_get_raw(benchmark: Any, system: System, workload: wl.Workload) -> None:
    benchmark.group = "get_raw"
    get, keys = system.get_raw, workload.get_keys

    def go() -> None:
        for kind, id in keys:
            get(kind, id)

    run(benchmark, go, len(keys), rounds=15)


def test_get_parsed(benchmark: Any, system: System, workload: wl.Workload) -> None:
    benchmark.group = "get_parsed"
    get, keys = system.get_parsed, workload.get_keys

    def go() -> None:
        for kind, id in keys:
            get(kind, id, Agent)

    run(benchmark, go, len(keys), rounds=15)


def test_list_raw(benchmark: Any, system: System) -> None:
    benchmark.group = "list_raw"
    assert len(system.list_raw(wl.LIST_KIND)) == wl.PER_KIND
    run(benchmark, lambda: system.list_raw(wl.LIST_KIND), wl.PER_KIND, rounds=10)


def test_list_parsed(benchmark: Any, system: System) -> None:
    benchmark.group = "list_parsed"
    got = system.list_parsed(wl.LIST_KIND, Agent)
    assert len(got) == wl.PER_KIND and got[0].metadata.org_id in ("", got[0].metadata.org_id)
    run(benchmark, lambda: system.list_parsed(wl.LIST_KIND, Agent), wl.PER_KIND, rounds=10)


def test_iter_pages(benchmark: Any, system: System) -> None:
    benchmark.group = "iter_pages"
    assert system.iter_pages(wl.LIST_KIND) == wl.PER_KIND
    run(benchmark, lambda: system.iter_pages(wl.LIST_KIND), wl.PER_KIND, rounds=10)


def test_delete_one(benchmark: Any, system: System, workload: wl.Workload) -> None:
    benchmark.group = "delete_one"
    items = [workload.records[n] for n in workload.save_keys]
    delete = system.delete_one

    def go() -> None:
        for kind, id, _ in items:
            delete(kind, id)

    run(benchmark, go, len(items), rounds=5, setup=lambda: system.load(items, len(items)))
    system.load(items, len(items))


def test_delete_kind(benchmark: Any, system: System, workload: wl.Workload) -> None:
    benchmark.group = "delete_kind"
    doomed = [(wl.DOOMED_KIND, i, m) for k, i, m in workload.records if k == wl.LIST_KIND]

    def go() -> None:
        assert system.delete_kind(wl.DOOMED_KIND) == len(doomed)

    run(benchmark, go, len(doomed), rounds=5, setup=lambda: system.load(doomed, len(doomed)))


@pytest.mark.parametrize("n", [1000])
def test_open_close(
    benchmark: Any, system_cls: type[System], workload: wl.Workload, tmp_path: Any, n: int
) -> None:
    benchmark.group = "open_close"
    path = str(tmp_path / "oc")
    s = system_cls()
    s.open(path)
    s.load(workload.records[:n], n)
    s.close()

    def go() -> None:
        s.open(path)
        s.close()

    run(benchmark, go, 1, rounds=50)


def test_size_recorded(system: System) -> None:
    """The size after the load was recorded by the fixture (see facts.json)."""
    assert FACTS[f"size/{system.name}"] > 0
    assert os.path.isdir(system.path)
