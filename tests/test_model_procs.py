"""Three processes write one store at the same time (tests/model_workers.py:
every kind of write, transactions, event appends, index create/drop, keep
counts, large records that grow the map); afterwards the store must be
what its own change log says, and what each process was told:

* revisions 1..revision() each carry changes, none twice across processes;
* replaying the change log gives every record's revision, every absent
  record, and the kept versions of the versioned kind (exactly, or their
  newest where a prefix delete may have dropped them without a change);
* each version's data is the write that a process was acknowledged for at
  that revision, under that key;
* event seqs are never given twice; every index equals a scan and no unique
  value has two holders -- and all of it again after a reopen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from pystore import Store
from pystore._lmdb.indexcheck import check_indexes
from pystore.samples.agent_pb2 import Agent

HERE = Path(__file__).parent
KEEP = 1000  # the versioned kind "V" keeps every version (until a prefix delete)
PREFIXES = ("a", "b")  # what model_workers' prefix deletes cover (ids a, a/1, ab, b; not c)


def _replay(log: list[Any]) -> tuple[dict[Any, int], dict[Any, list[int]]]:
    """(live revision per key, kept revisions per key oldest first) from the log."""
    live: dict[Any, int] = {}
    kept: dict[Any, list[int]] = defaultdict(list)
    for c in log:
        if c.op == "put" or c.op == "delete":
            key = (c.kind, c.id)
            old = live.pop(key, None)
            if old is not None and old != c.revision:
                kept[key] = (kept[key] + [old])[-KEEP:]
            if c.op == "put":
                live[key] = c.revision
        elif c.op in ("delete_kind", "delete_prefix"):
            for key in [k for k in {*live, *kept}
                        if k[0] == c.kind and (c.op == "delete_kind" or k[1].startswith(c.id))]:
                live.pop(key, None)
                kept.pop(key, None)
    return live, kept


def _check(path: Path, lines: list[dict[str, Any]]) -> None:
    s = Store(path, sync=False)
    try:
        top = s.revision()
        log = s.changes(0)
        revs = [c.revision for c in log]
        assert revs == sorted(revs) and set(revs) == set(range(1, top + 1))
        by_rev: dict[int, list[Any]] = defaultdict(list)
        for c in log:
            by_rev[c.revision].append(c)
        # every returned revision is one process's own commit, with its puts
        told = [ln for ln in lines if ln["rev"]]
        assert len({ln["rev"] for ln in told}) == len(told)
        token_at: dict[str, tuple[str, str, int]] = {}
        for ln in lines:
            for kind, id_, token in ln["puts"]:
                token_at[token] = (kind, id_, ln["rev"])
        for ln in told:
            puts = {(c.kind, c.id) for c in by_rev[ln["rev"]] if c.op == "put"}
            assert {(k, i) for k, i, _ in ln["puts"]} <= puts, ln
            if ln["op"] != "transaction":
                assert [(c.op, c.kind, c.id) for c in by_rev[ln["rev"]]] == [
                    ("put", *ln["puts"][0][:2])], ln
        # the records and the kept versions are what the log says
        live, kept = _replay(log)
        for kind in ("V", "W"):
            recs = {r.id: r for r in s.iter_resources(kind)}
            assert {(kind, i): r.revision for i, r in recs.items()} == {
                k: v for k, v in live.items() if k[0] == kind}
            slugs = [Agent.FromString(r.data).metadata.slug for r in recs.values()]
            slugs = [x for x in slugs if x]
            assert len(slugs) == len(set(slugs)), slugs  # unique index: one holder
        for key in {k for k in {*live, *kept} if k[0] == "V"}:
            hist = s.history(*key)
            want = ([live[key]] if key in live else []) + list(reversed(kept.get(key, [])))
            got = [r.revision for r in hist]
            if key[1].startswith(PREFIXES):
                # A prefix delete that finds no live record under its prefix
                # still drops the kept versions there (docs/format.md,
                # "Version history") with no change in the log, as
                # delete_history makes none: the log cannot tell, so the
                # versions are the newest of what it says, the live one
                # always among them.
                assert got == want[: len(got)], (key, got, want)
                assert len(got) >= (key in live), (key, got, want)
            else:
                assert got == want, key
            for r in hist:  # each version: the acknowledged write under this key
                kind, id_, rev = token_at[Agent.FromString(r.data).model]
                assert (kind, id_) == key
                assert rev in (0, r.revision)
        for (kind, id_), rev in live.items():
            kind2, id2, rev2 = token_at[Agent.FromString(s.get_bytes(kind, id_)).model]
            assert (kind2, id2) == (kind, id_) and rev2 in (0, rev)
        # events: no seq twice; the acknowledged ones were logged
        appends = [(c.stream, c.seq) for c in log if c.op == "append"]
        assert len(appends) == len(set(appends))
        given = [tuple(q) for ln in lines for q in ln["seqs"]]
        assert len(given) == len(set(given)) and set(given) <= set(appends)
        for stream in ("e1", "e2"):
            seqs = [e.seq for e in s.read_events(stream)]
            assert seqs == sorted(seqs) and {(stream, q) for q in seqs} <= set(appends)
            assert s.last_seq(stream) >= max([q for st_, q in appends if st_ == stream],
                                             default=0)
        assert s._run(False, check_indexes) == []
    finally:
        s.close()


def _snapshots_while(path: Path, procs: list[subprocess.Popen[bytes]]) -> int:
    """While the writers run: each snapshot is one whole state of the log's
    history (its records are the log replayed up to its revision, its indexes
    equal a scan of its records), whatever the writers commit meanwhile."""
    views = 0
    s = Store(path, sync=False)
    try:
        while any(p.poll() is None for p in procs):
            with s.snapshot() as snap:
                recs = {(k, r.id): r.revision for k in ("V", "W") for r in snap.iter_resources(k)}
                assert snap._run(False, check_indexes) == []
                log = [c for c in s.changes(0) if c.revision <= snap.revision]
                assert snap.revision == (log[-1].revision if log else 0)
                assert recs == _replay(log)[0]
                views += 1
    finally:
        s.close()
    return views


@pytest.mark.parametrize("mode", ["writemap", "pwrite"])
def test_three_processes_leave_the_store_its_change_log_describes(
        tmp_path: Path, mode: str) -> None:
    path = tmp_path / "s"
    env = dict(os.environ)
    if mode == "pwrite":
        env["PYSTORE_WRITEMAP"] = "0"
        os.environ["PYSTORE_WRITEMAP"] = "0"
    try:
        s = Store(path, sync=False, map_size=1 << 16)
    finally:
        os.environ.pop("PYSTORE_WRITEMAP", None)
    assert s.stats().write_mode == mode
    s.set_history("V", KEEP)
    for kind in ("V", "W"):
        s.create_index(kind, "slug", field="metadata.slug", msg_type=Agent, unique=True)
    s.close()
    outs = [tmp_path / f"w{i}.jsonl" for i in range(3)]
    procs = [subprocess.Popen([sys.executable, str(HERE / "model_workers.py"), str(path),
                               str(i + 1), "2.5", str(out)], env=env)
             for i, out in enumerate(outs)]
    views = _snapshots_while(path, procs)
    for p in procs:
        assert p.wait(timeout=120) == 0
    assert views >= 3, views
    lines = [json.loads(x) for out in outs for x in out.read_text().splitlines()]
    assert len(lines) > 100
    _check(path, lines)
    _check(path, lines)  # and after a reopen
