"""Claims of docs/format.md and docs/durability.md that no other test held
to: the record header as other tools read it from data.mdb, a zero-length
data.mdb opened read-only, and a sticky store directory.

Each test names the sentence it holds the code to.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import pystore
from pystore import CorruptionError, StoreError, UnsafePathError
from pystore.samples.agent_pb2 import Agent


def test_the_record_header_is_laid_out_as_documented(store_path: Path) -> None:
    # format.md, "Records": offset 0 version 2, 1 flags 0, 2-3 reserved 0,
    # 4 updated_ns (i64 LE), 12 revision (u64 LE), 20 the payload, "exactly
    # these bytes" (what Resource.data returns)
    with pystore.Store(store_path) as s:  # sync=True: the pages are in the file
        for i in range(300):  # a revision with more than one byte set
            s.save_resource("Filler", str(i), Agent())
        msg = Agent(model="marker-" + "q" * 40)
        rev = s.save_resource("Agent", "a", msg)
        rec = s.get_record("Agent", "a")
    payload = msg.SerializeToString()
    assert rec.data == payload and rec.revision == rev > 255
    raw = (store_path / "data.mdb").read_bytes()
    at = raw.find(payload)
    assert at >= 20
    while at >= 0:  # each copy of its page (LMDB may leave an older one free)
        header = raw[at - 20:at]
        assert header[0] == 2 and header[1] == 0 and header[2:4] == b"\0\0"
        assert int.from_bytes(header[4:12], "little", signed=True) == rec.updated_ns
        assert int.from_bytes(header[12:20], "little") == rev
        at = raw.find(payload, at + 1)


def test_an_empty_data_file_read_only_is_no_store_yet_and_left_alone(tmp_path: Path) -> None:
    # durability.md, damaged files: "an empty (zero-length) data.mdb ...
    # opened readonly=True, StoreError "no store here yet" (PS_ERR_NO_STORE),
    # as when data.mdb does not exist" (it was CorruptionError before)
    path = tmp_path / "store"
    path.mkdir()
    (path / "data.mdb").write_bytes(b"")
    with pytest.raises(StoreError, match="no store here yet") as info:
        pystore.Store(path, readonly=True)
    assert not isinstance(info.value, CorruptionError)
    assert (path / "data.mdb").stat().st_size == 0
    assert not (path / "write.lock").exists()
    with pystore.Store(path) as s:  # "opened for writing it starts a new, empty store"
        assert s.kinds() == [] and s.revision() == 0
        s.save_resource("Agent", "a", Agent())
    with pystore.Store(path, readonly=True) as ro:
        assert ro.list_ids("Agent") == ["a"]


def test_a_sticky_shared_directory_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    # durability.md, "Symlinks": "A writable open tightens a store directory
    # that group or others can write to 0700 when this user owns it; one owned
    # by another user, or sticky (like /tmp), is refused with UnsafePathError:
    # give the store a directory of its own."
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(UnsafePathError, match="sticky"):
        pystore.Store(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777  # not tightened under others
    assert os.listdir(shared) == []
    # a store in a directory of its own inside it is fine
    with pystore.Store(shared / "mine") as s:
        s.save_resource("Agent", "a", Agent())
    assert stat.S_IMODE((shared / "mine").stat().st_mode) == 0o700
    # sticky but writable by this user alone: nobody else can plant a link
    own = tmp_path / "own"
    own.mkdir()
    own.chmod(0o1700)
    pystore.Store(own).close()
