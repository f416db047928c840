"""The ``pystore`` console script, run as a real process.

Every read command is also run against a store that another process holds
open and keeps writing (growing its map), as operators will use it.
"""

from __future__ import annotations

import base64
import json
import os
import pty
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from busy_writer import busy_writer
from support import make_agent

import pystore
from pystore.samples import agent_pb2, session_pb2

PYSTORE = str(Path(sys.executable).parent / "pystore")


def run(*args: object, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYSTORE, *map(str, args)], input=input, capture_output=True, text=True, timeout=120
    )


def one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("pystore: "), p.stderr
    assert "Traceback" not in p.stderr
    return p.stderr


@pytest.fixture
def filled(store_path: Path) -> Path:
    with pystore.Store(store_path, sync=False) as s:
        s.save_resources("Agent", [(f"agt-{i:03d}", make_agent(i)) for i in range(40)])
        s.save_resource("Session", "s-1", session_pb2.Session(agent_id="agt-001"))
        s.save_resource("Session", "s-ü", session_pb2.Session(agent_id="unicode id"))
        # a record no schema describes exactly: unknown fields, kept as is
        s._put_raw("Raw", "r1", b"\x08\x96\x01\x12\x03abc\xf8\x3f\x01", 123_456_789)
        s._put_raw("Raw", "empty", b"", -5)
    return store_path


@pytest.fixture
def busy(filled: Path) -> Iterator[Path]:
    """``filled``, held open for writing by another process that keeps writing."""
    with busy_writer(filled):
        yield filled


def records(path: Path) -> dict[tuple[str, str], tuple[bytes, int]]:
    out = {}
    with pystore.Store(path, readonly=True) as s:
        for kind in s.kinds():
            for r in s.iter_resources(kind):
                out[(kind, r.id)] = (r.data, r.updated_ns)
    return out


# -- read commands against a store being written ---------------------------------


def test_stats_json_and_text(busy: Path) -> None:
    p = run("--json", "stats", busy)
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    assert st["format_version"] == 2 and st["revision"] >= 1
    assert st["map_size"] > 0 and st["used_bytes"] > 0
    assert st["kinds"]["Agent"] == {"count": 40, "type": "pystore.samples.Agent"}
    assert st["kinds"]["Raw"] == {"count": 2, "type": None}
    text = run("stats", busy)
    assert text.returncode == 0
    assert "format version  2" in text.stdout and "pystore.samples.Session" in text.stdout
    assert re.search(r"^revision +[1-9]", text.stdout, re.M)
    assert json.loads(run("stats", "--json", busy).stdout)["kinds"]["Session"]["count"] == 2


def test_kinds_sorted_one_per_line(busy: Path) -> None:
    p = run("kinds", busy)
    assert p.returncode == 0
    kinds = p.stdout.splitlines()
    assert kinds == sorted(kinds) and {"Agent", "Session", "Raw", "Pair"} <= set(kinds)


def test_list_ids_limit_after_and_json(busy: Path) -> None:
    p = run("list", busy, "Agent", "--ids", "--limit", 3, "--after", "agt-010")
    assert p.returncode == 0 and p.stdout.splitlines() == ["agt-011", "agt-012", "agt-013"]
    p = run("list", busy, "Agent", "--limit", 2)
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["agt-000", "agt-001"]
    assert rows[1]["message"]["metadata"]["name"] == "Agent 1"
    assert "org_id" not in json.dumps(rows)  # stripped before it was saved
    assert run("list", busy, "Nothing").stdout == ""


def test_get_decodes_without_generated_code(busy: Path) -> None:
    p = run("get", busy, "Session", "s-ü")
    assert p.returncode == 0, p.stderr
    obj = json.loads(p.stdout)
    assert obj["kind"] == "Session" and obj["id"] == "s-ü"
    assert obj["message"] == {"agent_id": "unicode id"}
    assert obj["updated_at"].endswith("Z") and isinstance(obj["updated_ns"], int)
    raw = json.loads(run("get", busy, "Raw", "r1").stdout)
    assert raw["message"] is None and base64.b64decode(raw["data"]).startswith(b"\x08\x96")


def test_get_missing_is_exit_1(busy: Path) -> None:
    p = run("get", busy, "Agent", "nope")
    assert p.returncode == 1
    assert "Agent/nope" in one_line_error(p)


def test_dump_is_a_consistent_snapshot_while_written(busy: Path, tmp_path: Path) -> None:
    out = tmp_path / "dump.jsonl"
    p = run("dump", busy, "-o", out)
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == {"pystore_dump": 1, "format_version": 2}
    pair = {r["id"]: r["message"]["model"] for r in lines if r.get("kind") == "Pair"}
    assert pair["left"] == pair["right"]  # one read transaction
    assert sum(1 for r in lines if r.get("kind") == "Agent") == 40


