"""Issue 8, items 7 and 12: hostile dump files for `pystore load`, and a
store path under a regular file."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

import pystore
from pystore import Store
from pystore._lmdb.schema import descriptor_set
from pystore.cli.main import main
from pystore.samples.agent_pb2 import Agent


def _schema_line(kind: str = "Agent") -> str:
    fds = descriptor_set(Agent.DESCRIPTOR)
    return json.dumps({"schema": {"kind": kind, "type": Agent.DESCRIPTOR.full_name,
                                  "descriptor_set": base64.b64encode(fds).decode()}})


def _load(tmp_path: Path, lines: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    rc = main(["load", str(tmp_path / "store"), str(src)])
    return rc, capsys.readouterr().err


def test_load_message_strips_tenancy_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    msg = {"metadata": {"id": "a1", "org_id": "org-9", "project_id": "p-9"},
           "skills": [{"kind": "Skill", "id": "s", "org_id": "org-9"}], "model": "m"}
    rc, err = _load(tmp_path, [_schema_line(),
                               json.dumps({"kind": "Agent", "id": "a1", "message": msg})], capsys)
    assert rc == 0, err
    with Store(tmp_path / "store", readonly=True) as s:
        raw = s.get_bytes("Agent", "a1")
        got = Agent.FromString(raw)
    assert got.model == "m" and got.metadata.id == "a1"
    assert got.metadata.org_id == "" and got.metadata.project_id == ""
    assert got.skills[0].org_id == ""
    assert b"org-9" not in raw and b"p-9" not in raw


@pytest.mark.parametrize(
    "line, needle",
    [
        (json.dumps({"kind": "Agent", "id": "x", "updated_at": "9999-12-31T23:59:59Z",
                     "data": ""}), "updated_at"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"kind": "Agent", "id": "x", "message": ' + '{"a":' * 50_000 + "1" + "}" * 50_000
         + "}", "nested too deeply"),
        (_schema_line("Bad\udc80Kind"), "schema"),
        (_schema_line("Bad/Kind"), "schema"),
        (_schema_line(""), "schema"),
    ],
    ids=["updated_at-range", "deep-json", "deep-message", "surrogate-kind", "slash-kind",
         "empty-kind"],
)
def test_load_errors_name_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, needle: str
) -> None:
    lines = [json.dumps({"pystore_dump": 1, "format_version": 1}), _schema_line(), line]
    rc, err = _load(tmp_path, lines, capsys)
    assert rc == 1, err
    assert "in.jsonl:3: " in err, err
    assert needle in err, err
    assert "Traceback" not in err and "internal error" not in err, err


def test_store_under_a_regular_file_is_a_store_error(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(pystore.StoreOSError) as info:
        Store(f / "sub")
    assert info.value.errno == 20  # ENOTDIR
    with pytest.raises(pystore.StoreError):
        Store(f)
