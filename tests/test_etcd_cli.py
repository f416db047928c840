"""The CLI on etcd URLs: every command takes ``etcd://...`` in place of PATH,
and dump/load carry a store between the backends both ways, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pystore import Store
from pystore.cli.main import main
from pystore.samples.agent_pb2 import Agent

if TYPE_CHECKING:
    pass


def _fill(s: Store) -> None:
    s.create_index("Agent", "by_model", field="model", msg_type=Agent)
    s.save_resources("Agent", [(f"a{i}", Agent(model=f"m{i}")) for i in range(60)])
    s.save_resource("Session", "s1", Agent(instructions="x" * 1000))
    s.set_history("Agent", 3)
    s.save_resource("Agent", "a1", Agent(model="second"))
    s.append_event("log", Agent(model="e1"))
    s.append_event("log", Agent(model="e2"))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def _records(dump: str) -> list[str]:
    """The dump without the lines that carry a store's own revisions."""
    return [ln for ln in dump.splitlines() if '"history"' not in ln]


def test_commands_on_a_url(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Store(url) as s:
        _fill(s)
    st = json.loads(_run(capsys, "--json", "stats", url))
    assert st["kinds"]["Agent"]["count"] == 60 and st["revision"] > 0
    assert json.loads(_run(capsys, "--json", "kinds", url)) == ["Agent", "Session"]
    assert "a1" in _run(capsys, "list", url, "Agent", "--ids")
    assert "second" in _run(capsys, "get", url, "Agent", "a1")
    assert "61 record(s) OK" in _run(capsys, "verify", url)
    assert _run(capsys, "events", url, "log").startswith("1\t")
    assert _run(capsys, "find", url, "Agent", "by_model", "m7").split() == ["a7"]
    assert '"model":"m7"' in _run(capsys, "--json", "find", url, "Agent", "by_model", "m7")
    assert "by_model" in _run(capsys, "indexes", url)
    assert "60 entries" in _run(capsys, "reindex", url, "Agent", "by_model")
    _run(capsys, "clean", url, "--kind", "Session", "--yes")
    with Store(url) as s:
        assert s.kinds() == ["Agent"]


def test_dump_load_lmdb_to_etcd_and_back(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, back = str(tmp_path / "src"), str(tmp_path / "back")
    with Store(src) as s:
        _fill(s)
    first = tmp_path / "1.jsonl"
    _run(capsys, "dump", src, "-o", str(first))
    _run(capsys, "load", url, str(first))
    second = tmp_path / "2.jsonl"
    _run(capsys, "dump", url, "-o", str(second))
    assert _records(first.read_text()) == _records(second.read_text())  # byte for byte
    _run(capsys, "load", back, str(second))
    third = tmp_path / "3.jsonl"
    _run(capsys, "dump", back, "-o", str(third))
    assert _records(third.read_text()) == _records(first.read_text())
    with Store(url) as e, Store(back) as b:
        for kind in ("Agent", "Session"):
            assert [(r.id, r.data, r.updated_ns) for r in e.iter_resources(kind)] == [
                (r.id, r.data, r.updated_ns) for r in b.iter_resources(kind)]
        assert [r.data for r in e.history("Agent", "a1")] == [
            r.data for r in b.history("Agent", "a1")]
        assert len(e.history("Agent", "a1")) == 2
        assert e.find_ids("Agent", "by_model", "m5") == b.find_ids("Agent", "by_model", "m5")


def test_backup_of_a_url_says_what_to_do(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(url) as s:
        s.save_resource("A", "1", Agent())
    assert main(["backup", url, str(tmp_path / "b")]) != 0
    assert "pystore dump" in capsys.readouterr().err


def test_upgrade_of_a_url_has_no_write_mode_to_switch(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(url) as s:
        s.save_resource("A", "1", Agent())
    assert "revision" in _run(capsys, "upgrade", url)
    assert main(["upgrade", "--writemap", url]) == 1
    assert "etcd store has no write mode" in capsys.readouterr().err


def test_dump_of_a_url_keeps_kinds_without_records(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As on LMDB: a kind whose resources were all deleted keeps its keep
    # count, kept versions and schema through dump -> load; so does a kind
    # given a keep count before any write.
    from pystore.samples.session_pb2 import Session

    with Store(url) as s:
        s.set_history("Gone", 3)
        s.save_resource("Gone", "g1", Session(agent_id="v1"))
        s.save_resource("Gone", "g1", Session(agent_id="v2"))
        s.delete_resource("Gone", "g1")
        s.set_history("Empty", 2)
        s.save_resource("Live", "l", Session(agent_id="l"))
        before = [(r.data, r.updated_ns) for r in s.history("Gone", "g1")]
    assert len(before) == 2
    out = tmp_path / "d.jsonl"
    _run(capsys, "dump", url, "-o", str(out))
    text = out.read_text()
    assert '"kind":"Gone","type":"pystore.samples.Session"' in text
    dst = tmp_path / "lmdb"
    _run(capsys, "load", str(dst), str(out))
    with Store(dst, readonly=True) as c:
        assert c.history_keep("Gone") == 3 and c.history_keep("Empty") == 2
        assert [(r.data, r.updated_ns) for r in c.history("Gone", "g1")] == before