def test_verify_and_backup_while_written(busy: Path, tmp_path: Path) -> None:
    p = run("verify", busy)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "OK" in p.stdout
    dest = tmp_path / "bk"
    p = run("backup", busy, dest)
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert run("verify", dest).returncode == 0
    with pystore.Store(dest, readonly=True) as copy:
        assert copy.count("Agent") == 40
    again = run("backup", busy, dest)
    assert again.returncode == 1 and "not empty" in one_line_error(again)


def test_clean_and_load_while_another_process_writes(busy: Path, tmp_path: Path) -> None:
    p = run("clean", busy, "--kind", "Agent", "--yes")
    assert p.returncode == 0 and "deleted 40" in p.stdout
    src = tmp_path / "one.jsonl"
    src.write_text(json.dumps({"kind": "Agent", "id": "back", "data": "", "updated_ns": 5}) + "\n")
    assert run("load", busy, src).returncode == 0
    with pystore.Store(busy, readonly=True) as s:
        assert [(r.id, r.data, r.updated_ns) for r in s.iter_resources("Agent")] == [
            ("back", b"", 5)]


# -- dump / load ----------------------------------------------------------------


def test_dump_load_round_trip_is_byte_for_byte(filled: Path, tmp_path: Path) -> None:
    dump = run("dump", filled)
    assert dump.returncode == 0 and dump.stderr == ""
    src = tmp_path / "all.jsonl"
    src.write_text(dump.stdout, encoding="utf-8")
    target = tmp_path / "copy"
    p = run("load", target, src)
    assert p.returncode == 0, p.stderr
    assert "loaded 44 resource(s) and 2 schema(s)" in p.stdout
    assert records(target) == records(filled)  # payload bytes and updated_ns
    again = run("dump", target)
    assert again.stdout == dump.stdout
    with pystore.Store(filled, readonly=True) as a, pystore.Store(target, readonly=True) as b:
        for kind in ("Agent", "Session", "Raw"):
            assert a._schema_of(kind) == b._schema_of(kind)


def test_dump_load_dump_with_history_differs_only_in_history_revisions(
    tmp_path: Path
) -> None:
    # docs/cli.md: dump, load, dump | cmp is identical, but for the
    # revision labels of kept versions (a loaded store takes its own)
    src = tmp_path / "src"
    with pystore.Store(src, sync=False) as s:
        s.save_resource("Other", "o", agent_pb2.Agent())  # shifts the revisions
        s.set_history("Agent", 3)
        for i in range(3):
            s.save_resource("Agent", "a", agent_pb2.Agent(model=str(i)))
    dump = tmp_path / "store.jsonl"
    assert run("dump", src, "-o", dump).returncode == 0
    assert run("load", tmp_path / "restored", dump).returncode == 0
    again = run("dump", tmp_path / "restored")
    assert again.returncode == 0
    first, second = dump.read_text().splitlines(), again.stdout.splitlines()
    assert len(first) == len(second)
    revisions = 0
    for a, b in zip(first, second, strict=True):
        if a != b:
            ja, jb = json.loads(a), json.loads(b)
            assert ja["history"].pop("revision") != jb["history"].pop("revision")
            assert ja == jb
            revisions += 1
    assert revisions == 2  # the two kept versions


def test_load_in_chunks_from_stdin_and_kind_filter(filled: Path, tmp_path: Path) -> None:
    with pystore.Store(filled, sync=False) as s:
        s.save_resources("Bulk", [(f"b{i:05d}", agent_pb2.Agent(model=str(i)))
                                  for i in range(2500)])
    dump = run("dump", filled, "--kind", "Bulk")
    kinds = {json.loads(line).get("kind") for line in dump.stdout.splitlines()[1:]}
    assert kinds == {"Bulk", None}  # None: the schema line
    p = run("load", tmp_path / "t", "-", input=dump.stdout)
    assert p.returncode == 0, p.stderr
    got = records(tmp_path / "t")
    assert len(got) == 2500 and got == {k: v for k, v in records(filled).items() if k[0] == "Bulk"}


