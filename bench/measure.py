"""Issue 12's measurement: every system and operation, interleaved, in one process.

One run (``make bench``) opens pystore (default options: ``pystore.Store(path,
sync=False)``, every feature as configured by default), py-lmdb ADR-style,
py-lmdb expert (writemap, spare read txns, cursors) and sqlite3 side by side,
loads the same workload into each (untimed), then measures repetition after
repetition: in every repetition each operation is timed once per system, the
operations and, within each, the systems in a fresh shuffled order, so that a
change of load on the shared machine hits every system alike.  The C program
(``bench/c/lmdb_bench``) runs before and after.  Then the durable group (one
durable pystore store: one thread, 8 threads, commits of 1 and of 8 records,
interleaved the same way) and the space row (~100 MB of records into pystore,
the C program and py-lmdb expert).

Usage: python measure.py OUT_DIR C_PROGRAM [--reps N]
Writes OUT_DIR/measure.json (every round's time per operation; report.py
turns one or more of these into RESULTS.md).  ``PYSTORE_BENCH_SMOKE=1``: tiny
sizes, 3 repetitions (the harness end to end in well under a minute).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import google.protobuf
import lmdb
import workload as wl
from systems import SYSTEMS, System, apparent_bytes, disk_bytes

import pystore
from pystore.samples.agent_pb2 import Agent

SMOKE = wl.smoke()
REPS = 3 if SMOKE else 15
DURABLE_REPS = 3 if SMOKE else 25
SPACE_BYTES = 2_000_000 if SMOKE else 100_000_000  # "~100 MB of records" (payload bytes)
# 8 writer threads, started once, each saving PER_THREAD records per round:
# a throughput in steady state (thread start-up is not the store's work, and
# a round's first and last commits, smaller while the writers gather or
# finish, are ~2 of its ~PER_THREAD + 1 commits).
THREADS, PER_THREAD = 8, (4 if SMOKE else 100)
ONE_THREAD_SAVES = 10 if SMOKE else 40
COMMITS = 5 if SMOKE else 10  # durable commits per round for T1 and T8
OPEN_CLOSE = 5 if SMOKE else 20  # open + close per round
OPEN_CLOSE_RECORDS = 1_000
FIND_KIND = "Agent"

Case = tuple[Callable[[], Any], Callable[[], Any] | None, Callable[[], Any] | None]


class Op:
    """One row: ``n`` operations per round, a (timed fn, untimed setup, untimed
    restore after) per system."""

    def __init__(self, name: str, n: int) -> None:
        self.name, self.n = name, n
        self.cases: dict[str, Case] = {}

    def add(self, system: str, fn: Callable[[], Any], setup: Callable[[], Any] | None = None,
            after: Callable[[], Any] | None = None) -> None:
        self.cases[system] = (fn, setup, after)


def time_round(fn: Callable[[], Any], setup: Callable[[], Any] | None) -> float:
    if setup is not None:
        setup()
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleave(ops: list[Op], reps: int, times: dict[str, dict[str, list[float]]],
               loads: list[float]) -> None:
    """``reps`` repetitions (after one warm-up) of every case, shuffled each time."""
    rng = random.Random(12)
    for rep in range(-1, reps):
        order = list(ops)
        rng.shuffle(order)
        for op in order:
            systems = list(op.cases)
            rng.shuffle(systems)
            for name in systems:
                fn, setup, after = op.cases[name]
                t = time_round(fn, setup) / op.n
                if after is not None:
                    after()
                if rep >= 0:
                    times.setdefault(op.name, {}).setdefault(name, []).append(t)
        loads.append(os.getloadavg()[0])
        what = "warm-up" if rep < 0 else f"repetition {rep + 1}/{reps}"
        print(f"measure: {what} done, load {loads[-1]:.2f}", file=sys.stderr, flush=True)


def run_c(c_program: str, workload_file: str, scratch: str, *extra: str) -> dict[str, Any]:
    d = tempfile.mkdtemp(prefix="c-", dir=scratch)
    try:
        out = subprocess.run([c_program, workload_file, d, *extra], check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out)  # type: ignore[no-any-return]
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sizes(path: str) -> dict[str, int]:
    return {"allocated": disk_bytes(path), "apparent": apparent_bytes(path)}


def git_commit() -> str:
    """HEAD, and the last commit that changed the package (what was measured)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    pkg = ["pystore", "csrc", "CMakeLists.txt", "pyproject.toml"]

    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", root, *a], check=True, capture_output=True,
                              text=True).stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        last = git("log", "-1", "--format=%h", "--abbrev=12", "HEAD", "--", *pkg)
        dirty = git("status", "--porcelain", "--", *pkg)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return (f"{head} (package last changed in {last})"
            + (" with uncommitted changes to the package" if dirty else ""))


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "protobuf": google.protobuf.__version__,
        "py-lmdb": lmdb.__version__, "py-lmdb's LMDB": ".".join(map(str, lmdb.version())),
        "pystore": getattr(pystore, "__version__", "?"), "pystore commit": git_commit(),
    }


