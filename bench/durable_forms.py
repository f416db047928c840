"""The 8-durable-writer row of issue 12, measured in two forms side by side.

    python bench/durable_forms.py [DIR] [REPS]

One durable (``sync=True``) pystore store, rounds interleaved in a shuffled
order (REPS repetitions, default 15), medians per save:

* ``one``: one thread, one commit per save (40 saves);
* ``burst20``: 8 new threads started in the round, 20 saves each (the form
  ``make bench`` used until round 6: thread start-up timed, and a round's
  first and last commits, smaller while writers gather or finish, are 2 of
  its ~21);
* ``steady100``: 8 threads started once, released by a barrier, 100 saves
  each (the form ``make bench`` uses, its ``measure.Writers``: a throughput
  in steady state);
* ``steady20`` and ``burst100``: the other two combinations, to tell the
  thread start-up from the round's length;
* T1 / T8: one ``save_resources`` commit of 1 / 8 of the records the
  forms save (T8: one in each writer's key range); and T8 of 8 adjacent
  new keys, as measured until round 10.

Prints T1, T8, the ceiling 8 x T1 / T8 and, per form, the gain G over one
thread and G / ceiling (the row's ratio; target >= 0.7).  DIR (default: a
temporary directory under the current one) must be on the disk to measure.
"""

from __future__ import annotations

import gc
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import workload as wl
from measure import THREADS, Writers, commit_groups

import pystore


def _burst(store: pystore.Store, msgs: list[Any], per: int) -> Callable[[], None]:
    def writer(t: int) -> None:
        for n in range(per):
            store.save_resource("Agent", f"t{t}-{n}", msgs[(t * per + n) % len(msgs)])

    def go() -> None:
        ths = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()

    return go


def main() -> None:
    base = sys.argv[1] if len(sys.argv) > 1 else "."
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    w = wl.build()
    msgs = [m for _, _, m in w.records[:256]]
    d = tempfile.mkdtemp(prefix="durable-forms-", dir=base)
    try:
        with pystore.Store(d) as store:
            steady = Writers(store, msgs)
            try:
                # the records the timed forms save, as make bench's (T8: of steady100)
                g1, g8, g8adj = commit_groups(msgs, 100, 10)

                def commits(groups: list[list[tuple[str, Any]]]) -> Callable[[], None]:
                    def go() -> None:
                        for g in groups:
                            store.save_resources("Agent", g)
                    return go

                def one() -> None:
                    for n in range(40):
                        store.save_resource("Agent", f"one-{n}", msgs[n])

                ops: dict[str, tuple[Callable[[], None], int]] = {
                    "one": (one, 40), "t1": (commits(g1), 10), "t8": (commits(g8), 10),
                    "t8adj": (commits(g8adj), 10),
                    "burst20": (_burst(store, msgs, 20), 160),
                    "burst100": (_burst(store, msgs, 100), 800),
                    "steady20": (lambda: steady.round(20), 160),
                    "steady100": (lambda: steady.round(100), 800),
                }
                times: dict[str, list[float]] = {k: [] for k in ops}
                rng = random.Random(3)
                for _ in range(reps):
                    order = list(ops)
                    rng.shuffle(order)
                    for k in order:
                        fn, n = ops[k]
                        gc.collect()
                        t0 = time.perf_counter()
                        fn()
                        times[k].append((time.perf_counter() - t0) / n)
            finally:
                steady.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    m = {k: statistics.median(v) for k, v in times.items()}
    ceiling = THREADS * m["t1"] / m["t8"]
    print(f"T1 {m['t1'] * 1e6:.0f} µs, T8 {m['t8'] * 1e6:.0f} µs, ceiling 8 x T1 / T8 "
          f"{ceiling:.2f}x; one thread {m['one'] * 1e6:.0f} µs per save ({reps} repetitions)")
    print(f"(T8 of 8 adjacent new keys, the form before round 10: {m['t8adj'] * 1e6:.0f} µs, "
          f"ceiling {THREADS * m['t1'] / m['t8adj']:.2f}x)")
    for k in ("burst20", "steady20", "burst100", "steady100"):
        gain = m["one"] / m[k]
        print(f"{k:10s} {m[k] * 1e6:6.1f} µs per save  G {gain:.2f}x  "
              f"G / ceiling {gain / ceiling:.2f}")


if __name__ == "__main__":
    main()
