"""Processes killed (SIGKILL, SIGTERM) while they hold a write transaction, a
snapshot or a watch, or in the middle of event appends, versioned updates and
unique-index moves: the other processes never hang, nothing acknowledged is
lost, seqs are never reused or skipped, and the store verifies clean."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pystore import Store
from pystore.samples.agent_pb2 import Agent

HERE = Path(__file__).parent


def spawn(mode: str, path: Path, arg: int, *extra: str) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, str(HERE / "race_workers.py"), mode, str(path), "k", str(arg), *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
    )
    assert p.stdout is not None and p.stdout.readline() == "ready\n"
    return p


def verify(path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "pystore", "verify", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def bounded(fn: object, limit: float = 20.0) -> object:
    """Run fn in a thread; fail (not hang) if it takes longer than limit."""
    box: list[object] = []

    def run() -> None:
        try:
            box.append(fn())  # type: ignore[operator]
        except BaseException as exc:
            box.append(exc)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(limit)
    assert not th.is_alive(), f"{fn} still waiting after {limit} s"
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
@pytest.mark.parametrize("what", ["txn", "snapshot", "watch"])
def test_a_process_killed_holding_a_txn_snapshot_or_watch_hangs_no_one(
    tmp_path: Path, what: str, sig: signal.Signals
) -> None:
    path = tmp_path / "s"
    with Store(path, sync=False) as s:
        s.save_resource("A", "x", Agent(model="0"))
        p = spawn("hold", path, ["txn", "snapshot", "watch"].index(what))
        assert p.stdout is not None and p.stdout.readline() == "holding\n"
        waiter = threading.Thread(target=s.save_resource, args=("A", "y", Agent()))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive() == (what == "txn")  # only a writer blocks writers
        p.send_signal(sig)
        assert p.wait(timeout=20) == -sig
        waiter.join(20)
        assert not waiter.is_alive()
        bounded(lambda: s.save_resource("A", "z", Agent()))
        with s.transaction() as t:
            t.save_resource("A", "w", Agent())
        assert sorted(s.list_ids("A")) == ["w", "x", "y", "z"]
        assert s.count("Held") == 0  # the killed transaction left nothing
        assert [c.id for c in s.changes()] == ["x", "y", "z", "w"]
    p.stdout.close()
    verify(path)


def _ack_lines(p: subprocess.Popen[str], n: int) -> list[str]:
    assert p.stdout is not None
    return [p.stdout.readline().strip() for _ in range(n)]


def test_sigkill_mid_appends_updates_and_slug_moves(tmp_path: Path) -> None:
    path = tmp_path / "s"
    rng = random.Random(7)
    with Store(path) as s:
        s.set_history("Versioned", 3)
        s.create_index("Slug", "slug", field="metadata.slug", msg_type=Agent, unique=True)
    acked: list[str] = []
    start = 0
    for kills in range(1, 9):
        p = spawn("logs", path, start)
        acked += _ack_lines(p, rng.randrange(1, 30))
        time.sleep(rng.random() * 0.004)
        p.kill()
        p.wait(timeout=20)
        assert p.stdout is not None
        acked += [x for x in p.stdout.read().split("\n") if x]
        p.stdout.close()
        moved = [int(a.split()[1]) for a in acked if a.startswith("moved")]
        start = (max(moved) if moved else start) + 100
        with Store(path, sync=False) as s:
            _check_logs(s, acked, kills)
        verify(path)


def _check_logs(s: Store, acked: list[str], kills: int) -> None:
    """``kills``: each may have left one write committed but not acknowledged."""
    seqs = [int(a.split()[1]) for a in acked if a.startswith("seq")]
    evs = s.read_events("log")
    have = [e.seq for e in evs]
    assert have == list(range(1, len(have) + 1))  # no gap, no duplicate
    assert set(seqs) <= set(have) and len(have) <= len(seqs) + kills
    assert s.last_seq("log") == len(have)
    keyed = [int(a.split()[1]) for a in acked if a.startswith("keyed")]
    kseqs = {e.seq for e in s.read_events("keyed")}
    assert all(set(range(k - 4, k + 1)) <= kseqs for k in keyed)
    # the versioned counter: one bump per acknowledged call (one more per kill at most)
    bumps = sum(a == "bumped" for a in acked)
    if bumps:
        hist = s.history("Versioned", "v")
        values = [int(Agent.FromString(r.data).model) for r in hist]
        assert bumps <= values[0] <= bumps + kills
        assert values == list(range(values[0], values[0] - len(values), -1))
        revs = [r.revision for r in hist]
        assert revs == sorted(revs, reverse=True) and len(set(revs)) == len(revs)
        assert len(hist) == min(4, values[0])
        for r in hist:
            assert s.get_record_at("Versioned", "v", r.revision).data == r.data
    # the unique index agrees with a scan
    scan: dict[str, list[str]] = {}
    for id in s.list_ids("Slug"):
        scan.setdefault(s.get_resource("Slug", id, Agent).metadata.slug, []).append(id)
    assert all(len(v) == 1 for v in scan.values()), scan
    for slug in {f"slug-{i}" for i in range(3)}:
        assert s.find_ids("Slug", "slug", slug) == scan.get(slug, [])
    # changes: strictly ordered, each append logged once
    log = s.changes()
    assert [(c.revision) for c in log] == sorted(c.revision for c in log)
    assert [c.seq for c in log if c.stream == "log"] == have


def test_a_writer_killed_while_it_grows_the_map(tmp_path: Path) -> None:
    path = tmp_path / "s"
    big = Agent(instructions="x" * 200_000)
    with Store(path, sync=False, map_size=1 << 20) as s:
        s.save_resource("A", "first", Agent())
    for round in range(4):
        p = spawn("logs", path, round * 1000, str(1 << 20))
        with Store(path, sync=False) as s:
            for i in range(12):  # grows the map while the other process writes
                bounded(lambda i=i, r=round: s.save_resource("Big", f"{r}-{i}", big))
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=20)
            assert p.stdout is not None
            p.stdout.close()
            bounded(lambda: s.save_resource("Big", "after", big))
            assert s.count("Big") == 12 * (round + 1) + 1
    verify(path)