def fs_type(path: str) -> str:
    try:
        out = subprocess.run(["df", "--output=fstype", path], check=True, capture_output=True,
                             text=True).stdout.split()
        return out[-1]
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main_ops(w: wl.Workload, systems: dict[str, System], indexed: pystore.Store,
             scratch: str) -> list[Op]:
    """The interleaved rows (sync=False stores)."""
    items = [w.records[n] for n in w.save_keys]
    one_msgs = [m for _, _, m in items]
    batch_msgs = [m for _, m in w.batch]
    n_list = sum(1 for k, _, _ in w.records if k == wl.LIST_KIND)
    doomed = [(wl.DOOMED_KIND, i, m) for k, i, m in w.records if k == wl.LIST_KIND]
    keys = w.get_keys
    ops = {name: Op(name, n) for name, n in (
        ("serialize_one", len(one_msgs)), ("save_one", len(items)), ("delete_one", len(items)),
        ("get_raw", len(keys)), ("get_parsed", len(keys)), ("list_raw", n_list),
        ("list_parsed", n_list), ("iter", n_list), ("save_batch", len(w.batch)),
        ("delete_kind", len(doomed)), ("find_one", 0), ("open_close", OPEN_CLOSE))}

    def serialize(msgs: list[Any]) -> Callable[[], None]:
        def go() -> None:
            for m in msgs:
                m.SerializeToString()
        return go

    ops["serialize_one"].add("serialize", serialize(one_msgs))
    ops["save_batch"].add("serialize", serialize(batch_msgs))

    for name, s in systems.items():
        def save_one(save: Any = s.save_one) -> None:
            for kind, id, msg in items:
                save(kind, id, msg)

        def delete_one(delete: Any = s.delete_one) -> None:
            for kind, id, _ in items:
                delete(kind, id)

        def get_raw(get: Any = s.get_raw) -> None:
            for kind, id in keys:
                get(kind, id)

        def get_parsed(get: Any = s.get_parsed) -> None:
            for kind, id in keys:
                get(kind, id, Agent)

        def iter_all(it: Any = s.iter_records, name: str = name) -> None:
            if it(wl.LIST_KIND) != n_list:
                raise AssertionError(f"{name}: iterated a wrong count")

        def delete_kind(dk: Any = s.delete_kind, name: str = name) -> None:
            if dk(wl.DOOMED_KIND) != len(doomed):
                raise AssertionError(f"{name}: deleted a wrong count")

        ops["save_one"].add(name, save_one)
        ops["delete_one"].add(name, delete_one, lambda s=s: s.load(items, len(items)),
                              lambda s=s: s.load(items, len(items)))
        ops["get_raw"].add(name, get_raw)
        ops["get_parsed"].add(name, get_parsed)
        ops["list_raw"].add(name, lambda s=s: s.list_raw(wl.LIST_KIND))
        ops["list_parsed"].add(name, lambda s=s: s.list_parsed(wl.LIST_KIND, Agent))
        ops["iter"].add(name, iter_all)
        ops["save_batch"].add(name, lambda s=s: s.save_many(wl.BATCH_KIND, w.batch),
                              lambda s=s: s.delete_kind(wl.BATCH_KIND))
        ops["delete_kind"].add(name, delete_kind, lambda s=s: s.load(doomed, len(doomed)))
        for check in (s.list_raw(wl.LIST_KIND), s.list_parsed(wl.LIST_KIND, Agent)):
            if len(check) != n_list:
                raise AssertionError(f"{name}: listed {len(check)} of {n_list}")

    store = systems["pystore"].store  # type: ignore[attr-defined]

    def save_txn() -> None:
        with store.transaction() as t:
            for id, msg in w.batch:
                t.save_resource(wl.BATCH_KIND, id, msg)

    ops["save_batch"].add("pystore-txn", save_txn, lambda: store.delete_resources_by_kind(
        wl.BATCH_KIND))

    # find_one: a unique index on metadata.slug of the indexed pystore store
    # (the same records) against the expert's get + parse by key.
    agents = [(k, i, m) for k, i, m in w.records if k == FIND_KIND]
    picks = random.Random(5).sample(agents, min(len(keys), len(agents)))
    slugs = [m.metadata.slug for _, _, m in picks]  # type: ignore[attr-defined]
    ids = [i for _, i, _ in picks]
    ops["find_one"].n = len(picks)
    find_one = indexed.find_one
    assert find_one(FIND_KIND, "slug", slugs[0], Agent).metadata.id == ids[0]

    def finds() -> None:
        for slug in slugs:
            find_one(FIND_KIND, "slug", slug, Agent)

    def gets(get: Any) -> Callable[[], None]:
        def go() -> None:
            for id in ids:
                get(FIND_KIND, id, Agent)
        return go

    ops["find_one"].add("pystore", finds)
    ops["find_one"].add("lmdb_expert", gets(systems["lmdb_expert"].get_parsed))
    ops["find_one"].add("pystore-get", gets(indexed.get_resource))

    # open + close of an existing store of 1,000 records (pystore: the default Store).
    for name, cls in SYSTEMS.items():
        path = os.path.join(scratch, f"oc-{name}")
        s = cls()
        s.open(path)
        s.load(w.records[:OPEN_CLOSE_RECORDS], OPEN_CLOSE_RECORDS)
        s.close()
        if name == "pystore":
            def oc(path: str = path) -> None:
                for _ in range(OPEN_CLOSE):
                    pystore.Store(path).close()
        else:
            def oc(s: System = s, path: str = path) -> None:
                for _ in range(OPEN_CLOSE):
                    s.open(path)
                    s.close()
        ops["open_close"].add(name, oc)
    return list(ops.values())


