"""``pystore find``, ``indexes``, ``events``, ``reindex``; verify and dump/load
of index definitions and events."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pystore import Store
from pystore.samples.agent_execution_pb2 import AgentExecution, ExecutionStatus
from pystore.samples.session_pb2 import Session


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pystore", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def qstore(store_path: Path) -> Path:
    with Store(store_path, sync=False) as s:
        s.save_resource("Session", "s1", Session(agent_id="a1", context={"k": "v=w"}))
        s.save_resource("Session", "s2", Session(agent_id="a1"))
        s.save_resource("Ex", "x1", AgentExecution(status=ExecutionStatus(phase=2)))
        s.create_index("Session", "agent", field="agent_id", msg_type=Session)
        s.create_index("Session", "ctx", field="context", msg_type=Session)
        s.create_index("Ex", "phase", field="status.phase", msg_type=AgentExecution,
                       unique=True)
        s.append_events("ex-1", [(i, Session(subject=f"e{i}")) for i in range(1, 12)])
        s.append_events("gone", [(1, Session())])
        s.delete_events("gone")
        s.delete_events("ex-1", upto=2)
    return store_path


def test_find(qstore: Path) -> None:
    p = run("find", qstore, "Session", "agent", "a1")
    assert p.returncode == 0 and p.stdout.split() == ["s1", "s2"]
    p = run("find", qstore, "Session", "agent", "a1", "--json")
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    assert [(r["id"], r["message"]["agent_id"]) for r in rows] == [("s1", "a1"), ("s2", "a1")]
    assert run("find", qstore, "Session", "ctx", "k=v=w").stdout.split() == ["s1"]
    assert run("find", qstore, "Ex", "phase", "2").stdout.split() == ["x1"]
    assert run("find", qstore, "Ex", "phase", "EXECUTION_PHASE_RUNNING").stdout.split() == ["x1"]
    p = run("find", qstore, "Session", "agent", "nobody")
    assert p.returncode == 0 and p.stdout == ""
    p = run("find", qstore, "Session", "nope", "x")
    assert p.returncode == 1 and "no index Session.nope" in p.stderr
    assert run("find", qstore, "Session", "ctx", "novalue").returncode == 1
    assert run("find", qstore, "Ex", "phase", "BOGUS").returncode == 1


def test_indexes(qstore: Path) -> None:
    p = run("indexes", qstore)
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "FIELD", "VALUE", "UNIQUE", "ENTRIES"]
    assert [ln.split()[:2] for ln in lines[1:]] == [["Ex", "phase"], ["Session", "agent"],
                                                    ["Session", "ctx"]]
    assert lines[2].split()[-1] == "2"
    data = json.loads(run("--json", "indexes", qstore).stdout)
    assert data[0] == {"kind": "Ex", "name": "phase", "field": "status.phase", "unique": True,
                       "entries": 1, "type": "pystore.samples.AgentExecution",
                       "value": "enum"}


def test_events(qstore: Path) -> None:
    p = run("events", qstore, "ex-1")
    assert [ln.split("\t")[0] for ln in p.stdout.splitlines()] == [str(i) for i in range(3, 12)]
    p = run("events", qstore, "ex-1", "--after", "9", "--json")
    rows = [json.loads(x) for x in p.stdout.splitlines()]
    assert [r["seq"] for r in rows] == [10, 11]
    assert Session.FromString(__import__("base64").b64decode(rows[0]["data"])).subject == "e10"
    assert run("events", qstore, "nothing").stdout == ""
    assert run("events", qstore, "ex-1", "--after", "-1").returncode != 0


def _break_index(path: Path) -> None:
    """Point the stored definition of Session.agent at another field
    without rebuilding: the entries no longer match the records."""
    with Store(path, sync=False) as s, s.transaction() as t:
        c = t._begin(True)
        blob = c.meta_get(b"index/Session/agent")
        assert blob is not None
        plan_off = 20
        plan = list(struct.unpack_from("<3I", blob, plan_off))
        plan[1] = 3  # Session.subject
        c.meta_put(b"index/Session/agent", blob[:plan_off] + struct.pack("<3I", *plan)
                   + blob[plan_off + 12:])


def test_verify_names_mismatches_and_reindex_fixes_them(qstore: Path) -> None:
    assert run("verify", qstore).returncode == 0
    _break_index(qstore)
    p = run("verify", qstore)
    assert p.returncode == 1
    assert "BAD index Session.agent: stale entry 'a1' -> Session/s1" in p.stdout
    assert "BAD index Session.agent: stale entry 'a1' -> Session/s2" in p.stdout
    p = run("reindex", qstore, "Session", "agent")
    assert p.returncode == 0 and "rebuilt index Session.agent: 0 entries" in p.stdout
    assert run("verify", qstore).returncode == 0
    assert run("reindex", qstore, "Session", "nope").returncode == 1


def test_dump_load_carries_indexes_and_events(qstore: Path, tmp_path: Path) -> None:
    dump = tmp_path / "d.jsonl"
    assert run("dump", qstore, "-o", dump).returncode == 0
    lines = [json.loads(x) for x in dump.read_text().splitlines()]
    assert sum("index" in x for x in lines) == 3
    assert sum("event" in x for x in lines) == 9
    other = tmp_path / "other"
    p = run("load", other, dump)
    assert p.returncode == 0 and "loaded 3 index(es) and 9 event(s)" in p.stdout, p.stderr
    with Store(other, sync=False) as s, Store(qstore, readonly=True) as q:
        assert s.indexes() == q.indexes()
        assert s.find_ids("Session", "agent", "a1") == ["s1", "s2"]
        assert [e.seq for e in s.read_events("ex-1")] == list(range(3, 12))
        assert s.read_events("ex-1") == q.read_events("ex-1")  # stamps kept
        assert s.last_seq("gone") == 1 and s.last_seq("ex-1") == 11
        assert s.append_events("ex-1", [(2, Session())]) == 0  # forgotten stays forgotten
        assert s.streams() == ["ex-1"]
    assert run("dump", other, "-o", tmp_path / "d2.jsonl").returncode == 0
    a = [x for x in dump.read_text().splitlines() if '"event"' in x or '"index"' in x]
    b = [x for x in (tmp_path / "d2.jsonl").read_text().splitlines()
         if '"event"' in x or '"index"' in x]
    assert a == b
    # a second load changes nothing (idempotent)
    assert run("load", other, dump).returncode == 0
    with Store(other, readonly=True) as s:
        assert [i.entries for i in s.indexes()] == [1, 2, 1]


@pytest.mark.parametrize(("args", "lines"), [
    (["find", "{p}", "Session", "agent", "a1"], True),
    (["indexes", "{p}"], False),
    (["events", "{p}", "ex-1"], True),
    (["reindex", "{p}", "Session", "agent"], False),
    (["upgrade", "{p}"], False),
])
def test_json_before_the_command_is_honoured_by_the_query_commands(
    qstore: Path, args: list[str], lines: bool
) -> None:
    p = run("--json", *[a.format(p=qstore) for a in args])
    assert p.returncode == 0, p.stderr
    docs = ([json.loads(x) for x in p.stdout.splitlines()] if lines
            else [json.loads(p.stdout)])
    assert docs
    if args[0] == "reindex":
        assert docs == [{"kind": "Session", "name": "agent", "entries": 2}]


@pytest.mark.parametrize("after", ["-1", str(2**64)])
def test_an_out_of_range_events_after_is_a_usage_error(qstore: Path, after: str) -> None:
    p = run("events", qstore, "ex-1", "--after", after)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.startswith("pystore: error:") and p.stderr.count("\n") == 1
