"""The etcd backend against a bare gRPC call of the same etcd request, and
beside LMDB, in one run (issue 13; ``make bench-etcd``).

usage: python bench_etcd.py OUT.md [N]

Starts its own 3-member cluster (tests/etcd_cluster.py: free 127.0.0.1
ports, its own PIDs), then per operation the median of N calls:

* get: ``store.get_resource`` vs one bare ``KV/Range`` of the same key on a
  plain grpc channel (the same private messages, no pystore code);
* put: ``store.save_resource`` vs the very ``TxnRequest`` the store sent,
  captured once and re-sent bare;
* list 10,000: ``store.list_resources`` (pages of 1000 at one pinned
  revision) vs ONE bare Range of the whole prefix;
* update, create, delete, batch of 100, count, and watch latency (put sent
  to change received), with the same operations on LMDB (sync=True) beside.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import grpc  # noqa: E402
from etcd_cluster import EtcdCluster  # noqa: E402

from pystore import Store  # noqa: E402
from pystore._etcd import _common as c  # noqa: E402
from pystore._etcd import etcd_api_pb2 as pb  # noqa: E402
from pystore.samples.agent_pb2 import Agent  # noqa: E402


def median_us(fn: Callable[[], object], n: int) -> float:
    for _ in range(min(20, n)):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def pair_us(
    a: Callable[[], object], b: Callable[[], object], n: int
) -> tuple[float, float]:
    """Medians of a and b, called alternately (so both see the same load)."""
    for _ in range(min(20, n)):
        a()
        b()
    ta, tb = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return statistics.median(ta) * 1e6, statistics.median(tb) * 1e6


def msg(i: int) -> Agent:
    return Agent(model=f"model-{i}", instructions="x" * 900)  # ~1 KB


def main() -> None:
    out = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    tmp = Path(tempfile.mkdtemp(prefix="pystore-bench-etcd-"))
    (tmp / "etcd").mkdir()
    cluster = EtcdCluster(tmp / "etcd")
    cluster.start()
    rows: list[tuple[str, float, float | None, float | None]] = []  # op, etcd, bare, lmdb
    notes: list[str] = []
    try:
        url = cluster.url("/bench/")
        es = Store(url, timeout=10.0)
        ls = Store(str(tmp / "lmdb"))
        for s in (es, ls):
            s.save_resources("Agent", [(f"a{i}", msg(i)) for i in range(100)])
        channel = grpc.insecure_channel(c.channel_target(cluster.endpoints),
                                        options=c.channel_options())
        bare_range = channel.unary_unary(
            c.RANGE, request_serializer=pb.RangeRequest.SerializeToString,
            response_deserializer=pb.RangeResponse.FromString)
        bare_txn = channel.unary_unary(
            c.TXN, request_serializer=pb.TxnRequest.SerializeToString,
            response_deserializer=pb.TxnResponse.FromString)
        key = es._layout.key(b"Agent", b"a1")

        # get
        e, b = pair_us(lambda: es.get_resource("Agent", "a1", Agent),
                       lambda: Agent.FromString(
                           bare_range(pb.RangeRequest(key=key), timeout=10).kvs[0].value[20:]), n)
        rows.append(("get", e, b, median_us(lambda: ls.get_resource("Agent", "a1", Agent), n)))

        # put: capture the store's own TxnRequest, then send it bare
        captured: list[pb.TxnRequest] = []
        real = es._client._txn

        def spy(req: pb.TxnRequest, timeout: float | None = None) -> pb.TxnResponse:
            captured.append(req)
            return real(req, timeout=timeout)

        es._client._txn = spy  # type: ignore[assignment]
        es.save_resource("Agent", "a1", msg(1))
        es._client._txn = real
        req = captured[0]
        inner = req.failure[0].request_txn  # the write inside its once-guard (once.py)
        notes.append(f"put request: guarded by a slot; inside, {len(inner.compare)} compare(s), "
                     f"{len(inner.success)} op(s) with the slot's put, {req.ByteSize()} bytes")

        def bare_put() -> None:  # a fresh token per call, as the store sends
            token = os.urandom(16)
            req.compare[0].value = token
            inner.success[-1].request_put.value = token
            bare_txn(req, timeout=10)

        e, b = pair_us(lambda: es.save_resource("Agent", "a1", msg(1)), bare_put, n)
        rows.append(("put (save_resource)", e, b,
                     median_us(lambda: ls.save_resource("Agent", "a1", msg(1)), n)))

        def bump(m: Agent) -> None:
            m.model += "."

        rows.append(("update_resource", median_us(
            lambda: es.update_resource("Agent", "a2", Agent, bump), n // 2), None,
            median_us(lambda: ls.update_resource("Agent", "a2", Agent, bump), n // 2)))
        k = iter(range(10**9))
        rows.append(("create_resource", median_us(
            lambda: es.create_resource("New", f"c{next(k)}", msg(0)), n // 2), None,
            median_us(lambda: ls.create_resource("New", f"c{next(k)}", msg(0)), n // 2)))
        d = iter(range(10**9))
        rows.append(("delete_resource (absent)", median_us(
            lambda: es.delete_resource("Gone", f"d{next(d)}"), n // 2), None,
            median_us(lambda: ls.delete_resource("Gone", f"d{next(d)}"), n // 2)))
        batch = [(f"b{i}", msg(i)) for i in range(100)]
        rows.append(("save_resources (100)", median_us(
            lambda: es.save_resources("Batch", batch), 20), None,
            median_us(lambda: ls.save_resources("Batch", batch), 20)))
        rows.append(("count (100)", median_us(lambda: es.count("Agent"), n), None,
                     median_us(lambda: ls.count("Agent"), n)))

        # list 10,000 at one revision vs one bare Range
        big = [(f"r{i:05d}", msg(i)) for i in range(10_000)]
        for i in range(0, len(big), 100):
            es.save_resources("Big", big[i : i + 100])
        ls.save_resources("Big", big)
        prefix = es._layout.kind_prefix(b"Big")
        assert len(es.list_resources("Big")) == 10_000
        e, b = pair_us(lambda: es.list_resources("Big"),
                       lambda: bare_range(pb.RangeRequest(
                           key=prefix, range_end=c.prefix_end(prefix)), timeout=30), 9)
        rows.append(("list 10,000 (bytes)", e, b,
                     median_us(lambda: ls.list_resources("Big"), 7)))
        rows.append(("list 10,000 (parsed)",
                     median_us(lambda: es.list_resources("Big", Agent), 7), None,
                     median_us(lambda: ls.list_resources("Big", Agent), 7)))

        # watch latency: save sent -> change received
        lat: list[float] = []
        sent: dict[str, float] = {}
        done = threading.Event()

        def watcher() -> None:
            for ch in es.watch(kinds=["Lat"], timeout=10):
                if ch.id in sent:
                    lat.append(time.perf_counter() - sent[ch.id])
                if len(lat) == 100:
                    break
            done.set()

        t = threading.Thread(target=watcher)
        t.start()
        time.sleep(0.3)
        for i in range(100):
            sent[str(i)] = time.perf_counter()
            es.save_resource("Lat", str(i), msg(i))
            time.sleep(0.005)
        done.wait(20)
        t.join(20)
        rows.append(("watch latency", statistics.median(lat) * 1e6 if lat else float("nan"),
                     None, None))
        notes.append(f"watch: {len(lat)}/100 changes received")
        es.close()
        ls.close()
        channel.close()
    finally:
        cluster.stop()
    write(out, rows, notes, n)


def write(out: Path, rows: list[tuple[str, float, float | None, float | None]],
          notes: list[str], n: int) -> None:
    lines = [
        "# etcd backend: measured (`make bench-etcd`)",
        "",
        "3-member etcd 3.4 cluster on 127.0.0.1 (Debian etcd-server), started by the",
        "benchmark; 2 shared cores; ~1 KB messages; medians of up to "
        f"{n} calls. LMDB is `Store(path)` with the default `sync=True`.",
        "\"bare\" is the same etcd request on a plain grpc channel from Python (no pystore",
        "code): the targets are get and put <= 1.2x bare, list 10,000 <= 1.2x ONE bare Range.",
        "",
        "| operation | etcd store (us) | bare gRPC (us) | store / bare | LMDB (us) | etcd / LMDB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for op, e, b, lm in rows:
        ratio = f"{e / b:.2f}x" if b else "-"
        lr = f"{e / lm:.0f}x" if lm else "-"
        lines.append(f"| {op} | {e:,.0f} | {'-' if b is None else f'{b:,.0f}'} | {ratio} | "
                     f"{'-' if lm is None else f'{lm:,.1f}'} | {lr} |")
    notes.append("the box is shared (2 cores, other builds running): ratios move by about "
                 "+-10% between runs; store and bare calls alternate so both see the same load")
    lines += ["", *[f"* {x}" for x in notes], ""]
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
