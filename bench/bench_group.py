"""Durable writer threads against the disk's own ceiling (issue 12's group-commit row).

    python bench/bench_group.py [DIR] [--seconds S] [--repeats N]

Prints, per repeat and as medians with their spread:

* T1, T8: the commit time of one and of eight records in one durable
  transaction (``Store.transaction()``) on this disk, measured interleaved;
* one thread's durable saves per second (one commit, one fsync per save);
* eight threads' durable saves per second (``save_resource`` in a loop on
  one ``sync=True`` Store: the group commit shares their commits);
* the ratios the target is stated in: 8 threads against one thread
  (>= 2.5) and against the disk's ceiling (>= 0.7 of it): 8 threads'
  saves/s x T8 / 8, i.e. their gain over 1/T1 against 8 x T1 / T8.

DIR (default: a fresh temporary directory) must be on the disk to measure.
Not collected by pytest (no ``test_`` functions); ``measure()`` is the
function ``make bench`` may call.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

import workload as wl

import pystore
import pystore._lmdb.group as group

THREADS = 8
KEYS_PER_THREAD = 64  # upserts over a small set: the store stays small


def _messages(n: int) -> list[Any]:
    rng = random.Random(12)
    return [wl.make_agent(rng, "Agent", f"a-{i}") for i in range(n)]


def commit_times(store: pystore.Store, msgs: list[Any], rounds: int) -> tuple[float, float]:
    """Median seconds of a durable commit of 1 and of 8 records, interleaved."""
    t1: list[float] = []
    t8: list[float] = []
    for r in range(rounds):
        for size, out in ((1, t1), (THREADS, t8)):
            start = time.perf_counter()
            with store.transaction() as t:
                for k in range(size):
                    t.save_resource("Agent", f"t{k}-{r % KEYS_PER_THREAD}", msgs[k])
            out.append(time.perf_counter() - start)
    return statistics.median(t1), statistics.median(t8)


class _Commits:
    """Times and sizes of the group commits (wraps ``group.commit_ops``)."""

    def __init__(self) -> None:
        self.busy = 0.0
        self.records = 0
        self.commits = 0
        self.wall = 0.0
        self._real = group.commit_ops

    def __enter__(self) -> _Commits:
        real = self._real

        def timed(store: pystore.Store, ops: list[Any]) -> None:
            start = time.perf_counter()
            try:
                real(store, ops)
            finally:
                self.busy += time.perf_counter() - start
                self.records += len(ops)
                self.commits += 1

        group.commit_ops = timed
        return self

    def __exit__(self, *exc: object) -> None:
        group.commit_ops = self._real


def saves_per_second(
    store: pystore.Store, msgs: list[Any], threads: int, secs: float,
    commits: _Commits | None = None,
) -> float:
    """Durable saves per second of ``threads`` writers looping for ``secs``."""
    counts = [0] * threads
    stop = threading.Event()
    go = threading.Barrier(threads + 1)

    def writer(t: int) -> None:
        msg = msgs[t]
        go.wait()
        n = 0
        while not stop.is_set():
            store.save_resource("Agent", f"t{t}-{n % KEYS_PER_THREAD}", msg)
            n += 1
        counts[t] = n

    ths = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for th in ths:
        th.start()
    go.wait()
    start = time.perf_counter()
    time.sleep(secs)
    stop.set()
    for th in ths:
        th.join()
    wall = time.perf_counter() - start
    if commits is not None:
        commits.wall = wall
    return sum(counts) / wall


def measure(path: str, secs: float = 1.5, rounds: int = 40, slices: int = 5) -> dict[str, float]:
    """One repeat: T1, T8 (s), one thread's and eight threads' saves/s, ratios.

    The four are measured in ``slices`` interleaved slices (medians taken),
    so that a disk whose speed drifts with the machine's load is seen alike
    by all of them."""
    msgs = _messages(THREADS)
    t1s: list[float] = []
    t8s: list[float] = []
    ones: list[float] = []
    eights: list[float] = []
    trace = _Commits()
    wall = 0.0
    with pystore.Store(path) as store:  # sync=True: every commit is durable
        saves_per_second(store, msgs, THREADS, 0.2)  # warm up: records exist
        for _ in range(slices):
            t1, t8 = commit_times(store, msgs, max(1, rounds // slices))
            t1s.append(t1)
            t8s.append(t8)
            ones.append(saves_per_second(store, msgs, 1, secs / slices))
            with trace:
                eights.append(saves_per_second(store, msgs, THREADS, secs / slices, trace))
            wall += trace.wall
    t1, t8 = statistics.median(t1s), statistics.median(t8s)
    one, eight = statistics.median(ones), statistics.median(eights)
    ceiling = THREADS * t1 / t8  # the disk's gain when every commit holds 8 records
    return {
        "t1_ms": t1 * 1e3,
        "t8_ms": t8 * 1e3,
        "ceiling": ceiling,
        "one_per_s": one,
        "eight_per_s": eight,
        "vs_one": eight / one,
        # 8 threads' saves/s against 8 / T8: every commit holding 8, no gap
        "vs_ceiling": eight * t8 / THREADS,
        # of the 8 threads' time: the share spent in commits (the disk's
        # share when commits are disk-bound), and records per commit
        "busy": trace.busy / wall,
        "per_commit": trace.records / max(1, trace.commits),
        # the time between two commits (the disk idles): CPU and hand-off,
        # nearly independent of the disk; T8 / (T8 + gap) is what the
        # ceiling ratio tends to when every commit holds 8 records
        "gap_ms": (wall - trace.busy) / max(1, trace.commits) * 1e3,
    }


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", nargs="?", help="directory on the disk to measure")
    ap.add_argument("--seconds", type=float, default=1.5, help="per throughput run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    rows = []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory(dir=args.dir, prefix="pystore-group-") as d:
            r = measure(d, args.seconds)
        rows.append(r)
        print(
            f"run {i + 1}: T1 {r['t1_ms']:.3f} ms  T8 {r['t8_ms']:.3f} ms  "
            f"ceiling 8*T1/T8 {r['ceiling']:.2f}x  1 thread {r['one_per_s']:.0f}/s  "
            f"8 threads {r['eight_per_s']:.0f}/s  = {r['vs_one']:.2f}x one thread, "
            f"{r['vs_ceiling']:.2f} of the ceiling 8/T8; 8 threads: {r['per_commit']:.1f} "
            f"records per commit, in commits {r['busy']:.0%} of the time, "
            f"gap between commits {r['gap_ms']:.3f} ms",
            flush=True,
        )
    print("median (min-max) over", len(rows), "runs:")
    for key, label in (
        ("t1_ms", "T1 ms"), ("t8_ms", "T8 ms"), ("ceiling", "8*T1/T8"),
        ("one_per_s", "1 thread saves/s"), ("eight_per_s", "8 threads saves/s"),
        ("vs_one", "8 threads / 1 thread (target >= 2.5)"),
        ("vs_ceiling", "8 threads / (8/T8) (target >= 0.7)"),
        ("per_commit", "8 threads: records per commit"),
        ("busy", "8 threads: share of time in commits"),
        ("gap_ms", "8 threads: gap between commits, ms"),
    ):
        print(f"  {label:40s} {_spread([r[key] for r in rows])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
