"""``pystore dump``/``load`` of what a kind keeps without live records: its
history keep count, the kept versions of its deleted resources, its schema."""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pystore import Store
from pystore.samples.session_pb2 import Session


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pystore", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_kind_without_records_keeps_history_and_schema(tmp_path: Path) -> None:
    src, dst, out = tmp_path / "a", tmp_path / "b", tmp_path / "d.jsonl"
    with Store(src, sync=False) as s:
        s.set_history("Gone", 3)  # every resource of this kind deleted
        s.save_resource("Gone", "g1", Session(agent_id="v1"))
        s.save_resource("Gone", "g1", Session(agent_id="v2"))
        s.delete_resource("Gone", "g1")
        s.set_history("Empty", 2)  # a keep count set before any write
        s.save_resource("Live", "l", Session(agent_id="l"))
        before = [(r.data, r.updated_ns) for r in s.history("Gone", "g1")]
    assert len(before) == 2
    assert run("dump", src, "-o", out).returncode == 0
    r = run("load", dst, out)
    assert r.returncode == 0, r.stderr
    with Store(dst, readonly=True) as c:
        assert c.history_keep("Gone") == 3
        assert c.history_keep("Empty") == 2
        assert [(r.data, r.updated_ns) for r in c.history("Gone", "g1")] == before
    again = tmp_path / "d2.jsonl"
    assert run("dump", dst, "-o", again).returncode == 0
    text = out.read_text()
    assert '"kind":"Gone","type":"pystore.samples.Session"' in text
    assert again.read_text() == text


def test_loading_a_dump_twice_changes_nothing(tmp_path: Path) -> None:
    """Loading is idempotent (docs/format.md): a second load of the same dump
    neither copies the live version into the history nor adds the kept
    versions again."""
    src, dst = tmp_path / "a", tmp_path / "b"
    with Store(src, sync=False) as s:
        s.set_history("V", 3)
        for i in range(3):
            s.save_resource("V", "x", Session(agent_id=f"v{i}"))
        s.save_resource("V", "y", Session(agent_id="only"))
        s.create_index("V", "u", field="agent_id", msg_type=Session, unique=True)
        s.append_events("e", [(1, Session())])
    d1, d2, d3 = (tmp_path / n for n in ("d1", "d2", "d3"))
    assert run("dump", src, "-o", d1).returncode == 0
    assert run("load", dst, d1).returncode == 0
    assert run("dump", dst, "-o", d2).returncode == 0
    with Store(dst, readonly=True) as c:
        history = c.history("V", "x")
    r = run("load", dst, d1)
    assert r.returncode == 0, r.stderr
    assert run("dump", dst, "-o", d3).returncode == 0
    assert d2.read_text() == d1.read_text()
    assert d3.read_text() == d2.read_text()
    with Store(dst, readonly=True) as c:
        assert c.history("V", "x") == history


def _index_line(tmp_path: Path) -> dict[str, object]:
    src = tmp_path / "with-index"
    with Store(src, sync=False) as s:
        s.create_index("Noidx", "ag", field="agent_id", msg_type=Session)
    p = run("dump", src)
    assert p.returncode == 0
    line: dict[str, object] = next(
        x for x in map(json.loads, p.stdout.splitlines()) if "index" in x)
    return line


def _blob(line: dict[str, object], old: bytes, new: bytes) -> str:
    index = line["index"]
    assert isinstance(index, dict)
    blob = base64.b64decode(index["definition"])
    assert old in blob
    return json.dumps({"index": {**index, "definition": base64.b64encode(
        blob.replace(old, new)).decode("ascii")}})


@pytest.mark.parametrize("case", ["empty stream", "NUL in a mark", "long stream",
                                  "kind with a slash", "bad plan"])
def test_bad_stream_or_index_line_names_file_and_line(tmp_path: Path, case: str) -> None:
    """Like every bad line (docs/format.md): `FILE:LINE: reason`, exit 1,
    nothing of its chunk written."""
    line = _index_line(tmp_path)
    bad = {
        "empty stream": '{"event":{"stream":"","seq":1,"recorded_ns":5,"data":""}}',
        "NUL in a mark": '{"stream":{"name":"a\\u0000b","forgotten":3}}',
        "long stream": json.dumps(
            {"event": {"stream": "x" * 600, "seq": 1, "recorded_ns": 5, "data": ""}}),
        "kind with a slash": _blob(line, b"Noidx", b"No/dx"),
        "bad plan": _blob(line, struct.pack("<3I", 1, 2, 1), struct.pack("<3I", 0, 0, 0)),
    }[case]
    f = tmp_path / "bad.jsonl"
    f.write_text('{"pystore_dump":1,"format_version":2}\n'
                 '{"event":{"stream":"ok","seq":1,"recorded_ns":5,"data":""}}\n' + bad + "\n")
    dst = tmp_path / "dst"
    p = run("load", dst, f)
    assert p.returncode == 1, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert f"{f}:3: " in p.stderr
    with Store(dst, readonly=True) as s:
        assert s.streams() == [] and s.indexes() == []
