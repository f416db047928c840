"""A store written by format 1 (tests/fixtures/format1) opens with format 2."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pystore import IncompatibleStoreError, Store
from pystore.samples.agent_pb2 import Agent

FIXTURE = Path(__file__).parent / "fixtures" / "format1"


def _copy(tmp_path: Path) -> Path:
    dest = tmp_path / "v1"
    dest.mkdir()
    shutil.copy(FIXTURE / "data.mdb", dest / "data.mdb")
    return dest


def _expected() -> dict[tuple[str, str], tuple[bytes, int]]:
    out = {}
    for line in (FIXTURE / "dump.jsonl").read_text().splitlines():
        obj = json.loads(line)
        if "kind" in obj:
            out[(obj["kind"], obj["id"])] = (base64.b64decode(obj["data"]), obj["updated_ns"])
    return out


def test_readonly_open_is_refused_with_the_fix_and_changes_nothing(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    digest = hashlib.sha256((path / "data.mdb").read_bytes()).hexdigest()
    with pytest.raises(IncompatibleStoreError) as info:
        Store(path, readonly=True)
    assert "without readonly=True" in str(info.value) and "pystore upgrade" in str(info.value)
    assert hashlib.sha256((path / "data.mdb").read_bytes()).hexdigest() == digest


def test_writable_open_upgrades_in_place_and_loses_nothing(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    expected = _expected()
    assert len(expected) == 27
    with Store(path) as s:
        assert s.stats().format_version == 2 and s.revision() == 1
        got = {(k, r.id): (r.data, r.updated_ns) for k in s.kinds() for r in s.iter_resources(k)}
        assert got == expected
        assert {r.revision for k in s.kinds() for r in s.iter_resources(k)} == {1}
        assert s.get_resource("Agent", "ünïcode/ïd", Agent).model == "u"
        assert s.changes() == []
        assert s.save_resource("Agent", "agt-00", Agent(model="new")) == 2
    with Store(path, readonly=True) as ro:  # now readable read-only too
        assert ro.revision() == 2 and ro.count("Agent") == 21


def test_cli_upgrade_then_dump_matches(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    cli = [sys.executable, "-m", "pystore"]
    p = subprocess.run([*cli, "stats", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "upgrade" in p.stderr and len(p.stderr.splitlines()) == 1
    p = subprocess.run([*cli, "upgrade", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "format version 2" in p.stdout, p.stderr
    p = subprocess.run([*cli, "dump", str(path)], capture_output=True, text=True, timeout=60)
    got = [json.loads(x) for x in p.stdout.splitlines()[1:]]
    want = [json.loads(x) for x in (FIXTURE / "dump.jsonl").read_text().splitlines()[1:]]
    assert got == want
