"""Interleaved micro-benchmark of the one-call writes (issue 12, branch wfast).

Three systems in one process, in a shuffled order every repetition:
``fast`` (a sync=False Store: one C call per write), ``general`` (the same
Store class with the one-call path switched off: the transaction path every
write took before) and py-lmdb used by an expert (writemap, putmulti, a
cursor delete loop).  1.1 KB Agents of bench/workload.py.  Prints medians in
µs per op / per record and the per-repetition ratios' medians.

    cd tests && ../.venv/bin/python ../bench/micro_fastwrite.py [reps]
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import lmdb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workload

import pystore

N_LOAD = 5_000
N_ONE = 300
N_BATCH = 20_000
N_KIND = 10_000
MAP = 1 << 30


def agents(n: int, seed: int) -> list[Any]:
    rng = random.Random(seed)
    return [workload.make_agent(rng, "Agent", f"agt-{i:06d}") for i in range(n)]


class Py:
    def __init__(self, path: str, fast: bool) -> None:
        self.s = pystore.Store(path, sync=False, map_size=MAP)
        if not fast:
            self.s._fw = None  # the general (transaction) path

    def save_one(self, kind: str, id: str, msg: Any) -> None:
        self.s.save_resource(kind, id, msg)

    def delete_one(self, kind: str, id: str) -> None:
        self.s.delete_resource(kind, id)

    def save_many(self, kind: str, items: list[tuple[str, Any]]) -> None:
        self.s.save_resources(kind, items)

    def txn_many(self, kind: str, items: list[tuple[str, Any]]) -> None:
        with self.s.transaction() as t:
            for id, m in items:
                t.save_resource(kind, id, m)

    def delete_kind(self, kind: str) -> None:
        self.s.delete_resources_by_kind(kind)

    def close(self) -> None:
        self.s.close()


class Expert:
    def __init__(self, path: str) -> None:
        self.env = lmdb.open(path, map_size=MAP, sync=False, metasync=False, writemap=True,
                             max_spare_txns=4)

    def save_one(self, kind: str, id: str, msg: Any) -> None:
        data = msg.SerializeToString()
        with self.env.begin(write=True) as txn:
            txn.put(f"{kind}/{id}".encode(), data)

    def delete_one(self, kind: str, id: str) -> None:
        with self.env.begin(write=True) as txn:
            txn.delete(f"{kind}/{id}".encode())

    def save_many(self, kind: str, items: list[tuple[str, Any]]) -> None:
        pairs = [(f"{kind}/{id}".encode(), m.SerializeToString()) for id, m in items]
        with self.env.begin(write=True) as txn:
            txn.cursor().putmulti(pairs)

    txn_many = save_many

    def close(self) -> None:
        self.env.close()

    def delete_kind(self, kind: str) -> None:
        prefix = f"{kind}/".encode()
        with self.env.begin(write=True) as txn:
            cur = txn.cursor()
            if cur.set_range(prefix):
                while cur.key().startswith(prefix):
                    if not cur.delete():
                        break


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="fw-bench-")
    try:
        run(tmp)
    finally:  # the stores' maps are preallocated: ~1 GiB each
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp: str) -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    msgs = agents(N_BATCH, 1)
    one_ids = [f"agt-{i:06d}" for i in random.Random(2).sample(range(N_LOAD), N_ONE)]
    # each save serializes a message of its own, and S is measured on the
    # same messages (as in `make bench`): one message saved over and over
    # serializes from a warm cache, well below S
    one_msgs = msgs[N_BATCH - N_ONE:]
    one = list(zip(one_ids, one_msgs, strict=True))
    batch = [(f"b-{i:06d}", m) for i, m in enumerate(msgs)]
    kind_items = batch[:N_KIND]
    systems: dict[str, Any] = {
        "fast": Py(os.path.join(tmp, "fast"), True),
        "general": Py(os.path.join(tmp, "general"), False),
        "expert": Expert(os.path.join(tmp, "expert")),
    }
    load = [(f"agt-{i:06d}", msgs[i]) for i in range(N_LOAD)]
    for s in systems.values():
        s.save_many("Agent", load)
        s.save_many("Doomed", kind_items[:1])  # records the kinds' schemas
        s.save_many("Batch", kind_items[:1])
    ser = []
    res: dict[str, dict[str, list[float]]] = {op: {n: [] for n in systems} for op in (
        "save one", "save one - ser", "delete one", "save_resources 20k", "transaction 20k",
        "delete kind 10k")}
    for _ in range(reps):
        ser.append(timed(lambda: [m.SerializeToString() for m in one_msgs]) / N_ONE)
        order = list(systems.items())
        random.shuffle(order)
        for name, s in order:
            t = timed(lambda s=s: [s.save_one("Agent", i, m) for i, m in one]) / N_ONE
            res["save one"][name].append(t)
            res["save one - ser"][name].append(t - ser[-1])
        random.shuffle(order)
        for name, s in order:
            t = timed(lambda s=s: [s.delete_one("Agent", i) for i in one_ids]) / N_ONE
            res["delete one"][name].append(t)
            s.save_many("Agent", [(i, msgs[0]) for i in one_ids])  # back, untimed
        random.shuffle(order)
        for name, s in order:
            res["save_resources 20k"][name].append(timed(lambda s=s: s.save_many("Batch", batch))
                                                   / N_BATCH)
        random.shuffle(order)
        for name, s in order:
            res["transaction 20k"][name].append(timed(lambda s=s: s.txn_many("Batch", batch))
                                                / N_BATCH)
        random.shuffle(order)
        for name, s in order:
            s.save_many("Doomed", kind_items)
            res["delete kind 10k"][name].append(timed(lambda s=s: s.delete_kind("Doomed"))
                                                / N_KIND)
    print(f"serialize one Agent: {statistics.median(ser) * 1e6:.2f} us; {reps} repetitions")
    print("| op (us per op/record) | fast | general | expert | fast/expert | general/expert "
          "| saved by one call (us) |")
    print("|---|---|---|---|---|---|---|")
    for op, by in res.items():
        med = {n: statistics.median(v) * 1e6 for n, v in by.items()}
        r_fast = statistics.median(f / e for f, e in zip(by["fast"], by["expert"], strict=True))
        r_gen = statistics.median(g / e for g, e in zip(by["general"], by["expert"], strict=True))
        pairs = zip(by["general"], by["fast"], strict=True)
        saved = statistics.median(g - f for g, f in pairs) * 1e6
        print(f"| {op} | {med['fast']:.2f} | {med['general']:.2f} | {med['expert']:.2f} | "
              f"{r_fast:.2f} | {r_gen:.2f} | {saved:.2f} |")
    for s in systems.values():
        s.close()


if __name__ == "__main__":
    main()