class Writers:
    """THREADS writer threads started once; ``round(per)`` releases them to
    save ``per`` records each and returns when all are done (only that is
    timed: starting threads is not the store's work).  Also used by
    ``durable_forms.py``."""

    def __init__(self, store: pystore.Store, msgs: list[Any]) -> None:
        self._store, self._msgs = store, msgs
        self._per = 0
        self._go = threading.Barrier(THREADS + 1)
        self._done = threading.Barrier(THREADS + 1)
        self._errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._loop, args=(t,), daemon=True)
                         for t in range(THREADS)]
        for th in self._threads:
            th.start()

    def _loop(self, t: int) -> None:
        save, msgs = self._store.save_resource, self._msgs
        try:
            while True:
                self._go.wait()
                per = self._per
                try:
                    for n in range(per):
                        save("Agent", f"t{t}-{n}", msgs[(t * per + n) % len(msgs)])
                except BaseException as exc:  # reported by round(), not lost in the thread
                    self._errors.append(exc)
                self._done.wait()
        except threading.BrokenBarrierError:
            return  # close()

    def round(self, per: int) -> None:
        self._per = per  # read by the threads after the barrier lets them go
        self._go.wait()
        self._done.wait()
        if self._errors:
            raise RuntimeError(f"a durable writer failed: {self._errors[0]!r}")

    def close(self) -> None:
        """End the threads (a round in progress finishes its saves first)."""
        self._go.abort()
        self._done.abort()
        for th in self._threads:
            th.join(timeout=10)


