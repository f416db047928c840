"""Damaged files give clear errors, never a crash; the store's files are private.

Every damaged store is opened in a child process (tests/workers.py probe),
so a crash shows up as a failed test and not as a dead test run.  LMDB
trusts its file: these cases are the damage pystore checks for, not a
claim that any hostile file is safe to open (see docs/durability.md).
"""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest
from workers import Child

from pystore import CorruptionError, Store
from pystore.samples.agent_pb2 import Agent

PAGE = 4096
MARKED = {"Small": "m", "Big": "b"}  # kind -> id of a record found by its bytes


def _marked_text(kind: str) -> str:
    return f"MARKER-{kind}-7f3a9c;" + "y" * (50_000 if kind == "Big" else 10)


def _probe(path: Path, readonly: bool) -> str:
    child = Child("probe", str(path), "readonly" if readonly else "rw", timeout=60)
    line = child.line()
    child.finish()
    assert child.proc.returncode == 0, f"child died: {child.proc.returncode} {child.stderr}"
    return line


def _good_store(path: Path, n: int = 300) -> int:
    with Store(path, sync=False) as store:
        store.save_resources(
            "Agent", [(f"a{i:04d}", Agent(model=str(i), instructions="x" * 900)) for i in range(n)]
        )
        for kind, id in MARKED.items():
            store.save_resource(kind, id, Agent(instructions=_marked_text(kind)))
        used = store.stats().used_bytes
    # A writemap store's file is its whole (preallocated) map: the pages in
    # use end at the high-water mark, not at the end of the file.
    return min(os.path.getsize(path / "data.mdb"), used)


@pytest.mark.parametrize("size", [1, 100, 4096, 65536])
@pytest.mark.parametrize("readonly", [False, True])
def test_garbage_data_file(tmp_path: Path, size: int, readonly: bool) -> None:
    path = tmp_path / "store"
    path.mkdir()
    (path / "data.mdb").write_bytes(random.Random(size).randbytes(size))
    assert _probe(path, readonly) == "error CorruptionError -30793"  # MDB_INVALID


@pytest.mark.parametrize("cut", ["one-page-short", "half", "three-pages", "one-page", "one-byte"])
@pytest.mark.parametrize("readonly", [False, True])
def test_truncated_data_file(tmp_path: Path, cut: str, readonly: bool) -> None:
    path = tmp_path / "store"
    full = _good_store(path)
    size = {
        "one-page-short": full - PAGE,
        "half": full // 2,
        "three-pages": 3 * PAGE,
        "one-page": PAGE,
        "one-byte": 1,
    }[cut]
    os.truncate(path / "data.mdb", size)
    line = _probe(path, readonly)
    # PS_ERR_TRUNCATED where the meta pages survive, MDB_INVALID where they do not.
    assert line in ("error CorruptionError -31016", "error CorruptionError -30793")
    if size >= 2 * PAGE:
        assert line == "error CorruptionError -31016"


def test_empty_data_file_is_a_new_store(tmp_path: Path) -> None:
    """A zero-length data.mdb holds nothing to lose: a writable open starts afresh."""
    path = tmp_path / "store"
    path.mkdir()
    (path / "data.mdb").write_bytes(b"")
    assert _probe(path, readonly=False) == "ok 0"


@pytest.mark.parametrize("readonly", [False, True])
def test_damaged_meta_pages(tmp_path: Path, readonly: bool) -> None:
    path = tmp_path / "store"
    _good_store(path)
    with open(path / "data.mdb", "r+b") as f:
        for page in (0, 1):  # the magic of both meta pages
            f.seek(page * PAGE + 16)
            f.write(b"\xde\xad\xbe\xef")
    assert _probe(path, readonly) == "error CorruptionError -30793"


def test_data_file_that_is_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "store"
    (path / "data.mdb").mkdir(parents=True)
    line = _probe(path, readonly=False)
    assert line.startswith("error UnsafePathError -31050"), line


def _damage_header(path: Path, kind: str) -> None:
    """Set the version byte of the record's header to an unknown version."""
    text = _marked_text(kind).encode()
    n, varint = len(text), b""
    while n >= 0x80:
        varint, n = varint + bytes([n & 0x7F | 0x80]), n >> 7
    payload_start = b"\x12" + varint + bytes([n]) + text[:20]  # field 2 (instructions)
    data = (path / "data.mdb").read_bytes()
    # Copy-on-write may leave stale copies on free pages: damage every copy.
    at = data.find(payload_start)
    assert at > 0
    with open(path / "data.mdb", "r+b") as f:
        while at > 0:
            start = at - 20
            assert data[start] == 2 and data[start + 1 : start + 4] == b"\0\0\0"
            f.seek(start)
            f.write(b"\x7f")
            at = data.find(payload_start, at + 1)


