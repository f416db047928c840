"""Minor page faults per timed round of ``make bench``'s operations.

A first touch of a fresh anonymous page costs microseconds on a VM, and a
run frees and re-allocates tens of MB per round (a parsed list, a batch),
which glibc hands back to the kernel and maps again: the faults are part
of what a row measures, for every system alike.  This runs the same
interleaved operations as ``bench/measure.py`` (same workload, stores,
shuffled order; fewer repetitions) and counts ``getrusage`` minor faults
around each timed round, with its time.  Round 7 used it to find the
faults of ``save_resources``' joined batch (~5,900 per 20,000 records, ~40
with the kept buffer of ``pystore/_lmdb/batchbuf.py``) and of list parsed
(upb's arena: 7,400-8,200 per 10,000 records; the expert's 11,000).

    make bench-faults     (or: cd bench && python faults.py [REPS [OP...]];
                           OP: operation names, e.g. save_batch list_parsed)
"""

from __future__ import annotations

import gc
import os
import resource
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import measure as m
import workload as wl

import pystore
from pystore.samples.agent_pb2 import Agent


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _counting(fn: Callable[[], Any], into: list[int]) -> Callable[[], Any]:
    """``fn``, appending the minor faults of each call to ``into``."""

    def go() -> Any:
        before = _faults()
        try:
            return fn()
        finally:
            into.append(_faults() - before)

    return go


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    want = set(sys.argv[2:])
    if reps < 1:
        raise SystemExit("faults.py: REPS must be >= 1")
    w = wl.build()
    scratch = tempfile.mkdtemp(prefix="pystore-faults-")
    opened: dict[str, m.System] = {}
    indexed = None
    try:
        for name, cls in m.SYSTEMS.items():
            s = opened[name] = cls()
            s.open(os.path.join(scratch, name))
            s.load(w.records, wl.LOAD_CHUNK)
        indexed = pystore.Store(os.path.join(scratch, "indexed"), sync=False)
        indexed.create_index(m.FIND_KIND, "slug", field="metadata.slug", msg_type=Agent,
                             unique=True)
        for start in range(0, len(w.records), wl.LOAD_CHUNK):
            with indexed.transaction() as t:
                for kind, id, msg in w.records[start:start + wl.LOAD_CHUNK]:
                    t.save_resource(kind, id, msg)
        ops = m.main_ops(w, opened, indexed, scratch)
        unknown = want - {op.name for op in ops}
        if unknown:
            raise SystemExit(f"faults.py: no operation {sorted(unknown)}")
        faults: dict[tuple[str, str], list[int]] = {}
        for op in ops:
            if want and op.name not in want:
                continue
            for name, (fn, setup, after) in list(op.cases.items()):
                op.add(name, _counting(fn, faults.setdefault((op.name, name), [])),
                       setup, after)
        gc.freeze()  # as measure.py
        times: dict[str, dict[str, list[float]]] = {}
        m.interleave(ops, reps, times, [])  # (its warm-up round is counted too: dropped)
    finally:
        for s in opened.values():
            s.close()
        if indexed is not None:
            indexed.close()
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"minor page faults per timed round, {reps} repetitions (medians)")
    print("| operation | system | µs per op | faults per round |")
    print("|---|---|---|---|")
    for (op_name, name), counts in sorted(faults.items()):
        us = statistics.median(times[op_name][name]) * 1e6
        print(f"| {op_name} | {name} | {us:.2f} | {statistics.median(counts[1:]):.0f} |")


if __name__ == "__main__":
    main()
