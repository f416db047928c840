"""Cost of revisions + the change log, and watch latency (issue 9).

usage: python bench_rev.py BASE_SITE OUT.json [ROUNDS]

1. Write cost, in the same run: this build (format 2: revision in every
   record header, one change-log entry per change, meta `revision` per
   commit) against BASE_SITE, a build of the code before revisions (format
   1), installed with ``pip install --target`` by ``make bench-rev``.  Each
   round runs one fresh child process per build, alternating (ABAB...), and
   the report takes the median per operation: save one (sync=False), save
   one durable (fsync), save a batch of 1000, delete one.
2. watch latency: same process (a watcher thread, the writer in the main
   thread) and across processes (a child writes; its payload carries
   CLOCK_MONOTONIC, which is system-wide) -- commit start to arrival.
3. The cost of an idle watcher: CPU seconds per second of a process that
   only waits in ``watch()`` (the revision poll every POLL_S).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

WRITES = textwrap.dedent("""
    import json, sys, tempfile, time
    from pystore import Store
    from pystore.samples.agent_pb2 import Agent
    msg = Agent(model="local-llm", instructions="Be helpful. " * 80)  # ~1 KB
    out = {}
    with tempfile.TemporaryDirectory() as d:
        with Store(d + "/s", sync=False) as s:
            ids = [f"a{i:05d}" for i in range(2000)]
            for i in ids:
                s.save_resource("A", i, msg)
            t = time.perf_counter()
            for i in ids:
                s.save_resource("A", i, msg)
            out["save_one"] = (time.perf_counter() - t) / len(ids)
            batch = [(f"b{i:05d}", msg) for i in range(1000)]
            s.save_resources("B", batch)
            t = time.perf_counter()
            for _ in range(3):
                s.save_resources("B", batch)
            out["save_batch"] = (time.perf_counter() - t) / 3000
            t = time.perf_counter()
            for i in ids:
                s.delete_resource("A", i)
            out["delete_one"] = (time.perf_counter() - t) / len(ids)
        with Store(d + "/durable") as s:
            for i in range(20):
                s.save_resource("D", f"d{i}", msg)
            t = time.perf_counter()
            for i in range(100):
                s.save_resource("D", f"d{i % 20}", msg)
            out["save_durable"] = (time.perf_counter() - t) / 100
    print(json.dumps(out))
""")

CROSS_WRITER = textwrap.dedent("""
    import sys, time
    from pystore import Store
    from pystore.samples.agent_pb2 import Agent
    with Store(sys.argv[1], sync=False) as s:
        for i in range(int(sys.argv[2])):
            time.sleep(0.02)
            s.save_resource("L", "x", Agent(model=repr(time.monotonic())))
""")

IDLE_WATCHER = textwrap.dedent("""
    import resource, sys, time
    from pystore import Store
    with Store(sys.argv[1], readonly=True) as s:
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        for _ in s.watch(timeout=float(sys.argv[2])):
            pass
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    print(cpu / (t1 - t0))
""")


def writes(site: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = site
    p = subprocess.run([sys.executable, "-c", WRITES], capture_output=True, text=True,
                       env=env, check=True, cwd=tempfile.gettempdir())
    result: dict[str, float] = json.loads(p.stdout)
    return result


def write_cost(base: str, rounds: int) -> dict[str, dict[str, float]]:
    runs: dict[str, list[dict[str, float]]] = {"base": [], "rev": []}
    for _ in range(rounds):
        runs["base"].append(writes(base))
        runs["rev"].append(writes(None))
    out: dict[str, dict[str, float]] = {}
    for op in runs["rev"][0]:
        b = statistics.median(r[op] for r in runs["base"])
        n = statistics.median(r[op] for r in runs["rev"])
        out[op] = {"format1_us": b * 1e6, "format2_us": n * 1e6, "ratio": n / b}
    return out


def same_process_latency(n: int = 200) -> list[float]:
    from pystore import Store
    from pystore.samples.agent_pb2 import Agent

    with tempfile.TemporaryDirectory() as d, Store(d + "/s", sync=False) as s:
        lat: list[float] = []
        sent: list[float] = []
        done = threading.Event()

        def watch() -> None:
            for _ in s.watch():
                lat.append(time.monotonic() - sent[-1])
                if len(lat) == n:
                    done.set()
                    return

        th = threading.Thread(target=watch, daemon=True)
        th.start()
        time.sleep(0.1)
        for i in range(n):
            sent.append(time.monotonic())
            s.save_resource("L", "x", Agent(model=str(i)))
            while len(lat) <= i and not done.is_set():
                time.sleep(0.0005)
        done.wait(10)
        return lat


def cross_process_latency(n: int = 100) -> list[float]:
    from pystore import Store
    from pystore.samples.agent_pb2 import Agent

    with tempfile.TemporaryDirectory() as d:
        with Store(d + "/s", sync=False) as s:
            s.save_resource("L", "x", Agent())
        with Store(d + "/s", readonly=True) as ro:
            lat: list[float] = []
            start = ro.revision()
            p = subprocess.Popen([sys.executable, "-c", CROSS_WRITER, d + "/s", str(n)],
                                 cwd=tempfile.gettempdir())
            for ch in ro.watch(after=start, timeout=10):
                now = time.monotonic()
                sent = float(ro.get_resource("L", "x", Agent).model)
                lat.append(now - sent)
                if ch.revision >= start + n:
                    break
            p.wait(30)
            return lat


def idle_cpu(seconds: float = 3.0) -> float:
    from pystore import Store

    with tempfile.TemporaryDirectory() as d:
        Store(d + "/s", sync=False).close()
        p = subprocess.run([sys.executable, "-c", IDLE_WATCHER, d + "/s", str(seconds)],
                           capture_output=True, text=True, check=True,
                           cwd=tempfile.gettempdir())
        return float(p.stdout)


def summary(lat: list[float]) -> dict[str, float]:
    q = sorted(lat)
    return {"n": len(q), "median_ms": statistics.median(q) * 1e3,
            "p99_ms": q[min(len(q) - 1, int(len(q) * 0.99))] * 1e3, "max_ms": q[-1] * 1e3}


def main() -> None:
    base, out_path = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    result = {
        "write_cost": write_cost(base, rounds),
        "watch_same_process": summary(same_process_latency()),
        "watch_cross_process": summary(cross_process_latency()),
        "idle_watcher_cpu_per_s": idle_cpu(),
    }
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
    print("| operation | format 1 (us) | format 2 (us) | ratio |")
    print("|---|---:|---:|---:|")
    for op, r in result["write_cost"].items():  # type: ignore[union-attr]
        print(f"| {op} | {r['format1_us']:.2f} | {r['format2_us']:.2f} | {r['ratio']:.3f} |")
    for k in ("watch_same_process", "watch_cross_process"):
        r = result[k]
        print(f"{k}: median {r['median_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "  # type: ignore[index]
              f"max {r['max_ms']:.2f} ms over {r['n']}")  # type: ignore[index]
    print(f"idle watcher: {result['idle_watcher_cpu_per_s'] * 100:.3f} % of one CPU")


if __name__ == "__main__":
    main()
