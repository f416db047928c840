"""The CLI's --version, --json everywhere, delete, permission problems, closed
pipes and the space figures of stats: each run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import unprivileged_argv

import pystore
from pystore.samples.agent_pb2 import Agent

PYSTORE = str(Path(sys.executable).parent / "pystore")


def run(*args: object, input: str | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYSTORE, *map(str, args)], input=input, capture_output=True,
                          text=True, timeout=120, **kw)  # type: ignore[call-overload]


@pytest.fixture
def filled(store_path: Path) -> Path:
    with pystore.Store(store_path, sync=False) as s:
        s.save_resources("Agent", [(f"a{i:04d}", Agent(model="x" * 200)) for i in range(2000)])
    return store_path


def test_version() -> None:
    p = run("--version")
    assert p.returncode == 0 and p.stdout.strip() == (
        f"pystore {pystore.__version__} (distribution pystore-lmdb)")


def test_delete(filled: Path) -> None:
    p = run("delete", filled, "Agent", "a0001")
    assert p.returncode == 0 and "deleted Agent/a0001" in p.stdout
    p = run("delete", filled, "Agent", "a0001")
    assert p.returncode == 1 and p.stderr.startswith("pystore: not found") and p.stdout == ""
    assert "Agent/a0001" in p.stderr and p.stderr.count("\n") == 1
    with pystore.Store(filled, readonly=True) as s:
        assert not s.exists("Agent", "a0001") and s.count("Agent") == 1999
    assert run("delete", filled.parent / "nowhere", "Agent", "x").returncode == 1
    assert not (filled.parent / "nowhere").exists()


def _json_docs(text: str, lines: bool) -> list[object]:
    if lines:
        return [json.loads(ln) for ln in text.splitlines()]
    return [json.loads(text)]


@pytest.mark.parametrize(("args", "lines"), [
    (["stats", "{p}"], False),
    (["kinds", "{p}"], False),
    (["list", "{p}", "Agent", "--limit", "3"], True),
    (["list", "{p}", "Agent", "--ids", "--limit", "3"], True),
    (["get", "{p}", "Agent", "a0002"], False),
    (["dump", "{p}", "--kind", "Agent"], True),
    (["verify", "{p}"], False),
    (["backup", "{p}", "{t}/bk"], False),
    (["delete", "{p}", "Agent", "a0003"], False),
    (["clean", "{p}", "--kind", "Agent", "--yes"], False),
    (["load", "{t}/loaded", "{t}/dump.jsonl"], False),
    (["demo", "{t}/demo"], False),
])
def test_json_is_honoured_by_every_command(filled: Path, tmp_path: Path, args: list[str],
                                           lines: bool) -> None:
    run("dump", filled, "-o", tmp_path / "dump.jsonl")
    argv = [a.format(p=filled, t=tmp_path) for a in args]
    p = run("--json", *argv)
    assert p.returncode == 0, p.stderr
    docs = _json_docs(p.stdout, lines)
    assert docs, p.stdout
    if argv[0] == "kinds":
        assert docs == [["Agent"]]
    if argv[0] == "list" and "--ids" in argv:
        assert docs == ["a0000", "a0001", "a0002"]
    if argv[0] == "delete":
        assert docs == [{"deleted": True, "kind": "Agent", "id": "a0003"}]
    if argv[0] == "clean":
        assert docs == [{"kind": "Agent", "deleted": 2000}]
    if argv[0] == "verify":
        assert docs[0]["checked"] == 2000 and docs[0]["problems"] == 0  # type: ignore[index]


def test_stats_space_figures(filled: Path, tmp_path: Path) -> None:
    with pystore.Store(filled, sync=False) as s:
        for i in range(0, 2000, 3):
            s.delete_resource("Agent", f"a{i:04d}")
    st = json.loads(run("--json", "stats", filled).stdout)
    assert st["file_bytes"] == os.path.getsize(filled / "data.mdb")
    assert 0 < st["data_bytes"] < st["file_bytes"]
    assert st["reclaimable_bytes"] == st["file_bytes"] - st["data_bytes"] > 0
    # the definition: what a compacted backup writes
    assert run("backup", filled, tmp_path / "bk").returncode == 0
    assert os.path.getsize(tmp_path / "bk" / "data.mdb") == st["data_bytes"]
    text = run("stats", filled).stdout
    assert "live data" in text and "compacted backup would save" in text


@pytest.mark.parametrize("cmd", [
    ["list", "{p}", "Agent"], ["list", "{p}", "Agent", "--ids"], ["dump", "{p}"],
    ["--json", "list", "{p}", "Agent"],
])
def test_closed_pipe_ends_quietly_with_status_0(filled: Path, cmd: list[str]) -> None:
    argv = " ".join(f"'{a.format(p=filled)}'" for a in cmd)
    p = subprocess.run(f"'{PYSTORE}' {argv} | head -n 2 >/dev/null; echo rc=${{PIPESTATUS[0]}}",
                       shell=True, executable="/bin/bash", capture_output=True, text=True,
                       timeout=120)
    assert p.stdout.strip() == "rc=0", (p.stdout, p.stderr)
    assert p.stderr == "", p.stderr


# -- permission problems: as a user that may not open the store ---------------
#
# Root would read anything: it runs the command with CAP_DAC_OVERRIDE and
# CAP_DAC_READ_SEARCH dropped (setpriv), so file modes apply to it as to any
# other user; the store is made unreadable with chmod.


@pytest.fixture
def private_store(tmp_path: Path) -> Iterator[Path]:
    with pystore.Store(tmp_path / "s", sync=False) as s:
        s.save_resource("Agent", "a", Agent())
    yield tmp_path / "s"
    for p in (tmp_path / "s", tmp_path / "s" / "data.mdb", tmp_path / "s" / "lock.mdb"):
        p.chmod(0o700 if p.is_dir() else 0o600)


@pytest.mark.parametrize("mode", ["dir", "data", "lock"])
@pytest.mark.parametrize("cmd", [["stats"], ["kinds"], ["list", "Agent"], ["get", "Agent", "a"],
                                 ["delete", "Agent", "a"], ["dump"], ["verify"]])
def test_permission_problem_says_so(private_store: Path, mode: str, cmd: list[str]) -> None:
    prefix = unprivileged_argv()
    target = {"dir": private_store, "data": private_store / "data.mdb",
              "lock": private_store / "lock.mdb"}[mode]
    target.chmod(0)
    p = subprocess.run([*prefix, PYSTORE, cmd[0], str(private_store), *cmd[1:]],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert p.stderr.startswith("pystore: permission denied"), p.stderr
    assert "no store" not in p.stderr and p.stderr.count("\n") == 1
    target.chmod(0o700 if target.is_dir() else 0o600)
    with pystore.Store(private_store, readonly=True) as s:  # untouched
        assert s.exists("Agent", "a")


@pytest.mark.parametrize("mode", ["dir", "data", "lock"])
def test_load_into_a_store_it_may_not_open_says_permission_denied(
    private_store: Path, tmp_path: Path, mode: str
) -> None:
    # docs/cli.md, "Permissions": `pystore: permission denied: cannot open
    # the store at PATH ...`, also for load (it said "error: open ...")
    prefix = unprivileged_argv()
    dump = tmp_path / "d.jsonl"
    assert subprocess.run([PYSTORE, "dump", str(private_store), "-o", str(dump)],
                          capture_output=True, timeout=120).returncode == 0
    target = {"dir": private_store, "data": private_store / "data.mdb",
              "lock": private_store / "lock.mdb"}[mode]
    target.chmod(0)
    p = subprocess.run([*prefix, PYSTORE, "load", str(private_store), str(dump)],
                       capture_output=True, text=True, timeout=120)
    target.chmod(0o700 if target.is_dir() else 0o600)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert p.stderr.startswith("pystore: permission denied: cannot open the store at"), p.stderr
    assert p.stderr.count("\n") == 1
