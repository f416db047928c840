"""Turn `make bench` runs (bench/measure.py) into bench/RESULTS.md: issue 12's targets.

Usage: python report.py OUT_MD RUN_DIR [RUN_DIR ...]

Each RUN_DIR holds one run's ``measure.json``.  The targets table and every
other table come from the FIRST run alone (ratios of medians in one run);
with several runs a spread section gives, for every row within 10% of its
limit in any run, the min / median / max of the row's ratio over the runs.

Definitions (all times are medians over one run's repetitions, per operation):

* a ratio row is pystore's median / the reference's median;
* the "minus serializing" rows subtract S, the median time of
  ``SerializeToString()`` of the same messages measured in the same run
  (interleaved like the systems), from BOTH sides: (pystore - S) / (expert - S).
  Both take a message and serialize it, so this compares what each adds on top of
  serializing;
* 8 durable writer threads: the gain G = (time per save of one thread, one
  durable commit per save) / (time per save with 8 threads); the disk's ceiling
  C = 8 x T1 / T8, where T1 and T8 are the measured times of one durable pystore
  commit (``save_resources``) of 1 and of 8 records on the same store, same run
  -- the records the timed rows save: T1 one of the one-thread row's, T8 the 8
  records one commit of the writers holds (one in each writer's key range);
  the row is met when G >= 0.7 x C and G >= 2.5;
* space: allocated bytes (st_blocks x 512, summed over the store's files) after
  loading ~100 MB of records, pystore / the C program; apparent size (st_size)
  shown beside (a writemap store is preallocated, so its apparent size says
  little about what it uses).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Callable
from typing import Any

SYSTEMS = [
    ("pystore", "pystore"),
    ("lmdb_expert", "py-lmdb expert"),
    ("lmdb_adr", "py-lmdb ADR-style"),
    ("sqlite", "sqlite3 WAL"),
    ("c", "C on liblmdb"),
]
OPS = [
    ("get_raw", "get raw bytes (2,000 random keys)"),
    ("get_parsed", "get + parse"),
    ("list_raw", "list a kind raw (per record)"),
    ("list_parsed", "list a kind parsed (per record)"),
    ("iter", "iterate a kind (per record)¹"),
    ("save_one", "save one, no fsync (message in)"),
    ("delete_one", "delete one, no fsync"),
    ("save_batch", "save 20,000 in one txn (per record)²"),
    ("delete_kind", "delete a kind of 10,000 (per record)"),
    ("find_one", "find_one by a unique index / get + parse by key³"),
    ("open_close", "open + close"),
]
C_OPS = {"save_one": "save_one", "save_batch": "save_batch", "get_raw": "get_raw",
         "list_raw": "list_raw", "iter_pages": "iter", "delete_one": "delete_one",
         "delete_kind": "delete_kind", "open_close": "open_close"}


class Run:
    def __init__(self, path: str) -> None:
        with open(os.path.join(path, "measure.json")) as f:
            self.raw: dict[str, Any] = json.load(f)
        self.med: dict[tuple[str, str], float] = {}
        for op, by_sys in self.raw["times"].items():
            for system, ts in by_sys.items():
                self.med[(op, system)] = statistics.median(ts)
        # The C program ran before and after; the faster of its two medians counts.
        for c in self.raw.get("c", []):
            for cop, v in c["ops"].items():
                if cop in C_OPS:
                    t = v["median_s"] / v["ops"]
                    key = (C_OPS[cop], "c")
                    self.med[key] = min(t, self.med.get(key, t))

    def get(self, op: str, system: str) -> float | None:
        return self.med.get((op, system))


def fmt(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.2f} µs"


# (row label, op key for the spread, direction, limit, how to compute (ratio, numbers))
Row = tuple[str, str, str, float, Callable[[Run], tuple[float, str] | None]]


def _ratio(op: str, ref_op: str, ref: str, minus: str | None = None,
           system: str = "pystore") -> Callable[[Run], tuple[float, str] | None]:
    def f(r: Run) -> tuple[float, str] | None:
        a, b = r.get(op, system), r.get(ref_op, ref)
        if a is None or b is None:
            return None
        if minus is None:
            return a / b, f"pystore {fmt(a)}, expert {fmt(b)}"
        s = r.get(minus, "serialize")
        if s is None:
            return None
        return ((a - s) / (b - s),
                f"pystore {fmt(a)} - S, expert {fmt(b)} - S; S = serialize {fmt(s)}")
    return f


def _durable_ceiling(r: Run) -> tuple[float, str] | None:
    d1, d8 = r.get("durable_1thread", "pystore"), r.get("durable_8threads", "pystore")
    t1, t8 = r.get("commit_1", "pystore"), r.get("commit_8", "pystore")
    if None in (d1, d8, t1, t8):
        return None
    assert d1 and d8 and t1 and t8
    gain, ceiling = d1 / d8, 8 * t1 / t8
    return (gain / ceiling,
            f"gain G = {gain:.2f}x ({fmt(d8)} vs {fmt(d1)} per save); ceiling 8 x T1 / T8 = "
            f"{ceiling:.2f}x (T1 {fmt(t1)}, T8 {fmt(t8)}); G / ceiling = {gain / ceiling:.2f}"
            + ("; T8 <= T1 +10%: the disk's commit was latency-bound in this run (noisy)"
               if t8 <= 1.1 * t1 else "")
            + _adjacent_note(r, gain, t1))


def _adjacent_note(r: Run, gain: float, t1: float) -> str:
    """The row as measured until round 10: T8 a commit of 8 adjacent new keys."""
    t8a = r.get("commit_8_adjacent", "pystore")
    if not t8a:
        return ""
    return (f"; with T8 of 8 adjacent new keys instead ({fmt(t8a)}, the form before round 10): "
            f"ceiling {8 * t1 / t8a:.2f}x, G / ceiling {gain / (8 * t1 / t8a):.2f}")


def _durable_one(r: Run) -> tuple[float, str] | None:
    d1, d8 = r.get("durable_1thread", "pystore"), r.get("durable_8threads", "pystore")
    if d1 is None or d8 is None:
        return None
    return d1 / d8, f"{1 / d8:,.0f} vs {1 / d1:,.0f} durable saves/s"


def _space(r: Run) -> tuple[float, str] | None:
    sp = r.raw.get("space")
    if not sp:
        return None
    p, c = sp["pystore"], sp["c"]
    return (p["allocated"] / c["allocated"],
            f"allocated {p['allocated'] / 2**20:.1f} vs {c['allocated'] / 2**20:.1f} MiB; "
            f"apparent {p['apparent'] / 2**20:.1f} vs {c['apparent'] / 2**20:.1f} MiB "
            f"({p['apparent'] / c['apparent']:.2f}x); {sp['records']:,} records, "
            f"{sp['payload'] / 1e6:.0f} MB of payload")


def _open_close(r: Run) -> tuple[float, str] | None:
    t = r.get("open_close", "pystore")
    return None if t is None else (t / 1e-3, f"{fmt(t)} (the ratio is to 1 ms)")


ROWS: list[Row] = [
    ("`get_bytes` (2,000 random keys of 50,000)", "get_raw", "<=", 1.10,
     _ratio("get_raw", "get_raw", "lmdb_expert")),
    ("`get_resource` (get + parse)", "get_parsed", "<=", 1.00,
     _ratio("get_parsed", "get_parsed", "lmdb_expert")),
    ("`list_resources` raw, 10,000 records", "list_raw", "<=", 0.80,
     _ratio("list_raw", "list_raw", "lmdb_expert")),
    ("`list_resources` parsed", "list_parsed", "<=", 0.50,
     _ratio("list_parsed", "list_parsed", "lmdb_expert")),
    ("`iter_resources` (per record) vs the expert's cursor loop building (id, bytes)", "iter",
     "<=", 1.50, _ratio("iter", "iter", "lmdb_expert")),
    ("`save_resource`, sync=False, minus serializing", "save_one", "<=", 1.10,
     _ratio("save_one", "save_one", "lmdb_expert", minus="serialize_one")),
    ("`delete_resource`, sync=False", "delete_one", "<=", 1.10,
     _ratio("delete_one", "delete_one", "lmdb_expert")),
    ("20,000 saves in one `save_resources`, minus serializing", "save_batch", "<=", 1.20,
     _ratio("save_batch", "save_batch", "lmdb_expert", minus="save_batch")),
    ("20,000 saves in one `transaction()`, minus serializing", "save_txn", "<=", 1.50,
     _ratio("save_batch", "save_batch", "lmdb_expert", minus="save_batch",
            system="pystore-txn")),
    ("`delete_resources_by_kind` (10,000)", "delete_kind", "<=", 0.80,
     _ratio("delete_kind", "delete_kind", "lmdb_expert")),
    ("`find_one` by a unique index vs the expert's get (+ parse) by key", "find_one", "<=", 2.0,
     _ratio("find_one", "find_one", "lmdb_expert")),
    ("8 durable writer threads: gain >= 0.7 x the disk's ceiling 8 x T1 / T8", "durable_ceiling",
     ">=", 0.7, _durable_ceiling),
    ("8 durable writer threads: >= 2.5x one fsync per save", "durable_one", ">=", 2.5,
     _durable_one),
    ("space on disk after loading ~100 MB of records, vs the C program (allocated)", "space",
     "<=", 1.25, _space),
    ("open + close < 1 ms", "open_close", "<", 1.0, _open_close),
]


def met(direction: str, ratio: float, limit: float) -> bool:
    return {"<=": ratio <= limit, "<": ratio < limit, ">=": ratio >= limit}[direction]


def targets_table(r: Run) -> tuple[list[str], int]:
    lines = ["| operation (issue 12) | target | ratio | met | numbers (medians) |",
             "|---|---|---|---|---|"]
    n_met = 0
    for label, _, direction, limit, f in ROWS:
        got = f(r)
        if got is None:
            lines.append(f"| {label} | {direction} {limit:.2f} | - | not measured | - |")
            continue
        ratio, numbers = got
        ok = met(direction, ratio, limit)
        n_met += ok
        lines.append(f"| {label} | {direction} {limit:.2f} | {ratio:.2f} | "
                     f"{'**met**' if ok else 'not met'} | {numbers} |")
    return lines, n_met


def spread_table(runs: list[Run]) -> list[str]:
    lines = ["| operation | target | run ratios | min / median / max | met in |",
             "|---|---|---|---|---|"]
    for label, _, direction, limit, f in ROWS:
        got = [f(r) for r in runs]
        ratios = [g[0] for g in got if g is not None]
        if not ratios or all(abs(x - limit) > 0.10 * limit for x in ratios):
            continue
        n_ok = sum(met(direction, x, limit) for x in ratios)
        lines.append(f"| {label} | {direction} {limit:.2f} | "
                     + ", ".join(f"{x:.2f}" for x in ratios)
                     + f" | {min(ratios):.2f} / {statistics.median(ratios):.2f} / "
                     f"{max(ratios):.2f} | {n_ok} of {len(ratios)} runs |")
    return lines


def systems_table(r: Run) -> list[str]:
    lines = ["| operation | " + " | ".join(label for _, label in SYSTEMS) + " |",
             "|" + "---|" * (len(SYSTEMS) + 1)]
    for op, label in OPS:
        base = r.get(op, "lmdb_expert")
        cells = []
        for system, _ in SYSTEMS:
            t = r.get(op, system)
            if t is None:
                cells.append("-")
            elif base is None or system == "lmdb_expert":
                cells.append(fmt(t))
            else:
                cells.append(f"{fmt(t)} ({t / base:.2f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def beside(r: Run) -> list[str]:
    g = r.get
    rows = [
        ("serialize one message (`SerializeToString`, the save rows' S)", g("serialize_one",
                                                                           "serialize")),
        ("serialize one message of the 20,000 batch (the batch rows' S)", g("save_batch",
                                                                           "serialize")),
        ("pystore: 20,000 saves in one `transaction()` (per record)", g("save_batch",
                                                                        "pystore-txn")),
        ("pystore: `get_resource` by id on the indexed store (find_one's store)",
         g("find_one", "pystore-get")),
        ("pystore durable: one thread, one commit per save (per save)",
         g("durable_1thread", "pystore")),
        ("pystore durable: 8 threads (per save)", g("durable_8threads", "pystore")),
        ("pystore durable: T1, one commit of 1 record", g("commit_1", "pystore")),
        ("pystore durable: T8, one commit of the 8 records a commit of the writers holds",
         g("commit_8", "pystore")),
        ("pystore durable: one commit of 8 adjacent new keys (T8 until round 10)",
         g("commit_8_adjacent", "pystore")),
    ]
    return ["| measure | median |", "|---|---|"] + [f"| {a} | {fmt(b)} |" for a, b in rows]


def space_table(r: Run) -> list[str]:
    lines = []
    sp = r.raw.get("space")
    if sp:
        lines += [f"After loading {sp['records']:,} records ({sp['payload'] / 1e6:.0f} MB of "
                  "payload, 5,000 per commit):", "",
                  "| system | allocated MiB (st_blocks x 512) | apparent MiB (st_size) |",
                  "|---|---|---|"]
        for name in ("pystore", "c", "lmdb_expert"):
            if name in sp:
                lines.append(f"| {name} | {sp[name]['allocated'] / 2**20:.1f} | "
                             f"{sp[name]['apparent'] / 2**20:.1f} |")
    ls = r.raw.get("load_sizes")
    c = (r.raw.get("c") or [{}])[0]
    if ls:
        lines += ["", "After loading the workload of the other rows (5 kinds x 10,000):", "",
                  "| system | allocated MiB | apparent MiB |", "|---|---|---|"]
        for name, v in ls.items():
            lines.append(f"| {name} | {v['allocated'] / 2**20:.1f} | "
                         f"{v['apparent'] / 2**20:.1f} |")
        if "size" in c:
            lines.append(f"| c | {c['size'] / 2**20:.1f} | "
                         f"{c.get('apparent', 0) / 2**20:.1f} |")
    return lines


def main(argv: list[str]) -> int:
    md, run_dirs = argv[1], argv[2:]
    runs = [Run(d) for d in run_dirs]
    r = runs[0]
    meta = r.raw["meta"]
    m = meta["machine"]
    table, n_met = targets_table(r)
    loads = meta.get("load_per_rep") or [meta["load_start"][0]]
    lmdb_version = m["py-lmdb's LMDB"]
    lines = [
        "# pystore benchmark results (issue 12)",
        "",
        "Written by `bench/report.py` from `make bench` (`bench/measure.py`; see the",
        "benchmark section of docs/performance.md).  Every table comes from ONE run: all",
        "systems open in one process, each operation timed once per system in every",
        "repetition, operations and systems in a shuffled order each time; cells are",
        "medians over the repetitions, ratios are ratios of medians.",
        "",
        f"* run started {meta['started']}, took {meta['duration_s']:.0f} s, "
        f"{meta['reps']} repetitions" + (" (SMOKE: tiny sizes, numbers meaningless)"
                                         if meta.get("smoke") else ""),
        f"* pystore commit {m['pystore commit']}, pystore {m['pystore']}",
        f"* machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; scratch filesystem "
        f"{meta['scratch_fs']}",
        f"* Python {m['python']}, protobuf {m['protobuf']}, py-lmdb {m['py-lmdb']} "
        f"(LMDB {lmdb_version})",
        f"* load average (1 min): {meta['load_start'][0]:.2f} at the start, "
        f"{min(loads):.2f}-{max(loads):.2f} between repetitions, "
        f"{meta['load_end'][0]:.2f} at the end (2 cores, shared with other builds)",
    ]
    note = os.environ.get("PYSTORE_BENCH_NOTE")
    if note:
        lines.append(f"* **{note}**")
    if len(runs) > 1:
        lines.append(f"* {len(runs)} runs made for the spread section; the tables are run 1's")
    lines += ["", f"## Targets of issue 12: {n_met} of {len(ROWS)} met", "",
              "Against py-lmdb used by an expert (writemap, spare read txns, cursors,",
              "`putmulti`), pystore with default options (`Store(path, sync=False)`;",
              "revisions, change log and history as configured by default).", "",
              *table, "",
              "\"Minus serializing\": S, the time of `SerializeToString()` of the same",
              "messages measured in the same run, is subtracted from both sides",
              "((pystore - S) / (expert - S)): both take a message and serialize it.",
              "The durable rows use one durable pystore store (default `sync=True`): one",
              "thread saving one record per commit; 8 writer threads, started once, each",
              "saving 100 records per round (only the saves timed: a throughput in steady",
              "state); T1 / T8 = one `save_resources` commit of 1 / 8 of the records",
              "those rows save (T8: writer j's n-th record for j = 0..7, one in each",
              "writer's key range, as one commit of the writers holds them).  Until round",
              "10, T8 committed 8 adjacent new keys (one leaf page: a cheaper commit than",
              "the writers'); that form is measured too and its figures are given in the",
              "row."]
    if len(runs) > 1:
        lines += ["", f"## Spread over {len(runs)} runs (rows within 10% of their target)",
                  "", *spread_table(runs)]
    lines += ["", "## Every system, same run", "",
              "Median time per operation; in brackets the ratio to py-lmdb expert.", "",
              *systems_table(r), "",
              "¹ pystore: `for r in iter_resources(kind)`; expert: one cursor loop building",
              "(id, bytes); ADR-style, sqlite3, C: pages of 512.  ² pystore: one",
              "`save_resources`; expert: `putmulti`.  ³ pystore: `find_one` on a store with a",
              "unique index on `metadata.slug` of kind Agent (same 50,000 records); expert:",
              "get + parse of the same resources by key.  The C program runs in a process of",
              "its own before and after the others (the faster of its two medians), not",
              "interleaved; its get works on a warm cache the others share.", "",
              "## Beside", "", *beside(r), "",
              "## Space on disk", "", *space_table(r), ""]
    with open(md, "w") as f:
        f.write("\n".join(lines))
    print(f"report: {md}: {n_met}/{len(ROWS)} targets of issue 12 met", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
