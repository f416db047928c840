"""Writers in several processes racing on one store: conditional writes,
creates, unique index claims and event appends.  Exactly one winner, typed
errors for the others, no lost update, no duplicate or reused seq."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pystore import Store
from pystore.samples.agent_pb2 import Agent

HERE = Path(__file__).parent
PROCS = 4


class Workers:
    def __init__(self, mode: str, path: Path, arg: int, n: int = PROCS) -> None:
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(HERE / "race_workers.py"), mode, str(path), f"p{i}",
                 str(arg)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            for i in range(n)
        ]
        for p in self.procs:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"

    def go(self) -> list[str]:
        """Release every process into its next round; each one's answer."""
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        return [p.stdout.readline().split(" ", 1)[1].strip() for p in self.procs if p.stdout]

    def finish(self) -> list[list[str]]:
        out = []
        for p in self.procs:
            assert p.stdin is not None and p.stdout is not None
            p.stdin.close()
            assert p.wait(timeout=60) == 0
            stdout = p.stdout.read()  # not communicate(): it skips what readline buffered
            p.stdout.close()
            out.append(stdout.split("\n")[:-1])
        return out


def test_conditional_increments_from_processes_lose_no_update(tmp_path: Path) -> None:
    path, n = tmp_path / "s", 40
    with Store(path) as s:
        s.save_resource("Counter", "c", Agent(model="0"))
    lines = Workers("incr", path, n).finish()
    wins = [line.split() for out in lines for line in out if line.startswith("win")]
    assert all(out[-1].startswith("done") for out in lines)
    assert len(wins) == PROCS * n
    assert len({w[1] for w in wins}) == len(wins)  # each win its own revision
    assert sorted(int(w[2]) for w in wins) == list(range(1, PROCS * n + 1))
    with Store(path, readonly=True) as s:
        assert s.get_resource("Counter", "c", Agent).model == str(PROCS * n)
        puts = [c.revision for c in s.changes() if c.id == "c"]
        assert puts[1:] == sorted(int(w[1]) for w in wins)  # after the first save
        # the value each winner wrote is the one committed at its revision
        by_rev = {int(w[1]): w[2] for w in wins}
        assert by_rev[max(by_rev)] == str(PROCS * n)


def test_creates_absent_claims_and_unique_slugs_race_between_processes(tmp_path: Path) -> None:
    path, rounds = tmp_path / "s", 15
    with Store(path) as s:
        s.create_index("Slug", "slug", field="metadata.slug", msg_type=Agent, unique=True)
    w = Workers("rounds", path, rounds)
    answers = [w.go() for _ in range(rounds)]
    w.finish()
    with Store(path, readonly=True) as s:
        for r, row in enumerate(answers):
            cols = [a.split() for a in row]
            create = [c[0] for c in cols]
            winners = [i for i, c in enumerate(create) if c != "exists"]
            assert len(winners) == 1, (r, row)
            assert s.get_resource("Create", f"r{r}", Agent).model == f"p{winners[0]}"
            assert s.get_record("Create", f"r{r}").revision == int(create[winners[0]])
            absent = [c[1] for c in cols]
            winners = [i for i, c in enumerate(absent) if not c.startswith("conflict")]
            assert len(winners) == 1, (r, row)
            rev = int(absent[winners[0]])
            assert all(c == f"conflict:{rev}" for i, c in enumerate(absent) if i != winners[0])
            assert s.get_resource("Absent", f"r{r}", Agent).model == f"p{winners[0]}"
            slug = [c[2] for c in cols]
            winners = [i for i, c in enumerate(slug) if not c.startswith("taken")]
            assert len(winners) == 1, (r, row)
            holder = f"p{winners[0]}-{r}"
            assert all(c == f"taken:{holder}" for i, c in enumerate(slug) if i != winners[0])
            assert s.find_ids("Slug", "slug", f"slug-{r}") == [holder]
        assert s.count("Slug") == rounds
    assert _verify(path)


