"""Opening stores: directories, permissions, options, read-only mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import pystore
from pystore.samples import agent_pb2


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_creates_directory_with_parents_private(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "a" / "b" / "store"
        with pystore.Store(path) as s:
            s.save_resource("Agent", "x", agent_pb2.Agent())
    finally:
        os.umask(old)
    assert _mode(path) == 0o700
    assert _mode(tmp_path / "a") == 0o700 and _mode(tmp_path / "a" / "b") == 0o700
    assert sorted(p.name for p in path.iterdir()) == ["data.mdb", "lock.mdb", "write.lock"]
    for name in ("data.mdb", "lock.mdb", "write.lock"):
        assert _mode(path / name) == 0o600, name


def test_accepts_str_and_pathlike(tmp_path: Path) -> None:
    with pystore.Store(str(tmp_path / "s")) as s:
        s.save_resource("A", "1", agent_pb2.Agent())
    with pystore.Store(tmp_path / "s") as s:
        assert s.count("A") == 1
        assert s.path == str(tmp_path / "s")
        assert "open" in repr(s)


@pytest.mark.parametrize("bad", [None, 3, b"/tmp/x", ["p"]])
def test_bad_path_type(bad: object) -> None:
    with pytest.raises(TypeError):
        pystore.Store(bad)  # type: ignore[arg-type]


def test_path_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("not a directory")
    with pytest.raises(pystore.StoreError):
        pystore.Store(f)
    assert f.read_text() == "not a directory"


def test_map_size_validation(tmp_path: Path) -> None:
    for bad in ("1", 1.5, True):
        with pytest.raises(TypeError):
            pystore.Store(tmp_path / "s", map_size=bad)  # type: ignore[arg-type]
    for bad in (0, -1):
        with pytest.raises(ValueError):
            pystore.Store(tmp_path / "s", map_size=bad)
    with pystore.Store(tmp_path / "s", map_size=1 << 20) as s:
        s.save_resource("A", "1", agent_pb2.Agent())


def test_readonly_refuses_writes_and_reads_fine(store_path: Path) -> None:
    with pystore.Store(store_path) as w:
        w.save_resource("Agent", "a", agent_pb2.Agent(model="m"))
        with pystore.Store(store_path, readonly=True) as r:
            assert r.readonly
            assert r.get_resource("Agent", "a", agent_pb2.Agent).model == "m"
            for call in (
                lambda: r.save_resource("Agent", "b", agent_pb2.Agent()),
                lambda: r.create_resource("Agent", "b", agent_pb2.Agent()),
                lambda: r.save_resources("Agent", [("b", agent_pb2.Agent())]),
                lambda: r.update_resource("Agent", "a", agent_pb2.Agent, lambda m: None),
                lambda: r.delete_resource("Agent", "a"),
                lambda: r.delete_resources_by_kind("Agent"),
                lambda: r.transaction(),
            ):
                with pytest.raises(pystore.ReadOnlyError):
                    call()
            w.save_resource("Agent", "c", agent_pb2.Agent())
            assert r.count("Agent") == 2  # sees the writer's commit
    with pystore.Store(store_path) as w:
        assert w.count("Agent") == 2


def test_readonly_never_creates_a_store(tmp_path: Path) -> None:
    with pytest.raises(pystore.StoreError):
        pystore.Store(tmp_path / "missing", readonly=True)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(pystore.StoreError):
        pystore.Store(tmp_path / "empty", readonly=True)
    assert list((tmp_path / "empty").iterdir()) == []


def test_sync_false_store_persists_across_reopen(store_path: Path) -> None:
    with pystore.Store(store_path, sync=False) as s:
        s.save_resource("A", "1", agent_pb2.Agent(model="nosync"))
    with pystore.Store(store_path) as s:
        assert s.get_resource("A", "1", agent_pb2.Agent).model == "nosync"


def test_foreign_lmdb_environment_is_refused(tmp_path: Path) -> None:
    """An LMDB file with data that pystore did not write is not taken over."""
    import shutil
    import subprocess

    if shutil.which("mdb_load") is None:
        pytest.skip("mdb_load (lmdb-utils) not installed")
    d = tmp_path / "foreign"
    d.mkdir()
    dump = "VERSION=3\nformat=print\ntype=btree\nHEADER=END\n key\n value\nDATA=END\n"
    subprocess.run(["mdb_load", str(d)], input=dump.encode(), check=True)
    with pytest.raises(pystore.CorruptionError, match="not a pystore store"):
        pystore.Store(d)
    with pytest.raises(pystore.CorruptionError):
        pystore.Store(d, readonly=True)