Groups = list[list[tuple[str, Any]]]


def commit_groups(msgs: list[Any], per: int, count: int) -> tuple[Groups, Groups, Groups]:
    """``count`` commits each of T1, T8 and T8 the old way, as (id, message)
    groups for ``save_resources``.  T1 and T8 commit the records the timed
    rows save: T1 one record of the one-thread row (``one-N``), T8 the 8
    records one commit of the writers holds (writer j's n-th save of a round
    of ``per``: one in each writer's key range, 8 leaf pages).  Until round
    10 T8 committed 8 adjacent new keys (one leaf page, a cheaper commit
    than the writers' on this disk); that form is the third, measured as
    commit_8_adjacent and reported beside the row."""
    groups1 = [[(f"one-{c}", msgs[c])] for c in range(count)]
    groups8 = [[(f"t{j}-{c}", msgs[(j * per + c) % len(msgs)]) for j in range(THREADS)]
               for c in range(count)]
    adjacent8 = [[(f"c8-{c}-{j}", msgs[(c * 8 + j) % len(msgs)]) for j in range(8)]
                 for c in range(count)]
    return groups1, groups8, adjacent8


def durable_ops(w: wl.Workload, store: pystore.Store) -> tuple[list[Op], Writers]:
    """8 durable writer threads against one, and the disk's commit times T1
    and T8; the writers' pool, to close before the store."""
    msgs = [m for _, _, m in w.records[:256]]
    d1, d8 = Op("durable_1thread", ONE_THREAD_SAVES), Op("durable_8threads", THREADS * PER_THREAD)
    t1, t8 = Op("commit_1", COMMITS), Op("commit_8", COMMITS)
    t8_adjacent = Op("commit_8_adjacent", COMMITS)

    def one() -> None:
        for n in range(ONE_THREAD_SAVES):
            store.save_resource("Agent", f"one-{n}", msgs[n])

    writers = Writers(store, msgs)
    groups1, groups8, adjacent8 = commit_groups(msgs, PER_THREAD, COMMITS)

    def commits(groups: list[list[tuple[str, Any]]]) -> Callable[[], None]:
        def go() -> None:
            for g in groups:
                store.save_resources("Agent", g)
        return go

    d1.add("pystore", one)
    d8.add("pystore", lambda: writers.round(PER_THREAD))
    t1.add("pystore", commits(groups1))
    t8.add("pystore", commits(groups8))
    t8_adjacent.add("pystore", commits(adjacent8))
    return [d1, d8, t1, t8, t8_adjacent], writers


