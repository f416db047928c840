"""Interleaved micro-benchmark of saves inside one ``transaction()`` (issue 12, branch tfast).

20,000 1.1 KB Agents of bench/workload.py saved one ``t.save_resource`` at a
time inside one ``store.transaction()`` of a sync=False Store, against py-lmdb
used by an expert (writemap=True, one write txn: ``txn.put`` per record, and
``putmulti`` as ``make bench`` does) and against the general path every
save in a transaction took before (``t._slot = None``), in a shuffled order
every repetition;
S, the cost of serializing the messages, is measured in the same run and
subtracted for the "- S" ratios.  Also ``save_resources`` and
``update_resource`` inside a transaction.  Prints medians in µs per record
and the medians of the per-repetition ratios.

    cd tests && ../.venv/bin/python ../bench/micro_txn.py [reps]
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import lmdb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workload

import pystore

N = 20_000
MAP = 1 << 30


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) / N


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    rng = random.Random(1)
    msgs = [workload.make_agent(rng, "Agent", f"agt-{i:06d}") for i in range(N)]
    items = [(f"b-{i:06d}", m) for i, m in enumerate(msgs)]
    tmp = tempfile.mkdtemp(prefix="tx-bench-")
    store = pystore.Store(os.path.join(tmp, "py"), sync=False, map_size=MAP)
    store.save_resources("Batch", items[:1])  # the kind's schema
    env = lmdb.open(os.path.join(tmp, "lm"), map_size=MAP, sync=False, metasync=False,
                    writemap=True, max_spare_txns=4)

    def py_txn() -> None:
        with store.transaction() as t:
            save = t.save_resource
            for id, m in items:
                save("Batch", id, m)

    def py_txn_general() -> None:  # the path every save in a transaction took before
        with store.transaction() as t:
            t._slot = None
            save = t.save_resource
            for id, m in items:
                save("Batch", id, m)

    def py_txn_batch() -> None:
        with store.transaction() as t:
            t.save_resources("Batch", items)

    def py_txn_batch_general() -> None:
        with store.transaction() as t:
            t._slot = None
            t.save_resources("Batch", items)

    def expert_put() -> None:
        with env.begin(write=True) as txn:
            put = txn.put
            for id, m in items:
                put(f"Batch/{id}".encode(), m.SerializeToString())

    def expert_putmulti() -> None:
        pairs = [(f"Batch/{id}".encode(), m.SerializeToString()) for id, m in items]
        with env.begin(write=True) as txn:
            txn.cursor().putmulti(pairs)

    def ser() -> None:
        for m in msgs:
            m.SerializeToString()

    def py_clear() -> None:
        store.delete_resources_by_kind("Batch")
        store.save_resources("Batch", items[:1])

    def lm_clear() -> None:
        with env.begin(write=True) as txn:
            cur = txn.cursor()
            if cur.set_range(b"Batch/"):
                while cur.key().startswith(b"Batch/"):
                    if not cur.delete():
                        break

    systems: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
        "S": (ser, lambda: None),
        "pystore txn": (py_txn, py_clear),
        "pystore txn, general path": (py_txn_general, py_clear),
        "pystore txn save_resources": (py_txn_batch, py_clear),
        "pystore txn save_resources, general": (py_txn_batch_general, py_clear),
        "expert put": (expert_put, lm_clear),
        "expert putmulti": (expert_putmulti, lm_clear),
    }
    res: dict[str, list[float]] = {n: [] for n in systems}
    for _ in range(reps):
        order = list(systems.items())
        random.shuffle(order)
        for name, (fn, clear) in order:
            clear()
            res[name].append(timed(fn))
        clear()
    med = {n: statistics.median(v) * 1e6 for n, v in res.items()}
    print(f"{reps} repetitions, {N} records, µs per record (medians)")
    for n, v in med.items():
        print(f"  {n:36s} {v:6.2f}")
    gain = statistics.median(g - f for g, f in zip(res["pystore txn, general path"],
                                                   res["pystore txn"], strict=True))
    print(f"  one call saves {gain * 1e6:.2f} µs per record over the general path")
    gain = statistics.median(g - f for g, f in zip(res["pystore txn save_resources, general"],
                                                   res["pystore txn save_resources"], strict=True))
    print(f"  save_resources in a txn: one call saves {gain * 1e6:.2f} µs per record")
    s = res["S"]
    for a in ("pystore txn", "pystore txn, general path", "pystore txn save_resources"):
        for b in ("expert put", "expert putmulti"):
            r = statistics.median(x / y for x, y in zip(res[a], res[b], strict=True))
            rs = statistics.median((x - z) / (y - z)
                                   for x, y, z in zip(res[a], res[b], s, strict=True))
            print(f"  {a} / {b}: {r:.2f}x; minus S: {rs:.2f}x")


if __name__ == "__main__":
    main()
