"""The floor of issue 12's ``iter_resources`` row, measured in one process.

The row asks pystore's ``iter_resources`` to cost <= 1.50x "the expert's
cursor loop building (id, bytes)" per record.  The API (issue 2, issue 9)
yields a ``Resource`` dataclass per record: id, kind, data, an aware UTC
``updated_at`` datetime, ``updated_ns``, ``revision``, ``message``.  This
measures, interleaved in one process (10,000 ~1.1 KB Agents, the bench's
workload kind, in both stores; thread CPU time; median per record):

* ``expert``: the bench's loop (``systems.LmdbExpert.iter_records``):
  py-lmdb's C cursor iteration, ``(k[n:].decode(), v)`` per record;
* ``expert + Resource``: the same loop, py-lmdb's own C iteration, but
  building what the API yields instead of the tuple: a ``Resource`` (made
  the cheapest way known, ``object.__new__`` of a slots twin and a
  ``__class__`` switch, as pystore does) with its datetime (pystore's
  per-second cache, skipped when a record shares its neighbour's stamp).
  The stamps and revisions are pystore's own for the same ids, so the
  datetime work is the real one.  This is pystore's row if its whole scan
  cost exactly what py-lmdb's iteration costs;
* ``objects alone``: only the Resource + datetime part, from prebuilt
  lists (no store at all): the API's own cost per record;
* ``payloads and ids alone``: the ``bytes`` payload and ``str`` id of each
  record made from one prebuilt buffer each (slices, one decode and split),
  with no B-tree walk at all: what any iteration must make besides the
  objects.  ``objects + payloads and ids (no walk)`` adds it to ``objects
  alone`` round by round: the least an iteration yielding the API's
  objects costs, before it reads anything;
* ``pystore scan only``: pystore's page scan (``reads._scan_records``, the
  ids, payloads, stamps and revisions of each page of 500 as columns), no
  Resource: what pystore's reading costs;
* ``pystore``: ``Store.iter_resources`` as the bench calls it.

If ``expert + Resource`` is above 1.50x, the target needs an iteration
cheaper than py-lmdb's own C cursor loop, on top of every object the API
requires.

    make bench-iter-floor     (or: cd bench && python iter_floor.py [ROUNDS])
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import workload as wl
from systems import LmdbExpert, PyStore

from pystore import Resource
from pystore._lmdb.reads import _TWIN, PAGE, _scan_records, _Stamps, _Twin

_new = object.__new__
_DT = __import__("datetime").datetime
_UTC = __import__("datetime").UTC


def _objects(kind: str, ids: list[str], datas: list[bytes], nss: list[int],
             revs: list[int]) -> Callable[[], int]:
    """Resource + datetime per record from prebuilt columns."""

    def go() -> int:
        stamps = _Stamps()
        y, mo, d, h, mi, sc = stamps.fields
        last_ns: int | None = None
        last_dt = None
        n = 0
        for id, payload, ns, rev in zip(ids, datas, nss, revs, strict=True):
            if ns != last_ns:
                sec, us = divmod(ns // 1000, 1_000_000)
                if sec != stamps.sec:
                    y, mo, d, h, mi, sc = stamps.second(sec)
                last_ns, last_dt = ns, _DT(y, mo, d, h, mi, sc, us, _UTC)
            r = _new(_Twin)
            r.id = id
            r.kind = kind
            r.data = payload
            r.updated_at = last_dt
            r.updated_ns = ns
            r.revision = rev
            r.message = None
            r.__class__ = Resource  # type: ignore[assignment]
            n += 1
        return n

    return go


def _expert_resources(env: Any, kind: str, stamps_of: dict[str, tuple[int, int]]
                      ) -> Callable[[], int]:
    """py-lmdb's cursor loop building pystore's Resource per record."""

    def go() -> int:
        prefix = f"{kind}/".encode()
        n = len(prefix)
        count = 0
        stamps = _Stamps()
        y, mo, d, h, mi, sc = stamps.fields
        last_ns: int | None = None
        last_dt = None
        with env.begin() as txn:
            cur = txn.cursor()
            if cur.set_range(prefix):
                for k, v in cur:
                    if k[:n] != prefix:
                        break
                    id = k[n:].decode()
                    ns, rev = stamps_of[id]  # (in pystore these come with the record)
                    if ns != last_ns:
                        sec, us = divmod(ns // 1000, 1_000_000)
                        if sec != stamps.sec:
                            y, mo, d, h, mi, sc = stamps.second(sec)
                        last_ns, last_dt = ns, _DT(y, mo, d, h, mi, sc, us, _UTC)
                    r = _new(_Twin)
                    r.id = id
                    r.kind = kind
                    r.data = v
                    r.updated_at = last_dt
                    r.updated_ns = ns
                    r.revision = rev
                    r.message = None
                    r.__class__ = Resource  # type: ignore[assignment]
                    count += 1
        return count

    return go


def _payloads_and_ids(datas: list[bytes], ids: list[str]) -> Callable[[], int]:
    """The bytes and str per record that any iteration yielding the API's
    objects must make, from one prebuilt buffer each and no B-tree walk: the
    payloads sliced out as pystore's scan slices them from the map, the ids
    made by one decode and split of a NUL-joined buffer."""
    blob = b"".join(datas)
    ends = list(itertools.accumulate(map(len, datas)))
    starts = [0, *ends[:-1]]
    id_blob = "\0".join(ids).encode()

    def go() -> int:
        payloads = list(map(blob.__getitem__, map(slice, starts, ends)))
        names = id_blob.decode().split("\0")
        if len(names) != len(payloads):
            raise AssertionError("payloads and ids differ in number")
        return len(payloads)

    return go


def _stamp_lookup_cost(ids: list[str], stamps_of: dict[str, tuple[int, int]]
                       ) -> Callable[[], int]:
    """The dict lookup ``expert + Resource`` adds (subtracted from it)."""

    def go() -> int:
        n = 0
        for id in ids:
            _ns, _rev = stamps_of[id]  # the lookup being measured
            n += 1
        return n

    return go


def _scan_only(store: Any, kind: str) -> Callable[[], int]:
    """pystore's page scan alone (the columns _iter builds Resources from)."""
    prefix = kind.encode() + b"/"
    plen = len(prefix)

    def go() -> int:
        n = 0
        cursor: bytes | None = None
        while True:
            rd = store._reader()
            start = prefix if cursor is None else prefix + cursor
            cols = _scan_records(rd, start, plen, PAGE)
            if cols is None:
                raise AssertionError("scan fell back to the general path")
            ids = cols[0]
            n += len(ids)
            if len(ids) < PAGE:
                return n
            cursor = ids[-1].encode()

    return go


