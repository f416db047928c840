"""Store.stats() and Store.backup()."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
from busy_writer import busy_writer
from support import make_agent

import pystore
from pystore.samples import agent_pb2, session_pb2


def test_stats_counts_kinds_and_reports_sizes(store: pystore.Store) -> None:
    store.save_resources("Agent", [(f"a{i}", make_agent(i)) for i in range(5)])
    store.save_resource("Session", "s", session_pb2.Session())
    st = store.stats()
    assert st.format_version == 2 and st.revision == 2
    assert st.entries == 6
    assert {k: v.count for k, v in st.kinds.items()} == {"Agent": 5, "Session": 1}
    assert st.kinds["Agent"].type_name == "pystore.samples.Agent"
    assert 0 < st.used_bytes <= st.file_bytes <= st.map_size
    assert st.page_size >= 4096 and st.depth >= 1
    d = st.to_dict()
    assert d["kinds"]["Session"] == {"count": 1, "type": "pystore.samples.Session"}
    assert d["map_size"] == st.map_size


def test_stats_of_empty_and_readonly_store(store_path: Path) -> None:
    pystore.Store(store_path).close()
    with pystore.Store(store_path, readonly=True) as ro:
        st = ro.stats()
    assert st.entries == 0 and st.kinds == {}


def test_stats_on_closed_store_raises(store: pystore.Store) -> None:
    store.close()
    with pytest.raises(pystore.StoreClosedError):
        store.stats()
    with pytest.raises(pystore.StoreClosedError):
        store.backup(str(store.path) + "-bk")


def test_backup_is_a_private_openable_copy(store: pystore.Store, tmp_path: Path) -> None:
    store.save_resources("Agent", [(f"a{i}", make_agent(i)) for i in range(50)])
    dest = tmp_path / "deep" / "backup"
    size = store.backup(dest)
    assert size == (dest / "data.mdb").stat().st_size > 0
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert stat.S_IMODE((dest / "data.mdb").stat().st_mode) == 0o600
    with pystore.Store(dest, readonly=True) as copy:
        assert copy.count("Agent") == 50
        assert copy.get_record("Agent", "a7") == store.get_record("Agent", "a7")
        assert copy.stats().kinds["Agent"].type_name == "pystore.samples.Agent"


def test_compact_backup_is_not_larger(store: pystore.Store, tmp_path: Path) -> None:
    store.save_resources("Agent", [(f"a{i}", make_agent(i)) for i in range(300)])
    store.delete_resources_by_kind("Agent")
    store.save_resource("Agent", "kept", make_agent(1))
    compact = store.backup(tmp_path / "c")
    full = store.backup(tmp_path / "f", compact=False)
    assert compact < full


def test_backup_refuses_non_empty_or_file_destination(
    store: pystore.Store, tmp_path: Path
) -> None:
    store.save_resource("Agent", "a", agent_pb2.Agent())
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("precious")
    with pytest.raises(pystore.StoreOSError, match="not empty") as info:
        store.backup(busy)
    assert info.value.errno == errno.ENOTEMPTY
    assert str(info.value).startswith("backup destination")  # text, not a tuple
    assert (busy / "keep.txt").read_text() == "precious"
    assert sorted(os.listdir(busy)) == ["keep.txt"]
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(pystore.StoreOSError, match="not a directory"):
        store.backup(afile)
    with pytest.raises(pystore.StoreError):
        store.backup(store.path)
    with pytest.raises(TypeError):
        store.backup(42)  # type: ignore[arg-type]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert store.backup(empty) > 0


def test_backup_from_readonly_store_while_another_process_writes(
    store_path: Path, tmp_path: Path
) -> None:
    with pystore.Store(store_path) as s:
        s.save_resources("Agent", [(f"a{i}", make_agent(i)) for i in range(100)])
    with busy_writer(store_path), pystore.Store(store_path, readonly=True) as ro:
        for n in range(5):
            dest = tmp_path / f"bk{n}"
            ro.backup(dest)
            with pystore.Store(dest, readonly=True) as copy:
                assert copy.count("Agent") == 100
                if copy.count("Pair"):  # a consistent snapshot: both or neither
                    left = copy.get_resource("Pair", "left", agent_pb2.Agent)
                    right = copy.get_resource("Pair", "right", agent_pb2.Agent)
                    assert left.model == right.model
