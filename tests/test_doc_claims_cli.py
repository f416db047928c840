"""Claims of docs/cli.md (and the README's command-line section) that no
other test held to: each run against the real console script, on real
stores, as an operator would run it.

Each test names the sentence it holds the code to.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from index_types import All

import pystore
from pystore.samples.agent_pb2 import Agent

PYSTORE = str(Path(sys.executable).parent / "pystore")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def run(*args: object, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYSTORE, *map(str, args)], input=input, capture_output=True,
                          text=True, timeout=120)


def one_line_error(p: subprocess.CompletedProcess[str]) -> str:
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("pystore: "), p.stderr
    assert "Traceback" not in p.stderr
    return p.stderr


# -- watch ---------------------------------------------------------------------


def test_watch_after_a_trimmed_revision_is_exit_1_compacted(store_path: Path) -> None:
    # cli.md, watch: "`--after N` first replays every change with a revision
    # above N (exit 1, "compacted", if the log no longer holds them)"
    with pystore.Store(store_path, sync=False, keep_changes=8) as s:
        for i in range(30):
            s.save_resource("A", str(i), Agent())
        assert s.changes(25)  # the newest are kept
    p = run("watch", store_path, "--after", 1)
    assert p.returncode == 1 and p.stdout == ""
    assert "compacted" in one_line_error(p)


def _watcher(store_path: Path, as_json: bool) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """``pystore watch`` in a process, its lines in a queue ("" at its end)."""
    p = subprocess.Popen([PYSTORE, *(["--json"] if as_json else []), "watch", str(store_path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert p.stdout is not None
        for line in p.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    return p, lines


@pytest.mark.parametrize(("as_json", "sig"), [(False, signal.SIGINT), (True, signal.SIGINT),
                                              (False, signal.SIGTERM)])
def test_watch_starts_now_prints_each_op_as_documented_and_ends_quietly(
    store_path: Path, as_json: bool, sig: signal.Signals
) -> None:
    # cli.md, watch: "Without --after it starts at the current revision";
    # text "REVISION  OP  KIND/ID  UPDATED_AT (KIND for delete_kind,
    # KIND/PREFIX for delete_prefix, STREAM#SEQ for an event append)";
    # JSON {"revision", "op", "kind", "id", "updated_at"} ("id null for
    # delete_kind; an append has kind and id null and also stream and seq");
    # "Ctrl-C or SIGTERM end it quietly with exit 0".
    def is_ping(line: str) -> bool:
        return (json.loads(line)["kind"] == "Ping") if as_json else line.split()[2] == "Ping/p"

    with pystore.Store(store_path, sync=False) as s:
        s.save_resource("A", "before", Agent())
        s.delete_resource("A", "before")
        start = s.revision()
        p, q = _watcher(store_path, as_json)
        try:
            # The watcher is up once it prints a ping: nothing before `start`
            # is replayed, so its first line is a ping, never "before".
            first = ""
            deadline = time.monotonic() + 30
            while not first and time.monotonic() < deadline:
                s.save_resource("Ping", "p", Agent())
                with contextlib.suppress(queue.Empty):
                    first = q.get(timeout=0.05)
            assert first and is_ping(first), first
            pings = [first]
            last_ping = s.revision()
            s.save_resource("A", "x", Agent())
            s.delete_resource("A", "x")
            s.save_resource("A", "tmp-1", Agent())
            s.delete_resources_by_prefix("A", "tmp-")
            s.save_resource("A", "y", Agent())
            s.delete_resources_by_kind("A")
            s.append_events("st", [(7, Agent())])
            end = s.revision()
            lines: list[str] = []
            while len(lines) < 7:
                line = q.get(timeout=30)
                assert line, "the watcher ended early"
                (pings if is_ping(line) else lines).append(line)
        finally:
            p.send_signal(sig)
            _, err = p.communicate(timeout=30)
    assert p.returncode == 0 and err == ""
    # nothing from before it opened; every ping after its first one
    revs = [int(json.loads(x)["revision"] if as_json else x.split()[0]) for x in pings]
    assert start < revs[0] and revs == list(range(revs[0], last_ping + 1))
    want = [("put", "A", "x"), ("delete", "A", "x"), ("put", "A", "tmp-1"),
            ("delete_prefix", "A", "tmp-"), ("put", "A", "y"), ("delete_kind", "A", None),
            ("append", None, None)]
    if as_json:
        rows = [json.loads(line) for line in pings + lines]
        for row in rows:
            keys = {"revision", "op", "kind", "id", "updated_at"}
            assert set(row) == (keys | {"stream", "seq"} if row["op"] == "append" else keys)
            assert STAMP.match(row["updated_at"]), row
        tail = rows[len(pings):]
        assert [(r["op"], r["kind"], r["id"]) for r in tail] == want
        assert (tail[-1]["stream"], tail[-1]["seq"]) == ("st", 7)
        assert [r["revision"] for r in tail] == list(range(last_ping + 1, end + 1))
    else:
        cols = [line.split() for line in pings + lines]
        assert all(len(c) == 4 and STAMP.match(c[3]) for c in cols), cols
        tail = cols[len(pings):]
        assert [(c[1], c[2]) for c in tail] == [
            ("put", "A/x"), ("delete", "A/x"), ("put", "A/tmp-1"), ("delete_prefix", "A/tmp-"),
            ("put", "A/y"), ("delete_kind", "A"), ("append", "st#7")]
        assert [int(c[0]) for c in tail] == list(range(last_ping + 1, end + 1))


# -- load --------------------------------------------------------------------------


def _records_file(path: Path, n: int, size: int = 0, bad_after: bool = False) -> Path:
    lines = [json.dumps({"pystore_dump": 1, "format_version": 2})]
    data = base64.b64encode(b"\x0a" + b"x" * size).decode() if size else ""
    lines += [json.dumps({"kind": "A", "id": f"{i:05d}", "data": data, "updated_ns": i})
              for i in range(n)]
    if bad_after:
        lines.append("{not json")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_load_commits_per_1000_records_and_a_bad_line_keeps_the_chunks_before(
    tmp_path: Path
) -> None:
    # cli.md: "load ... commits one transaction per 1000 records or 8 MiB";
    # format.md: "a bad line stops it with FILE:LINE: reason, after the
    # chunks before it were committed"; "each chunk commits at a new revision"
    bad = _records_file(tmp_path / "bad.jsonl", 1500, bad_after=True)
    p = run("load", tmp_path / "s1", bad)
    assert p.returncode == 1 and "bad.jsonl:1502:" in one_line_error(p)
    with pystore.Store(tmp_path / "s1", readonly=True) as s:
        assert s.list_ids("A") == [f"{i:05d}" for i in range(1000)]
        assert s.revision() == 1  # one commit: the first chunk, whole
    good = _records_file(tmp_path / "good.jsonl", 2500)
    assert run("load", tmp_path / "s2", good).returncode == 0
    with pystore.Store(tmp_path / "s2", readonly=True) as s:
        assert s.count("A") == 2500 and s.revision() == 3  # 1000 + 1000 + 500
        assert [len([c for c in s.changes() if c.revision == r]) for r in (1, 2, 3)] == [
            1000, 1000, 500]
    big = _records_file(tmp_path / "big.jsonl", 10, size=1 << 20)  # 8 MiB: a chunk
    assert run("load", tmp_path / "s3", big).returncode == 0
    with pystore.Store(tmp_path / "s3", readonly=True) as s:
        assert s.count("A") == 10 and s.revision() == 2


def test_loading_the_same_dump_again_writes_nothing(tmp_path: Path) -> None:
    # format.md: "Loading is idempotent (records are upserted; a record
    # already stored with the same bytes and updated_ns is not written again"
    src = tmp_path / "src"
    with pystore.Store(src, sync=False) as s:
        s.save_resources("A", [(str(i), Agent(model=str(i))) for i in range(20)])
    dump = tmp_path / "d.jsonl"
    assert run("dump", src, "-o", dump).returncode == 0
    assert run("load", tmp_path / "t", dump).returncode == 0
    with pystore.Store(tmp_path / "t", readonly=True) as s:
        rev = s.revision()
    assert run("load", tmp_path / "t", dump).returncode == 0
    with pystore.Store(tmp_path / "t", readonly=True) as s:
        assert s.revision() == rev and s.changes(rev) == []


# -- find, events, indexes ----------------------------------------------------------


@pytest.fixture
def typed(store_path: Path) -> Path:
    with pystore.Store(store_path, sync=False) as s:
        s.save_resource("T", "a", All(flag=True, i64=16, sf64=-7, b="é".encode(),
                                      color=2, u64=2**64 - 1))
        s.save_resource("T", "b", All(i64=-7))
        for name in ("flag", "i64", "sf64", "b", "color", "u64"):
            s.create_index("T", name, field=name, msg_type=All)
        s.append_events("st", [(1, All(i64=1)), (5, All())])
    return store_path


@pytest.mark.parametrize(("index", "value", "ids"), [
    ("flag", "true", ["a"]), ("flag", "false", []), ("i64", "0x10", ["a"]), ("i64", "16", ["a"]),
    ("i64", "-7", ["b"]), ("sf64", "-7", ["a"]), ("b", "é", ["a"]), ("color", "GREEN", ["a"]),
    ("color", "2", ["a"]), ("u64", str(2**64 - 1), ["a"]), ("u64", "0xffffffffffffffff", ["a"]),
])
def test_find_converts_value_to_the_fields_type(typed: Path, index: str, value: str,
                                                ids: list[str]) -> None:
    # cli.md, find: "its UTF-8 bytes for bytes fields, true/false for bool,
    # an integer (int(VALUE, 0): 42, -7, 0x10) for integer fields, an
    # integer or a value name ... for enums"; "No match: no output, exit 0"
    p = run("find", typed, "T", index, value)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert p.stdout.split() == ids


@pytest.mark.parametrize(("index", "value"), [("flag", "maybe"), ("i64", "ten"),
                                              ("color", "PURPLE")])
def test_find_with_a_value_of_the_wrong_type_is_one_line_exit_1(typed: Path, index: str,
                                                               value: str) -> None:
    p = run("find", typed, "T", index, value)
    assert p.returncode == 1 and p.stdout == ""
    one_line_error(p)


def test_events_text_is_seq_recorded_at_and_size(typed: Path) -> None:
    # cli.md: "events prints SEQ<TAB>RECORDED_AT<TAB>N bytes per event"
    with pystore.Store(typed, readonly=True) as s:
        want = [(e.seq, e.recorded_at, len(e.data)) for e in s.read_events("st")]
    p = run("events", typed, "st")
    assert p.returncode == 0
    rows = [line.split("\t") for line in p.stdout.splitlines()]
    assert [(int(a), b, c) for a, b, c in rows] == [
        (seq, at.isoformat(), f"{n} bytes") for seq, at, n in want]
    assert want[0][2] == 2 and want[1][2] == 0


def test_indexes_takes_json_after_the_command_too(typed: Path) -> None:
    # cli.md: "--json (before or after the command) prints a list of
    # {kind, name, field, unique, entries, type, value}"
    after, before = run("indexes", typed, "--json"), run("--json", "indexes", typed)
    assert after.returncode == before.returncode == 0, after.stderr
    rows = json.loads(after.stdout)
    assert rows == json.loads(before.stdout)
    assert [(r["kind"], r["name"]) for r in rows] == sorted((r["kind"], r["name"]) for r in rows)
    assert {tuple(sorted(r)) for r in rows} == {
        ("entries", "field", "kind", "name", "type", "unique", "value")}


# -- stats, list -------------------------------------------------------------------


def test_stats_json_has_the_documented_keys(typed: Path) -> None:
    # cli.md: `{"path", "format_version", "revision", "write_mode", "entries",
    # "map_size", "used_bytes", "file_bytes", "data_bytes", "reclaimable_bytes",
    # "page_size", "depth", "readers": {"max", "active"}, "kinds": {KIND: {"count", "type"}}}`
    st = json.loads(run("--json", "stats", typed).stdout)
    assert set(st) == {"path", "format_version", "revision", "write_mode", "entries", "map_size",
                       "used_bytes", "file_bytes", "data_bytes", "reclaimable_bytes",
                       "page_size", "depth", "readers", "kinds"}
    assert set(st["readers"]) == {"max", "active"}
    assert st["kinds"] == {"T": {"count": 2, "type": "pystore.testidx.All"}}
    assert st["write_mode"] in ("writemap", "pwrite") and st["entries"] == 2


def test_list_objects_and_an_undecodable_record(store_path: Path) -> None:
    # cli.md: list prints `{"kind", "id", "updated_at", "updated_ns", "message"}`;
    # "A record whose kind has no recorded schema (or that does not decode) is
    # printed with "message": null, an "error" and its bytes as base64 "data""
    with pystore.Store(store_path, sync=False) as s:
        s.save_resource("A", "ok", Agent(model="m"))
        s._put_raw("A", "bad", b"\x0a\xff\xff\xff\x0f", 5)  # a length past the end
        s._put_raw("Raw", "r", b"\x08\x01", 6)
    rows = [json.loads(x) for x in run("list", store_path, "A").stdout.splitlines()]
    assert [r["id"] for r in rows] == ["bad", "ok"]
    assert set(rows[1]) == {"kind", "id", "updated_at", "updated_ns", "message"}
    assert rows[1]["message"] == {"model": "m"}
    for row, raw in ((rows[0], b"\x0a\xff\xff\xff\x0f"),
                     (json.loads(run("list", store_path, "Raw").stdout), b"\x08\x01")):
        assert row["message"] is None and row["error"]
        assert base64.b64decode(row["data"]) == raw


# -- read-only opens, missing stores, clean, backup, errors ------------------------------


def test_read_commands_open_read_only(typed: Path, tmp_path: Path) -> None:
    # cli.md: "Read commands (stats, kinds, list, get, dump, backup, verify,
    # watch) open the store with readonly=True"; find "reads with
    # readonly=True, like the other read commands" (indexes and events too).
    # format.md: a read-only Store "never makes or opens" write.lock.
    (typed / "write.lock").unlink()
    before = (typed / "data.mdb").read_bytes()
    for args in (["stats"], ["kinds"], ["list", "T"], ["get", "T", "a"], ["dump"], ["verify"],
                 ["find", "T", "i64", "16"], ["indexes"], ["events", "st"],
                 ["watch", "--after", "0"], ["backup", tmp_path / "bk"]):
        if args[0] == "watch":
            p = subprocess.Popen([PYSTORE, "watch", str(typed), *map(str, args[1:])],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert p.stdout is not None and p.stdout.readline()
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=30)
            assert p.returncode == 0
        else:
            p2 = run(args[0], typed, *args[1:])
            assert p2.returncode == 0, (args, p2.stderr)
        assert not (typed / "write.lock").exists(), args
    assert (typed / "data.mdb").read_bytes() == before
    # format.md: copies (Store.backup) do not include write.lock
    assert sorted(os.listdir(tmp_path / "bk")) == ["data.mdb"]


def test_no_command_creates_a_missing_store(tmp_path: Path) -> None:
    # cli.md: read commands "never create a store: a path without data.mdb
    # is "not found""; clean and delete refuse a missing store (reindex and
    # upgrade, writes too, alike)
    missing = tmp_path / "missing"
    for args in (["find", "T", "i", "v"], ["indexes"], ["events", "st"], ["reindex", "T", "i"],
                 ["upgrade"], ["upgrade", "--writemap"], ["delete", "T", "a"]):
        p = run(args[0], missing, *args[1:])
        assert p.returncode == 1, (args, p.stderr)
        assert "no store at" in one_line_error(p), args
        assert not missing.exists(), args


def test_clean_takes_yes_and_asks_the_documented_question(store_path: Path) -> None:
    # cli.md: "clean asks `delete N resource(s) of kind 'K' from PATH? [y/N]`
    # on stderr ... anything but y/yes (or end of input) deletes nothing and exits 1"
    with pystore.Store(store_path, sync=False) as s:
        s.save_resources("Agent", [(str(i), Agent()) for i in range(3)])
        s.save_resources("Other", [(str(i), Agent()) for i in range(2)])
    no = run("clean", store_path, "--kind", "Agent", input="ja\n")
    assert no.returncode == 1
    assert f"delete 3 resource(s) of kind 'Agent' from {store_path}? [y/N]" in no.stderr
    yes = run("clean", store_path, "--kind", "Agent", input="yes\n")
    assert yes.returncode == 0 and "deleted 3" in yes.stdout, yes.stderr
    upper = run("clean", store_path, "--kind", "Other", input="Y\n")
    assert upper.returncode == 0 and "deleted 2" in upper.stdout
    with pystore.Store(store_path, readonly=True) as s:
        assert s.kinds() == []


def test_backup_into_an_existing_empty_directory(typed: Path, tmp_path: Path) -> None:
    # cli.md: DEST "is created with mode 0700 or must be an empty directory";
    # "the copy is a store that pystore/Store opens as is"
    dest = tmp_path / "empty"
    dest.mkdir()
    p = run("backup", typed, dest)
    assert p.returncode == 0, p.stderr
    with pystore.Store(dest) as copy:
        assert copy.list_ids("T") == ["a", "b"] and copy.find_ids("T", "i64", 16) == ["a"]
        copy.save_resource("T", "c", All())
    assert run("verify", dest).returncode == 0


def test_json_errors_stay_one_line_of_text(typed: Path) -> None:
    # cli.md: "--json ... Errors stay one line of text on stderr"
    for args in (["get", typed, "T", "nope"], ["find", typed, "T", "nope", "x"],
                 ["stats", typed.parent / "nowhere"]):
        p = run("--json", *args)
        assert p.returncode == 1 and p.stdout == ""
        err = one_line_error(p)
        with pytest.raises(json.JSONDecodeError):
            json.loads(err.removeprefix("pystore: "))


def test_ctrl_c_is_exit_130_in_one_line(tmp_path: Path) -> None:
    # cli.md, exit codes: "130 interrupted (Ctrl-C)"; "load creates the store
    # ... once the input's first line has been read as JSON"
    target = tmp_path / "new"
    p = subprocess.Popen([PYSTORE, "load", str(target), "-"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdin is not None
    p.stdin.write(json.dumps({"pystore_dump": 1, "format_version": 2}) + "\n")
    p.stdin.flush()
    deadline = time.monotonic() + 30
    while not (target / "data.mdb").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)  # waiting for the next line
    out, err = p.communicate(timeout=30)
    assert (p.returncode, out, err) == (130, "", "pystore: interrupted\n")
