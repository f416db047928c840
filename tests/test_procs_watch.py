"""A watcher following writers in other processes: every committed change
once, in revision order, the backlog first; a watcher that falls behind
another process's trimming gets CompactedError (typed), never a gap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pystore import CompactedError, Store
from pystore.samples.agent_pb2 import Agent

HERE = Path(__file__).parent


def writers(path: Path, n: int, rounds: int, keep: int = 100_000) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, str(HERE / "race_workers.py"), "mixed", str(path), f"w{i}",
             str(rounds), "-", str(keep)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, text=True,
        )
        for i in range(n)
    ]


def test_a_watcher_sees_every_change_of_three_writer_processes_once_in_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s"
    with Store(path, sync=False) as s:
        for i in range(5):
            s.save_resource("M", f"before-{i}", Agent())
        start = s.revision() - 2  # a backlog of two changes, then live
        watch = s.watch(after=start, timeout=30)
        procs = writers(path, 3, 25)
        seen = []
        done: set[str] = set()
        for ch in watch:
            seen.append(ch)
            if ch.kind == "Done" and ch.id is not None:
                done.add(ch.id)
                if len(done) == 3:
                    break
        for p in procs:
            assert p.wait(timeout=60) == 0
        expected = s.changes(start)
        assert seen == expected
        revs = [c.revision for c in seen]
        assert revs == sorted(revs)
        # every process's own changes, each once and in its order
        for w in ("w0", "w1", "w2"):
            mine = [c for c in seen if c.stream == f"ev-{w}"]
            assert [c.seq for c in mine] == list(range(1, 26))
            puts = [c.id for c in seen if c.op == "put" and c.kind == "N"
                    and c.id and c.id.startswith(w)]
            assert puts == [f"{w}-{i}" for i in range(25)]


def test_a_watcher_left_behind_by_another_process_gets_compacted_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s"
    with Store(path, sync=False, keep_changes=8) as s:
        for i in range(5):
            s.save_resource("M", str(i), Agent())
        watch = s.watch(after=0, timeout=5)
        first = next(watch)  # the backlog of five was read in one page
        assert first.id == "0"
        procs = writers(path, 1, 10, keep=8)  # 60 changes, trimmed past what we hold
        assert procs[0].wait(timeout=60) == 0
        assert [next(watch).id for _ in range(4)] == ["1", "2", "3", "4"]
        with pytest.raises(CompactedError, match="list again"):
            next(watch)
        with pytest.raises(CompactedError):
            s.changes(5)
        with s.snapshot() as snap:  # the documented way on: list, then watch
            rev = snap.revision
        assert list(s.watch(after=rev, timeout=0)) == []
