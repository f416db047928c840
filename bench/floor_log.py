"""The floor of issue 12's single-write rows, measured in one process.

Issue 12 asks ``save_resource`` (sync=False, minus serializing) and
``delete_resource`` to cost <= 1.10x py-lmdb used by an expert.  Every
pystore write also appends a change-log entry (revisions, watch and history
depend on it, issue 9).  This measures, interleaved in one process and in
thread CPU time, on 10,000 ~1.1 KB Agents:

* py-lmdb expert's save (``systems.LmdbExpert``: writemap, one write txn)
  minus the serialization of the message, and its delete;
* C loops on plain liblmdb with no Python at all (``bench/c/logfloor.c``,
  pre-serialized bytes): the record only; plus a change-log entry appended
  to a "changes" database (pystore's format); plus the entry kept in LMDB's
  main database instead, whose page every commit dirties anyway (the
  cheapest in-transaction log: a prototype, not pystore's format);
* pystore's own one C call (``ps_fw_save``): in a C loop through a
  pointer taken from pystore's module (no Python per write), through cffi
  with and without the strip plan, and ``ps_fw_del`` through cffi (all with
  pre-serialized bytes); and pystore's public calls.

Every cell is the median µs per write over the rounds; the ratio column is
the median of the per-round ratios to the expert.  A C loop with no Python
that is above 1.10x shows the target cannot be met by any layer above it.

    make bench-floor     (or: cd bench && python floor_log.py LIB [ROUNDS [CASE...]];
                          CASE: substrings of the case names to run alone, for perf)
"""

from __future__ import annotations

import contextlib
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
from cffi import FFI
from systems import LmdbExpert

import pystore
from pystore._lmdb._native import ffi as psffi
from pystore._lmdb._native import lib as pslib

N, OPS = 10_000, 2_000
PUT, PUT_LOG, PUT_TAIL, DEL, DEL_LOG, DEL_TAIL = range(6)


