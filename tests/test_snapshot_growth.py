"""A Snapshot never blocks map growth (csrc/ps_park.c).

Map growth needs no transaction of the process live; a snapshot's read
transaction is parked between its calls, so a write that must grow the map
(in another thread, or in the snapshot's own thread) proceeds while the
snapshot is open, and the snapshot still reads its own view after the map
moved.  Each scenario runs in a child process with a timeout: a regression
fails instead of hanging the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Shared by every child: a 1 MiB map, a known first view, helpers.
_PRELUDE = """
import os, signal, sys, threading, time
import pystore
from pystore.samples.agent_pb2 import Agent

MIB = 1 << 20
s = pystore.Store(sys.argv[1], sync=False, map_size=MIB)
s.save_resources("A", [(f"a{i:03d}", Agent(model="old", instructions="x" * (i * 7)))
                       for i in range(120)])
want = {r.id: r.data for r in s.iter_resources("A")}
rev0 = s.revision()


def grow(tag, n=40, size=20_000):
    # ~n * size bytes of new records: the 1 MiB map grows several times
    for j in range(n):
        s.save_resources("B", [(f"{tag}-{j}-{k}", Agent(instructions="y" * size))
                               for k in range(4)])


def same_view(snap):
    assert snap.revision == rev0, (snap.revision, rev0)
    got = {r.id: r.data for r in snap.iter_resources("A")}
    assert got == want
    assert snap.count("A") == 120 and snap.count("B") == 0 and snap.kinds() == ["A"]
    assert snap.get_bytes("A", "a077") == want["a077"]
    assert {m.model for m in snap.list_resources("A", Agent)} == {"old"}
"""


def _child_env() -> dict[str, str]:
    keep = ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PATH"] = "/usr/bin:/bin"
    return env


def _run(tmp_path: Path, body: str, timeout: float = 240) -> str:
    code = _PRELUDE + textwrap.dedent(body) + '\nprint("OK", flush=True)\n'
    try:
        proc = subprocess.run(
            [sys.executable, "-X", "dev", "-c", code, str(tmp_path / "s")],
            capture_output=True, text=True, timeout=timeout, env=_child_env(),
        )
    except subprocess.TimeoutExpired as exc:  # the hang this guards against
        pytest.fail(f"child hung (timeout {timeout}s): {exc.stderr!r}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("OK"), proc.stdout
    return proc.stdout


def test_writer_thread_grows_the_map_while_a_snapshot_waits_for_it(tmp_path: Path) -> None:
    _run(tmp_path, """
        with s.snapshot() as snap:
            same_view(snap)
            before = s.stats().map_size
            th = threading.Thread(target=grow, args=("t",))
            th.start()
            th.join()  # inside the with: the snapshot must not block growth
            after = s.stats().map_size
            assert after >= 4 * before, (before, after)
            same_view(snap)  # byte-identical after the map moved
        assert s.count("B") == 160 and s.revision() == rev0 + 40
        s.close()
    """)


def test_many_snapshot_readers_concurrent_with_growth(tmp_path: Path) -> None:
    _run(tmp_path, """
        errors = []
        with s.snapshot() as snap:
            stop = threading.Event()

            def reader():
                try:
                    while not stop.is_set():
                        same_view(snap)
                except BaseException as exc:
                    errors.append(exc)

            readers = [threading.Thread(target=reader) for _ in range(3)]
            for r in readers:
                r.start()
            writers = [threading.Thread(target=grow, args=(f"w{i}", 20)) for i in range(2)]
            for w in writers:
                w.start()
            for w in writers:
                w.join()
            stop.set()
            for r in readers:
                r.join()
            same_view(snap)
        assert errors == [], errors
        assert s.stats().map_size >= 4 * MIB and s.count("B") == 160
        s.close()
    """)


def test_same_thread_write_inside_a_snapshot_grows_the_map(tmp_path: Path) -> None:
    _run(tmp_path, """
        with s.snapshot() as snap:
            grow("same")  # this thread holds the snapshot and grows the map
            assert s.stats().map_size >= 4 * MIB
            same_view(snap)
            with s.transaction() as t:  # a write transaction's own growth too
                for k in range(60):
                    t.save_resource("C", f"c{k}", Agent(instructions="z" * 30_000))
            same_view(snap)
        assert s.count("B") == 160 and s.count("C") == 60
        s.close()
    """)


def test_sigint_storm_on_snapshot_reads_leaks_no_live_count(tmp_path: Path) -> None:
    _run(tmp_path, """
        hits = 0
        with s.snapshot() as snap:
            stop = threading.Event()
            storm_done = threading.Event()
            go = threading.Event()

            def writer():
                i = 0
                while not stop.is_set() and i < 150:  # a few MiB, several growths
                    grow(f"g{i}", 1, 5_000)
                    time.sleep(0.01)
                    i += 1

            def storm():
                go.wait()
                end = time.monotonic() + 2.0
                while time.monotonic() < end:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.0003)
                storm_done.set()

            w = threading.Thread(target=writer)
            k = threading.Thread(target=storm)
            w.start()
            k.start()
            go.set()  # signals only from here on
            while True:
                try:
                    try:
                        if storm_done.is_set():  # (in the try: a SIGINT may land here)
                            break
                        snap.get_bytes("A", "a033")
                        snap.count("A")
                        list(snap.iter_resources("A", limit=5))
                        snap.kinds()
                    except KeyboardInterrupt:
                        hits += 1
                except KeyboardInterrupt:
                    hits += 1
            k.join()
            try:
                time.sleep(0.2)  # a signal still in flight lands here
            except KeyboardInterrupt:
                pass
            stop.set()
            w.join()  # hangs if an interrupted read left the snapshot live
            same_view(snap)
            def grow_once(tag):  # write until the map grows (bounded)
                before = s.stats().map_size
                for j in range(before // 80_000 + 100):  # > map/8 of new data
                    grow(f"{tag}{j}", 1)
                    if s.stats().map_size > before:
                        return
                raise AssertionError(f"the map never grew from {before}")

            th = threading.Thread(target=grow_once, args=("after",))
            th.start()
            th.join()
            grow_once("same")  # and in this thread, holding the snapshot
            same_view(snap)
        assert hits > 0
        s.close()
    """)


def test_async_snapshot_does_not_block_growth(tmp_path: Path) -> None:
    _run(tmp_path, """
        import asyncio
        from pystore.aio import AsyncStore

        async def main():
            a = AsyncStore(s)
            async with a.snapshot() as snap:
                got = await snap.get_bytes("A", "a077")
                assert got == want["a077"]
                await asyncio.get_running_loop().run_in_executor(None, grow, "aio")
                assert await snap.count("A") == 120 and await snap.count("B") == 0
                assert snap.revision == rev0
            assert s.stats().map_size >= 4 * MIB

        asyncio.run(main())
        s.close()
    """)