def _cpu(fn: Callable[[], int], want: int) -> float:
    t0 = time.thread_time_ns()
    got = fn()
    dt = time.thread_time_ns() - t0
    if got != want:
        raise AssertionError(f"counted {got} of {want}")
    return dt / 1000 / want


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    if rounds < 1:
        raise SystemExit("iter_floor.py: ROUNDS must be >= 1")
    if not _TWIN:
        raise SystemExit("iter_floor.py: pystore's Resource twin is not usable here")
    w = wl.build()
    recs = [(k, i, m) for k, i, m in w.records if k == wl.LIST_KIND]
    root = tempfile.mkdtemp(prefix="iter-floor-")
    try:
        ex, ps = LmdbExpert(), PyStore()
        ex.open(os.path.join(root, "expert"))
        ps.open(os.path.join(root, "pystore"))
        ex.load(recs, wl.LOAD_CHUNK)
        ps.load(recs, wl.LOAD_CHUNK)
        got = list(ps.store.iter_resources(wl.LIST_KIND))
        n = len(got)
        stamps_of = {r.id: (r.updated_ns, r.revision) for r in got}
        ids = [r.id for r in got]
        datas = [r.data for r in got]
        cases: dict[str, Callable[[], int]] = {
            "expert": lambda: ex.iter_records(wl.LIST_KIND),
            "expert + Resource": _expert_resources(ex.env, wl.LIST_KIND, stamps_of),
            "(its stamp lookup)": _stamp_lookup_cost(ids, stamps_of),
            "objects alone": _objects(wl.LIST_KIND, ids, datas,
                                      [r.updated_ns for r in got], [r.revision for r in got]),
            "payloads and ids alone": _payloads_and_ids(datas, ids),
            "pystore scan only": _scan_only(ps.store, wl.LIST_KIND),
            "pystore": lambda: ps.iter_records(wl.LIST_KIND),
        }
        del got, datas
        times: dict[str, list[float]] = {c: [] for c in cases}
        for fn in cases.values():  # warm
            _cpu(fn, n)
        order = list(cases)
        for _ in range(rounds):
            random.shuffle(order)
            for c in order:
                times[c].append(_cpu(cases[c], n))
        ex.close()
        ps.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = times["expert"]
    # expert + Resource minus its dict lookup (pystore gets stamps from the scan)
    floor = [a - b for a, b in zip(times["expert + Resource"], times["(its stamp lookup)"],
                                   strict=True)]
    # the least an iteration yielding the API's objects does, with no walk
    least = [a + b for a, b in zip(times["objects alone"], times["payloads and ids alone"],
                                   strict=True)]
    rows = [(c, times[c]) for c in cases] + [
        ("expert + Resource - lookup", floor),
        ("objects + payloads and ids (no walk)", least),
    ]
    print(f"iter_resources floor: {n} records, {rounds} rounds, thread CPU, µs per record")
    print("| case | µs/record | / expert |")
    print("|---|---|---|")
    for c, ts in rows:
        ratio = statistics.median(t / b for t, b in zip(ts, base, strict=True))
        print(f"| {c} | {statistics.median(ts):.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