def main() -> None:
    so = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 11
    if rounds < 1:
        raise SystemExit("floor_log.py: ROUNDS must be >= 1")
    ffi = FFI()
    ffi.cdef(
        "int lf_open(const char *dir); void lf_close(void); const char *lf_strerror(int rc);"
        "int lf_open_main(const char *dir2, const char **keys, const size_t *klens,"
        " const char **vals, const size_t *vlens, int n);"
        "double lf_get_loop(int named, const char **keys, const size_t *klens, int n);"
        "double lf_loop(int mode, const char **keys, const size_t *klens,"
        " const char **vals, const size_t *vlens, int n);"
        "int lf_one(int mode, const char *key, size_t kl, const char *val, size_t vl);"
        "double lf_loop_ps(void *fn, void *ps_env, const void *plan, const char **ids,"
        " const size_t *idlens, const char **vals, const size_t *vlens, int n);"
    )
    lf = ffi.dlopen(so)

    def lmdb_error(code: float) -> str:
        """An error code of the library (LMDB's own are <= -30600; a loop
        returns an errno value negated) as text."""
        rc = int(code)
        rc = rc if rc <= -30600 or rc > 0 else -rc
        return f"{ffi.string(lf.lf_strerror(rc)).decode()} ({rc})"

    rng = random.Random(wl.SEED)
    ids = [wl.make_id("Agent", i) for i in range(N)]
    msgs = [wl.make_agent(rng, "Agent", i) for i in ids]
    datas = [m.SerializeToString() for m in msgs]
    keys = [f"Agent/{i}".encode() for i in ids]

    # everything opened is closed, and the scratch directory removed, however
    # the run ends (an error, an interrupt)
    with contextlib.ExitStack() as stack:
        root = tempfile.mkdtemp(prefix="floor-log-")
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        os.makedirs(f"{root}/c")
        rc = lf.lf_open(f"{root}/c".encode())
        stack.callback(lf.lf_close)  # also frees what a failed open left
        if rc:
            raise SystemExit(f"lf_open: {lmdb_error(rc)}")
        c_keys = [ffi.new("char[]", k) for k in keys]
        c_vals = [ffi.new("char[]", d) for d in datas]
        expert = LmdbExpert()
        expert.open(f"{root}/expert")
        stack.callback(expert.close)
        expert.load((("Agent", i, m) for i, m in zip(ids, msgs, strict=True)), 5_000)
        store = pystore.Store(f"{root}/pystore", sync=False)
        stack.callback(store.close)
        store.save_resources("Agent", list(zip(ids, msgs, strict=True)))
        fw = store._fw
        assert fw is not None, "the one-call write path is off"
        plan = fw._plans[type(msgs[0])][1]
        env = fw._env

        c_ids = [ffi.new("char[]", i.encode()) for i in ids]

        def arrays(sel: list[int], names: list[Any], lens: list[bytes]) -> tuple[Any, ...]:
            """C arrays of the selected names (keys or ids) and values, and lengths"""
            return (
                ffi.new("const char *[]", [names[i] for i in sel]),
                ffi.new("size_t[]", [len(lens[i]) for i in sel]),
                ffi.new("const char *[]", [c_vals[i] for i in sel]),
                ffi.new("size_t[]", [len(datas[i]) for i in sel]),
            )

        def c_loop(mode: int, sel: list[int]) -> float:
            us: float = lf.lf_loop(mode, *arrays(sel, c_keys, keys), len(sel))
            if us < 0:
                raise SystemExit(f"lf_loop: {lmdb_error(us)}")
            return us

        c_loop(PUT, list(range(N)))  # load (untimed)
        os.makedirs(f"{root}/c-main")
        rc = lf.lf_open_main(f"{root}/c-main".encode(), *arrays(list(range(N)), c_keys, keys), N)
        if rc:
            raise SystemExit(f"lf_open_main: {lmdb_error(rc)}")

        def c_get(named: int, sel: list[int]) -> float:
            us: float = lf.lf_get_loop(named, *arrays(sel, c_keys, keys)[:2], len(sel))
            if us < 0:
                raise SystemExit(f"lf_get_loop: {lmdb_error(us)}")
            return us

        ps_fn = ffi.cast("void *", psffi.addressof(pslib, "ps_fw_save"))
        ps_env = ffi.cast("void *", psffi.cast("uintptr_t", env))
        ps_plan = ffi.cast("void *", psffi.cast("uintptr_t", plan))
        id_bytes = [i.encode() for i in ids]

        def c_ps(sel: list[int]) -> float:
            args = arrays(sel, c_ids, id_bytes)
            us: float = lf.lf_loop_ps(ps_fn, ps_env, ps_plan, *args, len(sel))
            if us < 0:  # -ticket: the failure's details are the thread's last
                info = psffi.new("ps_fw_info *")
                pslib.ps_fw_last(info)
                why = psffi.string(pslib.ps_strerror(info.rc)).decode()
                raise SystemExit(f"ps_fw_save: {why} ({info.rc}, stage {info.stage})")
            return us

        def timed(fn: Callable[[list[int]], Any], sel: list[int]) -> float:
            t0 = time.thread_time_ns()
            fn(sel)
            return (time.thread_time_ns() - t0) / 1e3 / len(sel)

        def saving(save: Callable[[str, str, Any], Any]) -> Callable[[list[int]], None]:
            def run(sel: list[int]) -> None:
                for i in sel:
                    save("Agent", ids[i], msgs[i])

            return run

        def per_id(call: Callable[[str, str], Any]) -> Callable[[list[int]], None]:
            def run(sel: list[int]) -> None:
                for i in sel:
                    call("Agent", ids[i])

            return run

        def ser(sel: list[int]) -> None:
            for i in sel:
                msgs[i].SerializeToString()

        def calling(p: Any) -> Callable[[list[int]], None]:
            """ps_fw_save through cffi with the strip plan p (NULL: none)"""

            def run(sel: list[int]) -> None:
                save = pslib.ps_fw_save
                for i in sel:
                    ib = ids[i].encode()
                    d = datas[i]
                    save(env, b"Agent", 5, ib, len(ib), d, len(d), p, 0, 0)

            return run

        def c_calls(mode: int) -> Callable[[list[int]], None]:
            """one cffi call per write from this Python loop (the C floor's
            write as pystore's callers would reach it: no Python layer)"""

            def run(sel: list[int]) -> None:
                one = lf.lf_one
                for i in sel:
                    k = keys[i]
                    d = datas[i]
                    if one(mode, k, len(k), d, len(d)):
                        raise SystemExit("lf_one failed")

            return run

        ex_save, ex_del = saving(expert.save_one), per_id(expert.delete_one)
        ps_save, ps_del = saving(store.save_resource), per_id(store.delete_resource)
        ex_get, ps_get = per_id(expert.get_raw), per_id(store.get_bytes)
        ps_call, ps_call_nostrip = calling(plan), calling(ffi.NULL)

        def ps_call_del(sel: list[int]) -> None:
            d = pslib.ps_fw_del
            for i in sel:
                ib = ids[i].encode()
                d(env, b"Agent", 5, ib, len(ib), 0, 0)

        cases: dict[str, tuple[Callable[[list[int]], float], Callable[[list[int]], Any] | None]] = {
            "expert save": (lambda s: timed(ex_save, s), None),
            "serialize": (lambda s: timed(ser, s), None),
            "C put": (lambda s: c_loop(PUT, s), None),
            "C put + log": (lambda s: c_loop(PUT_LOG, s), None),
            "C put + main-db log": (lambda s: c_loop(PUT_TAIL, s), None),
            "C put, a call per write": (lambda s: timed(c_calls(PUT), s), None),
            "C put + log, a call per write": (lambda s: timed(c_calls(PUT_LOG), s), None),
            "pystore C call": (lambda s: timed(ps_call, s), None),
            "pystore C loop": (c_ps, None),
            "pystore save": (lambda s: timed(ps_save, s), None),
            "pystore C call, no strip": (lambda s: timed(ps_call_nostrip, s), None),
            "expert delete": (lambda s: timed(ex_del, s), ex_save),
            "C del": (lambda s: c_loop(DEL, s), None),
            "C del + log": (lambda s: c_loop(DEL_LOG, s), None),
            "C del + main-db log": (lambda s: c_loop(DEL_TAIL, s), None),
            "C del, a call per write": (lambda s: timed(c_calls(DEL), s), c_calls(PUT)),
            "C del + log, a call per write": (lambda s: timed(c_calls(DEL_LOG), s), c_calls(PUT)),
            "pystore C del call": (lambda s: timed(ps_call_del, s), ps_save),
            "pystore delete": (lambda s: timed(ps_del, s), ps_save),
            "expert get": (lambda s: timed(ex_get, s), None),
            "C get, main db": (lambda s: c_get(0, s), None),
            "C get, named db": (lambda s: c_get(1, s), None),
            "pystore get_bytes": (lambda s: timed(ps_get, s), None),
        }
        only = sys.argv[3:]  # substrings of case names: run only those (for perf)
        if only:
            cases = {k: v for k, v in cases.items() if any(o in k for o in only)}
        res: dict[str, list[float]] = {k: [] for k in cases}
        for r in range(-1, rounds):  # round -1 warms up
            order = list(cases)
            random.shuffle(order)
            for name in order:
                sel = random.sample(range(N), OPS)
                fn, back = cases[name]
                us = fn(sel)
                if back is not None:
                    back(sel)  # put the deleted records back, untimed
                if r >= 0:
                    res[name].append(us)

    def ratio(name: str, base: str, minus_ser: bool) -> float:
        rs = []
        for x, b, s in zip(res[name], res[base], res["serialize"], strict=True):
            rs.append(
                ((x - s) if minus_ser and name == "pystore save" else x)
                / ((b - s) if minus_ser else b)
            )
        return statistics.median(rs)

    med = {k: statistics.median(v) for k, v in res.items()}
    print(
        f"{rounds} rounds x {OPS} ops per case, {N} Agents of ~{len(datas[0])} bytes; "
        f"µs per op (thread CPU); ratio to py-lmdb expert"
    )
    print("| op | µs | / expert |")
    print("|---|---|---|")
    if only:  # a part of the cases: no ratios
        for name, us in med.items():
            print(f"| {name} | {us:.2f} | |")
        return
    print(f"| expert save minus serializing | {med['expert save'] - med['serialize']:.2f} | 1 |")
    for name in (
        "C put",
        "C put + log",
        "C put + main-db log",
        "C put, a call per write",
        "C put + log, a call per write",
        "pystore C loop",
        "pystore C call",
        "pystore C call, no strip",
    ):
        print(f"| {name} | {med[name]:.2f} | {ratio(name, 'expert save', True):.2f} |")
    print(
        f"| pystore save minus serializing | {med['pystore save'] - med['serialize']:.2f} | "
        f"{ratio('pystore save', 'expert save', True):.2f} |"
    )
    print(f"| expert delete | {med['expert delete']:.2f} | 1 |")
    for name in (
        "C del",
        "C del + log",
        "C del + main-db log",
        "C del, a call per write",
        "C del + log, a call per write",
        "pystore C del call",
        "pystore delete",
    ):
        print(f"| {name} | {med[name]:.2f} | {ratio(name, 'expert delete', False):.2f} |")
    print("| **get** (a reused read txn renewed per get, the value copied out) | | |")
    print(f"| expert get (`get_raw`) | {med['expert get']:.2f} | 1 |")
    for name in ("C get, main db", "C get, named db", "pystore get_bytes"):
        print(f"| {name} | {med[name]:.2f} | {ratio(name, 'expert get', False):.2f} |")


if __name__ == "__main__":
    main()
