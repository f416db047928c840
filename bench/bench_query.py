"""Issue 10's query benchmarks at 100,000 resources: a lookup through an
index against the plain key operations it must stay close to, and the
full-scan way (list + parse + filter, as the daemon did) beside them.

Groups (the report's targets): ``q_point`` find_one by a unique index vs
get_resource by id; ``q_find100`` find of 100 matches vs list_resources of a
100-record kind; ``q_save`` save one into a kind with 3 indexes vs without.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
import workload as wl
from conftest import run

import pystore
from pystore.samples.agent_pb2 import Agent

N = int(os.environ.get("PYSTORE_BENCH_QUERY_N", "100000"))
OWNERS = N // 100  # each owner holds 100 resources
LOOKUPS = 2000  # operations per round of the point lookups
SAVES = 500


def _agent(rng: random.Random, i: int) -> Agent:
    a = wl.make_agent(rng, "Agent", f"agt-{i:06d}")
    a.metadata.slug = f"slug-{i:06d}"
    a.model = f"owner-{i % OWNERS:05d}"
    a.metadata.labels["phase"] = ("running", "done", "failed")[i % 3]
    return a


@pytest.fixture(scope="module")
def qstores(scratch: str) -> Any:
    """An indexed store and a plain one, each with N Agents (+ a kind of 100)."""
    rng = random.Random(10)
    msgs = [_agent(rng, i) for i in range(N)]
    stores = {}
    for name, indexed in (("indexed", True), ("plain", False)):
        s = pystore.Store(os.path.join(scratch, f"query-{name}"), sync=False)
        if indexed:
            s.create_index("Agent", "slug", field="metadata.slug", msg_type=Agent, unique=True)
            s.create_index("Agent", "owner", field="model", msg_type=Agent)
            s.create_index("Agent", "phase", field="metadata.labels", msg_type=Agent)
        for start in range(0, N, 10_000):
            s.save_resources("Agent", [(f"agt-{i:06d}", msgs[i])
                                       for i in range(start, min(N, start + 10_000))])
        s.save_resources("Small", [(f"sml-{i:03d}", msgs[i]) for i in range(100)])
        stores[name] = s
    yield stores, msgs
    for s in stores.values():
        s.close()


@pytest.mark.parametrize("way", ["pystore", "get", "scan"])
def test_q_point(benchmark: Any, qstores: Any, way: str) -> None:
    """pystore: find_one by the unique slug; get: get_resource by id; scan: the
    daemon's way (list + parse all + filter), per lookup."""
    benchmark.group = "q_point"
    (stores, _), rng = qstores, random.Random(1)
    s = stores["indexed"]
    picks = [rng.randrange(N) for _ in range(LOOKUPS)]
    slugs = [f"slug-{i:06d}" for i in picks]
    ids = [f"agt-{i:06d}" for i in picks]
    if way == "pystore":
        def fn() -> None:
            for slug in slugs:
                s.find_one("Agent", "slug", slug, Agent)
        run(benchmark, fn, LOOKUPS, 15)
    elif way == "get":
        def fn() -> None:
            for id_ in ids:
                s.get_resource("Agent", id_, Agent)
        run(benchmark, fn, LOOKUPS, 15)
    else:
        def fn() -> None:
            want = slugs[0]
            next(a for a in s.list_resources("Agent", Agent) if a.metadata.slug == want)
        run(benchmark, fn, 1, 3)


@pytest.mark.parametrize("way", ["pystore", "list", "scan"])
def test_q_find100(benchmark: Any, qstores: Any, way: str) -> None:
    """pystore: find (parsed) of an owner's 100 resources; list: list_resources
    of a 100-record kind (parsed); scan: list all + parse + filter."""
    benchmark.group = "q_find100"
    stores, _ = qstores
    s = stores["indexed"]
    owners = [f"owner-{i:05d}" for i in random.Random(2).sample(range(OWNERS), 50)]
    if way == "pystore":
        def fn() -> None:
            for o in owners:
                assert len(s.find("Agent", "owner", o, Agent)) == 100
        run(benchmark, fn, len(owners), 10)
    elif way == "list":
        def fn() -> None:
            for _ in owners:
                s.list_resources("Small", Agent)
        run(benchmark, fn, len(owners), 10)
    else:
        def fn() -> None:
            o = owners[0]
            assert len([a for a in s.list_resources("Agent", Agent) if a.model == o]) == 100
        run(benchmark, fn, 1, 3)


@pytest.mark.parametrize("way", ["pystore", "plain", "pystore-same", "plain-same"])
def test_q_save(benchmark: Any, qstores: Any, way: str) -> None:
    """Save one into the kind with 3 indexes (pystore) and into the same kind
    without (plain).  pystore / plain: every save changes the owner and the
    phase (rounds alternate between two value sets, so each measured save
    moves 4 index entries: 2 deletes + 2 inserts); *-same: the stored
    message saved again (the indexed values do not change)."""
    benchmark.group = "q_save"
    stores, msgs = qstores
    s = stores["indexed" if way.startswith("pystore") else "plain"]
    rng = random.Random(3)
    picks = rng.sample(range(N), SAVES)
    sets: list[list[tuple[str, Agent]]] = [[], []]
    for n, i in enumerate(picks):
        for k, batch in enumerate(sets):
            m = Agent()
            m.CopyFrom(msgs[i])
            if not way.endswith("-same"):
                m.model = f"owner-{(i + n + 1 + k) % OWNERS:05d}"
                m.metadata.labels["phase"] = ("running", "done", "failed")[(i + n + k) % 3]
            batch.append((f"agt-{i:06d}", m))
    calls = [0]

    def fn() -> None:
        calls[0] += 1
        for id_, m in sets[calls[0] % 2]:
            s.save_resource("Agent", id_, m)

    run(benchmark, fn, SAVES, 10)