def test_load_encodes_a_hand_written_message_with_the_stored_schema(
    filled: Path, tmp_path: Path
) -> None:
    src = tmp_path / "hand.jsonl"
    src.write_text(json.dumps({"kind": "Session", "id": "new", "message": {"agent_id": "z"},
                               "updated_at": "2026-01-02T03:04:05.000000007Z"}) + "\n")
    assert run("load", filled, src).returncode == 0
    with pystore.Store(filled, readonly=True) as s:
        r = s.get_record("Session", "new")
        assert session_pb2.Session.FromString(r.data).agent_id == "z"
        assert r.updated_ns % 1_000_000_000 == 7


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("not json\n", "bad.jsonl:1: not JSON"),
        ('{"kind": "A"}\n', "bad.jsonl:1: 'id' must be a str"),
        ('{"kind": "A", "id": "x", "data": "!!"}\n', "not valid base64"),
        ('\n{"kind": "A/B", "id": "x", "data": ""}\n', "bad.jsonl:2: A/B/x: kind contains"),
        ('{"kind": "A", "id": "x", "data": "", "updated_ns": 9223372036854775808}\n',
         "bad.jsonl:1: 'updated_ns' must fit"),
        ('{"kind": "Nope", "id": "x", "message": {}}\n', "no schema for kind 'Nope'"),
        ('{"pystore_dump": 99}\n', "unsupported dump version"),
    ],
)
def test_load_rejects_bad_input_with_file_and_line(
    filled: Path, tmp_path: Path, content: str, needle: str
) -> None:
    before = records(filled)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    p = run("load", filled, bad)
    assert p.returncode == 1
    assert needle in one_line_error(p)
    assert records(filled) == before


# -- clean, verify, errors ------------------------------------------------------------


def test_clean_asks_unless_yes(filled: Path) -> None:
    no = run("clean", filled, "--kind", "Agent", input="n\n")
    assert no.returncode == 1 and "[y/N]" in no.stderr
    assert pystore.Store(filled, readonly=True).count("Agent") == 40
    eof = run("clean", filled, "--kind", "Agent", input="")
    assert eof.returncode == 1
    yes = run("clean", filled, "--kind", "Agent", input="y\n")
    assert yes.returncode == 0 and "deleted 40" in yes.stdout
    p = run("clean", filled, "--kind", "Session", "--yes")
    assert p.returncode == 0 and "deleted 2" in p.stdout and p.stderr == ""
    with pystore.Store(filled, readonly=True) as s:
        assert s.kinds() == ["Raw"]


def test_verify_fails_on_a_payload_that_does_not_decode(filled: Path) -> None:
    with pystore.Store(filled) as s:
        s._put_raw("Agent", "agt-bad", b"\x0a\xff\xff\xff\x0f", 1)  # length past the end
    p = run("verify", filled)
    assert p.returncode == 1
    assert "BAD Agent/agt-bad" in p.stdout and "1 problem" in p.stdout


def _damage_header(data: Path, marker: bytes) -> None:
    """Set the format-version byte of the record whose payload holds ``marker``
    (in every copy of its page: LMDB leaves older copies in free pages)."""
    raw = bytearray(data.read_bytes())
    at = raw.find(marker)
    assert at >= 0
    while at >= 0:
        header = at - 2 - 20  # tag and length of field 2, then the 20-byte record header
        assert raw[header] == 2  # format version byte
        raw[header] = 0x7F
        at = raw.find(marker, at + 1)
    data.write_bytes(bytes(raw))


def test_verify_names_each_damaged_header_and_goes_on(filled: Path) -> None:
    ids = ["s-0", "s-2", "s-2\u00e9x", "s-3", "s-zz"]  # s-1 and s-\u00fc exist already
    with pystore.Store(filled) as s:
        for i in ids:
            s.save_resource("Session", i, session_pb2.Session(agent_id=f"marker-{i}-end"))
    damaged = ("s-0", "s-2", "s-3", "s-zz")  # the first, one alone, two in a row
    for i in damaged:
        _damage_header(filled / "data.mdb", f"marker-{i}-end".encode())
    p = run("verify", filled)
    assert p.returncode == 1
    bad = [line for line in p.stdout.splitlines() if line.startswith("BAD")]
    assert bad == [f"BAD Session/{i}: damaged record header (format version 127, expected 2)"
                   for i in damaged]
    assert "4 problem(s) in 49 record(s)" in p.stdout
    dump = run("dump", filled)
    assert dump.returncode == 1 and "damaged header" in one_line_error(dump)


def test_missing_store_is_never_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    for args in (["stats"], ["kinds"], ["list", "Agent"], ["get", "A", "b"], ["dump"],
                 ["verify"], ["backup"], ["clean", "--kind", "A", "--yes"]):
        cmd = [args[0], missing, *args[1:]]
        if args[0] == "backup":
            cmd.append(tmp_path / "dest")
        p = run(*cmd)
        assert p.returncode == 1, (args, p.stderr)
        assert "no store at" in one_line_error(p)
    assert not missing.exists() and not (tmp_path / "dest").exists()