def test_append_event_from_processes_gives_every_seq_once(tmp_path: Path) -> None:
    path, n = tmp_path / "s", 40
    Store(path).close()
    lines = Workers("append", path, n).finish()
    seqs = [int(line.split()[1]) for out in lines for line in out]
    assert sorted(seqs) == list(range(1, PROCS * n + 1))
    for out in lines:  # each process's own seqs increase
        mine = [int(line.split()[1]) for line in out]
        assert mine == sorted(mine)
    with Store(path, readonly=True) as s:
        evs = s.read_events("s", Agent)
        assert [e.seq for e in evs] == list(range(1, PROCS * n + 1))
        assert s.last_seq("s") == PROCS * n
        appends = [c for c in s.changes(streams=["s"])]
        assert [c.seq for c in appends] == [e.seq for e in evs]


def test_the_same_idempotent_appends_from_processes_record_each_event_once(
    tmp_path: Path,
) -> None:
    path, rounds = tmp_path / "s", 10
    Store(path).close()
    w = Workers("events", path, rounds)
    answers = [w.go() for _ in range(rounds)]
    w.finish()
    with Store(path, readonly=True) as s:
        for r, row in enumerate(answers):
            assert sum(map(int, row)) == 10, row
            evs = s.read_events(f"r{r}", Agent)
            assert [e.seq for e in evs] == list(range(1, 11))
            writers = {e.data.model for e in evs}  # first writer wins, per seq
            assert all(int(row[int(p[1:])]) > 0 for p in writers)
            assert len([c for c in s.changes(streams=[f"r{r}"])]) == 10


def test_conditional_writes_from_processes_are_linearizable_against_a_model(
    tmp_path: Path,
) -> None:
    """Random conditional saves, deletes and creates of 4 ids from 4
    processes, replayed against a model in the change log's order: each
    write that went through was made on the revision the id held just
    before it, each ConflictError names a revision the id really held
    (never the one asked for), and the store ends as the model."""
    path, n = tmp_path / "s", 60
    Store(path).close()
    lines = [line.split() for out in Workers("cond", path, n).finish() for line in out]
    puts = {int(w[4]): w for w in lines if w[0] in ("save", "create") and w[3] == "ok"}
    deletes: dict[str, int] = {}
    for w in lines:
        if w[0] == "delete" and w[3] == "ok" and w[4] == "True":
            deletes[w[1]] = deletes.get(w[1], 0) + 1
    with Store(path, readonly=True) as s:
        model: dict[str, int] = {}
        held: dict[str, set[int]] = {}
        seen_deletes: dict[str, int] = {}
        for ch in s.changes():
            assert ch.kind == "Cond" and ch.id is not None
            before = model.get(ch.id, 0)
            if ch.op == "put":
                w = puts.pop(ch.revision)  # each put was acknowledged (no crash here)
                assert w[1] == ch.id
                assert int(w[2]) == before, (w, before)  # made on the revision it asked for
                model[ch.id] = ch.revision
            else:
                assert ch.op == "delete"
                assert before != 0
                seen_deletes[ch.id] = seen_deletes.get(ch.id, 0) + 1
                model[ch.id] = 0
            held.setdefault(ch.id, {0}).add(model[ch.id])
        assert not puts  # no acknowledged put is missing from the log
        assert seen_deletes == deletes
        for w in lines:
            if w[3] == "conflict":
                assert int(w[4]) != int(w[2]) and int(w[4]) in held.get(w[1], {0}), w
            elif w[0] == "delete" and w[4] == "False":
                assert int(w[2]) == 0  # deleting an absent id on "absent" changes nothing
        for id in (f"k{i}" for i in range(4)):
            if model.get(id, 0):
                assert s.get_record("Cond", id).revision == model[id]
            else:
                assert not s.exists("Cond", id)
    assert _verify(path)


def _verify(path: Path) -> bool:
    r = subprocess.run([sys.executable, "-m", "pystore", "verify", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return True