def space(c_program: str, scratch: str) -> dict[str, Any]:
    """~SPACE_BYTES of records (payload) loaded, 5,000 per commit, into the default
    pystore Store, the C program and py-lmdb expert; allocated and apparent bytes."""
    records = wl.space_records(SPACE_BYTES)
    out: dict[str, Any] = {"records": len(records),
                           "payload": sum(m.ByteSize() for _, _, m in records)}
    path = os.path.join(scratch, "space-pystore")
    store = pystore.Store(path)
    try:
        for start in range(0, len(records), wl.LOAD_CHUNK):
            with store.transaction() as t:
                for kind, id, msg in records[start:start + wl.LOAD_CHUNK]:
                    t.save_resource(kind, id, msg)
    finally:
        store.close()
    out["pystore"] = sizes(path)
    shutil.rmtree(path)
    expert = SYSTEMS["lmdb_expert"]()
    expert.open(os.path.join(scratch, "space-expert"))
    expert.load(records, wl.LOAD_CHUNK)
    expert.close()
    out["lmdb_expert"] = sizes(expert.path)
    shutil.rmtree(expert.path)
    cfile = os.path.join(scratch, "space.bin")
    wl.write_c_records(records, cfile)
    got = run_c(c_program, cfile, scratch, "space")
    os.unlink(cfile)
    out["c"] = {"allocated": got["size"], "apparent": got["apparent"]}
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("c_program")
    ap.add_argument("--reps", type=int, default=REPS)
    args = ap.parse_args(argv[1:])
    os.makedirs(args.out_dir, exist_ok=True)
    started, t_start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), time.monotonic()
    scratch = tempfile.mkdtemp(prefix="pystore-bench-", dir=os.environ.get("PYSTORE_BENCH_DIR"))
    result: dict[str, Any] = {"meta": {
        "started": started, "machine": machine(), "load_start": os.getloadavg(),
        "scratch_fs": fs_type(scratch), "reps": args.reps, "smoke": SMOKE}}
    times: dict[str, dict[str, list[float]]] = {}
    loads: list[float] = []
    opened: dict[str, System] = {}
    indexed = durable = None
    writers: Writers | None = None
    try:
        w = wl.build()
        wfile = os.path.join(scratch, "workload.bin")
        wl.write_c_file(w, wfile)
        print("measure: the C program (first run)", file=sys.stderr, flush=True)
        result["c"] = [run_c(args.c_program, wfile, scratch)]
        load_sizes: dict[str, dict[str, int]] = {}
        for name, cls in SYSTEMS.items():
            s = cls()
            s.open(os.path.join(scratch, name))
            opened[name] = s
            s.load(w.records, wl.LOAD_CHUNK)
            load_sizes[name] = sizes(s.path)
        indexed = pystore.Store(os.path.join(scratch, "pystore-indexed"), sync=False)
        indexed.create_index(FIND_KIND, "slug", field="metadata.slug", msg_type=Agent, unique=True)
        for start in range(0, len(w.records), wl.LOAD_CHUNK):
            with indexed.transaction() as t:
                for kind, id, msg in w.records[start:start + wl.LOAD_CHUNK]:
                    t.save_resource(kind, id, msg)
        result["load_sizes"] = load_sizes
        ops = main_ops(w, opened, indexed, scratch)
        gc.freeze()  # the workload and the stores' objects: not walked by every collection
        print(f"measure: loaded; {args.reps} repetitions of {len(ops)} operations",
              file=sys.stderr, flush=True)
        interleave(ops, args.reps, times, loads)
        result["ops"] = {op.name: op.n for op in ops}
        for s in opened.values():
            s.close()
        opened.clear()
        indexed.close()
        indexed = None
        durable = pystore.Store(os.path.join(scratch, "durable"))  # default: sync=True
        dops, writers = durable_ops(w, durable)
        print("measure: durable writers", file=sys.stderr, flush=True)
        interleave(dops, DURABLE_REPS, times, loads)
        result["ops"].update({op.name: op.n for op in dops})
        writers.close()
        writers = None
        durable.close()
        durable = None
        print(f"measure: space (~{SPACE_BYTES // 10**6} MB of records)", file=sys.stderr,
              flush=True)
        result["space"] = space(args.c_program, scratch)
        print("measure: the C program (second run)", file=sys.stderr, flush=True)
        result["c"].append(run_c(args.c_program, wfile, scratch))
    finally:
        for s in opened.values():
            s.close()
        if writers is not None:
            writers.close()  # before their store
        for st in (indexed, durable):
            if st is not None:
                st.close()
        shutil.rmtree(scratch, ignore_errors=True)
    result["times"] = times
    result["meta"].update(load_end=os.getloadavg(), load_per_rep=loads,
                          duration_s=round(time.monotonic() - t_start, 1))
    with open(os.path.join(args.out_dir, "measure.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"measure: done in {result['meta']['duration_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