@pytest.mark.parametrize(
    "args",
    [[], ["stats"], ["nosuch", "x"], ["list", "p"], ["list", "p", "K", "--limit", "-1"],
     ["clean", "p"], ["get", "p", "K"], ["stats", "p", "--bogus"],
     ["watch", "p", "--after", "-1"], ["watch", "p", "--after", str(2**64)]],
)
def test_usage_errors_exit_2_with_one_line(args: list[str]) -> None:
    p = run(*args)
    assert p.returncode == 2
    one_line_error(p)


@pytest.mark.parametrize(
    "args",
    [["list", "{p}", "A/B"], ["watch", "{p}", "--kind", "A/B"], ["watch", "{p}", "--kind", ""],
     ["dump", "{p}", "--kind", "A/B"], ["find", "{p}", "A/B", "i", "v"],
     ["clean", "{p}", "--kind", "A/B", "--yes"], ["get", "{p}", "Agent", ""]],
)
def test_bad_kind_is_a_usage_error(filled: Path, args: list[str]) -> None:
    # docs/cli.md: "2 usage error (including a malformed kind or id)", for
    # every command that takes a kind (watch's --kind exited 1)
    p = run(*[a.format(p=filled) for a in args])
    assert p.returncode == 2, p.stderr
    one_line_error(p)


def test_not_a_store_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus"
    bogus.mkdir()
    (bogus / "data.mdb").write_bytes(b"\0" * 8192)
    p = run("stats", bogus)
    assert p.returncode == 1
    one_line_error(p)


def test_python_dash_m_and_demo(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "pystore", "demo", tmp_path / "demo"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert run("kinds", tmp_path / "demo").stdout.split() == ["Agent", "Session", "Workflow"]
    for line in ("find_one by the unique slug index -> 'Agent 3'",
                 "a stale conditional save is refused: conflict on Agent/agent-3",
                 "Workflow/wf-1 history: 2 version(s)",
                 "appended 2 event(s); a retried batch added only 1 (last seq 3)"):
        assert line in p.stdout, p.stdout
    # a second run on the same store works too (the index exists, events are seen)
    again = subprocess.run([sys.executable, "-m", "pystore", "demo", tmp_path / "demo"],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "a retried batch added only 0 (last seq 3)" in again.stdout
    with pystore.Store(tmp_path / "demo", readonly=True) as s:
        assert s.history("Workflow", "wf-1")[0].revision == s.get_record(
            "Workflow", "wf-1").revision
        assert s.find_ids("Agent", "slug", "agent-1") == ["agent-1"]


def test_pipe_closed_early_is_quiet(filled: Path) -> None:
    p = subprocess.run(f"'{PYSTORE}' dump '{filled}' | head -c 10 >/dev/null; "
                       "echo rc=${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
                       capture_output=True, text=True, timeout=60)
    assert "Traceback" not in p.stderr and "Exception" not in p.stderr


# -- progress: on a terminal only -------------------------------------------------------


def _stderr_on_a_pty(args: list[object]) -> tuple[int, bytes]:
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([PYSTORE, *map(str, args)], stdout=subprocess.DEVNULL,
                                stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        return proc.wait(timeout=120), b"".join(chunks)
    finally:
        os.close(master)


def test_progress_bar_on_a_terminal_only(filled: Path, tmp_path: Path) -> None:
    code, err = _stderr_on_a_pty(["dump", filled, "-o", tmp_path / "d.jsonl"])
    assert code == 0
    assert b"dump [" in err and b"%" in err
    piped = run("dump", filled, "-o", tmp_path / "e.jsonl")
    assert "[" not in piped.stderr and "%" not in piped.stderr
    code, err = _stderr_on_a_pty(["verify", filled])
    assert code == 0 and b"verify [" in err


@pytest.mark.parametrize("content", ["not json\n", "\n\n{truncated\n", "\x00\x01garbage"])
def test_load_of_a_file_that_is_no_dump_creates_no_store(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    target = tmp_path / "new-store"
    p = run("load", target, bad)
    assert p.returncode == 1
    assert "bad.jsonl:" in one_line_error(p) and "not JSON" in one_line_error(p)
    assert not target.exists()
    p = run("load", target, "-", input=content)  # from stdin alike
    assert p.returncode == 1 and not target.exists()


@pytest.mark.parametrize("content", ["", "\n \n"])
def test_load_of_an_empty_input_creates_no_store(tmp_path: Path, content: str) -> None:
    # docs/cli.md: "a file that is no dump creates no store"; an empty input
    # (a failed `pystore dump ... |`) is none: it created an empty store, exit 0
    empty = tmp_path / "empty.jsonl"
    empty.write_text(content)
    target = tmp_path / "new-store"
    for args, stdin in (((target, empty), None), ((target, "-"), content)):
        p = run("load", *args, input=stdin)
        assert p.returncode == 1
        assert "empty" in one_line_error(p) and "no dump" in one_line_error(p)
        assert not target.exists()