@pytest.mark.parametrize("which", ["Small", "Big"])
def test_damaged_record_header(tmp_path: Path, which: str) -> None:
    path = tmp_path / "store"
    _good_store(path)
    _damage_header(path, which)
    assert _probe(path, readonly=True) == "error CorruptionError -31008"  # PS_ERR_BAD_RECORD
    id = MARKED[which]
    with Store(path) as store:
        for call in (
            lambda: store.get_resource(which, id, Agent),
            lambda: store.get_record(which, id),
            lambda: store.list_resources(which),
            lambda: list(store.iter_resources(which)),
            lambda: store.update_resource(which, id, Agent, lambda m: None),
        ):
            with pytest.raises(CorruptionError, match="damaged header"):
                call()
        # The rest of the store is untouched and the record can be replaced.
        assert store.count("Agent") == 300
        assert store.get_resource("Agent", "a0299", Agent).model == "299"
        assert store.count(which) == 1
        store.save_resource(which, id, Agent(model="repaired"))
        assert store.get_resource(which, id, Agent).model == "repaired"


def test_unknown_format_version(tmp_path: Path) -> None:
    path = tmp_path / "store"
    _good_store(path, 3)
    with Store(path) as store:
        t = store._begin(True)
        t.meta_put(b"format_version", (99).to_bytes(4, "little"))
        t.commit()
    assert _probe(path, readonly=True) == "error IncompatibleStoreError -31009"
    assert _probe(path, readonly=False) == "error IncompatibleStoreError -31009"


# -- permissions ---------------------------------------------------------------


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o002])
def test_files_are_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        path = tmp_path / "a" / "b" / "store"
        with Store(path) as store:
            store.save_resource("Agent", "x", Agent(model="m"))
            store.backup(tmp_path / "backup" / "copy")
    finally:
        os.umask(old)
    for d in (tmp_path / "a", tmp_path / "a" / "b", path, tmp_path / "backup" / "copy"):
        assert _mode(d) == 0o700, d
    for f in (path / "data.mdb", path / "lock.mdb", path / "write.lock",
              tmp_path / "backup" / "copy" / "data.mdb"):
        assert _mode(f) == 0o600, f


def test_existing_loose_files_are_made_private(tmp_path: Path) -> None:
    path = tmp_path / "store"
    Store(path).close()
    os.chmod(path / "data.mdb", 0o644)
    os.chmod(path / "lock.mdb", 0o666)
    os.chmod(path / "write.lock", 0o666)
    Store(path).close()
    assert _mode(path / "data.mdb") == 0o600
    assert _mode(path / "lock.mdb") == 0o600
    assert _mode(path / "write.lock") == 0o600


@pytest.mark.parametrize("versioned", [False, True])
@pytest.mark.parametrize("how", ["save", "delete", "prefix"])
def test_replacing_a_damaged_record_leaves_no_index_entry_behind(
    tmp_path: Path, how: str, versioned: bool
) -> None:
    # docs/durability.md: a record whose header is damaged "can be
    # overwritten".  Its index entries were made while it was whole; the
    # upkeep took the damaged record for one that made none, so a save, a
    # delete or a prefix delete of it left them: find named a record that
    # no longer held the value, and a unique value stayed taken for ever.
    from pystore._lmdb.indexcheck import check_indexes
    from pystore.samples.agent_pb2 import Tool

    path = tmp_path / "store"
    with Store(path, sync=False) as s:
        s.create_index("Small", "model", field="model", msg_type=Agent, unique=True)
        s.create_index("Small", "tool", field="tools.name", msg_type=Agent)
        if versioned:  # a versioned kind refused to replace or delete it
            s.set_history("Small", 2)
            s.save_resource("Small", "m", Agent(model="first"))
        s.save_resource("Small", "m", Agent(instructions=_marked_text("Small"), model="held",
                                            tools=[Tool(name="t1"), Tool(name="t2")]))
        s.save_resource("Small", "other", Agent(model="other", tools=[Tool(name="t1")]))
    _damage_header(path, "Small")
    with Store(path) as s:
        with pytest.raises(CorruptionError, match="damaged header"):
            s.get_resource("Small", "m", Agent)
        with pytest.raises(CorruptionError):  # no revision to compare with
            s.save_resource("Small", "m", Agent(), if_revision=1)
        with pytest.raises(CorruptionError):
            s.delete_resource("Small", "m", if_revision=1)
        if how == "save":
            s.save_resource("Small", "m", Agent(model="new", tools=[Tool(name="t2")]))
        elif how == "delete":
            assert s.delete_resource("Small", "m") is True
        else:
            assert s.delete_resources_by_prefix("Small", "m") == 1
        assert s.find_ids("Small", "model", "held") == []
        assert s.find_ids("Small", "tool", "t1") == ["other"]
        assert s.find_ids("Small", "tool", "t2") == (["m"] if how == "save" else [])
        s.save_resource("Small", "x", Agent(model="held"))  # the unique value is free again
        with s.snapshot() as snap:
            assert snap._run(False, check_indexes) == []
        # the damaged version is not kept (it cannot be read); the whole ones are
        kept = [Agent.FromString(r.data).model for r in s.history("Small", "m")]
        if how == "save":
            assert kept == (["new", "first"] if versioned else ["new"])
        elif how == "delete":
            assert kept == (["first"] if versioned else [])
        else:
            assert kept == []
