"""A pwrite store switched to the writemap mode in place (switch_to_writemap,
``pystore upgrade --writemap``): only while no process has it open, only
where the mode is allowed, and nothing but the recorded mode changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import mount_image, umount_fs
from workers import payload

from pystore import (
    IncompatibleStoreError,
    Store,
    StoreError,
    StoreInUseError,
    StoreOSError,
    switch_to_writemap,
)
from pystore.samples.agent_pb2 import Agent

TESTS = Path(__file__).parent
WRITEMAP_FS = {"ext2/ext3", "tmpfs", "xfs"}  # `stat -f -c %T` names


def _fs_type(path: Path) -> str:
    r = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True)
    return r.stdout.strip()


@pytest.fixture
def pwrite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pwrite store (made with PYSTORE_WRITEMAP=0) on a filesystem that
    allows the writemap mode, with records, history and a change log."""
    if _fs_type(tmp_path) not in WRITEMAP_FS:
        pytest.skip(f"{_fs_type(tmp_path)}: no writemap mode there")
    path = tmp_path / "store"
    monkeypatch.setenv("PYSTORE_WRITEMAP", "0")
    with Store(path) as s:
        s.set_history("Agent", 2)
        s.save_resources("Agent", [(f"a{i:04d}", Agent(model=f"m{i}")) for i in range(500)])
        s.save_resource("Agent", "a0001", Agent(model="second"))
        assert s.stats().write_mode == "pwrite"
    monkeypatch.delenv("PYSTORE_WRITEMAP")
    return path


def _snapshot(path: Path) -> tuple[list[tuple[str, bytes, int]], int, list[int], int]:
    with Store(path, readonly=True) as s:
        records = [(r.id, r.data, r.revision) for r in s.iter_resources("Agent")]
        history = [v.revision for v in s.history("Agent", "a0001")]
        return records, s.revision(), history, len(list(s.changes(0)))


def test_switch_keeps_everything_but_the_mode(pwrite_store: Path) -> None:
    before = _snapshot(pwrite_store)
    assert switch_to_writemap(pwrite_store) is True
    assert _snapshot(pwrite_store) == before
    with Store(pwrite_store) as s:
        st = s.stats()
        assert st.write_mode == "writemap"
        # the map is allocated on disk, as for a store made in this mode
        file = os.stat(pwrite_store / "data.mdb")
        assert file.st_size == st.map_size and file.st_blocks * 512 >= st.map_size
        rev = s.save_resource("Agent", "new", Agent(model="after"))
        assert rev == before[1] + 1
        assert s.get_resource("Agent", "new", Agent).model == "after"
        for i in range(2000):  # growths of the map in this mode
            s.save_resource("Grow", f"g{i}", Agent(instructions="x" * 2000))
        assert s.count("Grow") == 2000
    assert switch_to_writemap(pwrite_store) is False  # already: nothing to do
    with Store(pwrite_store) as s:
        assert s.stats().write_mode == "writemap" and s.count("Agent") == 501


def test_a_store_open_in_this_process_is_left_alone(pwrite_store: Path) -> None:
    with Store(pwrite_store, readonly=True), pytest.raises(StoreInUseError, match="open"):
        switch_to_writemap(pwrite_store)
    with Store(pwrite_store) as s:
        assert s.stats().write_mode == "pwrite"


def test_a_store_open_in_another_process_is_left_alone(pwrite_store: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from pystore import Store
            s = Store({str(pwrite_store)!r}, readonly=True)
            print(s.count("Agent"), flush=True)
            sys.stdin.readline()
            s.close()
            """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=TESTS)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "500"
        with pytest.raises(StoreInUseError):
            switch_to_writemap(pwrite_store)
    finally:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.close()
        assert child.wait(30) == 0
        child.stdout.close()
    with Store(pwrite_store) as s:
        assert s.stats().write_mode == "pwrite"
    assert switch_to_writemap(pwrite_store) is True  # closed everywhere now


def test_an_opener_that_comes_during_the_switch_writes_in_the_recorded_mode(
    pwrite_store: Path, tmp_path: Path
) -> None:
    # A child opens a fresh pwrite copy and writes, while this process
    # switches the copy at about the same moment.  Whichever comes first,
    # the child must write in the mode the store records once both are
    # done: an opener that meets the switch's lock waits for it.
    code = textwrap.dedent("""
        import sys, time
        from pystore import Store
        from workers import payload
        print("go", flush=True)
        time.sleep(float(sys.argv[2]))  # from 0 to ~6 ms: each side wins sometimes
        with Store(sys.argv[1]) as s:
            s.save_resource("Race", "x", payload("Race", "x"))
            print(s.stats().write_mode, flush=True)
        """)
    seen = set()
    for n in range(12):
        copy = tmp_path / f"copy{n}"
        copy.mkdir(mode=0o700)
        shutil.copy(pwrite_store / "data.mdb", copy / "data.mdb")
        child = subprocess.Popen([sys.executable, "-c", code, str(copy), str(n / 2000)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=TESTS)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "go"
        try:
            switched = switch_to_writemap(copy)
        except StoreInUseError:
            switched = None  # the child had it open first
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err[-2000:]
        with Store(copy) as s:
            recorded = s.stats().write_mode
            assert s.count("Race") == 1 and s.count("Agent") == 500
        assert out.strip() == recorded, (switched, out, recorded)
        assert recorded == ("pwrite" if switched is None else "writemap")
        seen.add(switched)
    assert True in seen  # the switch came first at least once


def test_cli_upgrade_writemap(pwrite_store: Path) -> None:
    with Store(pwrite_store, readonly=True):  # open here: refused, one line, exit 1
        r = subprocess.run([sys.executable, "-m", "pystore", "upgrade", "--writemap",
                            str(pwrite_store)], capture_output=True, text=True, cwd=TESTS)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "open" in r.stderr and r.stdout == ""
    r = subprocess.run([sys.executable, "-m", "pystore", "upgrade", "--writemap",
                        str(pwrite_store)], capture_output=True, text=True, cwd=TESTS)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("write mode writemap")
    with Store(pwrite_store) as s:
        assert s.stats().write_mode == "writemap"
    r = subprocess.run([sys.executable, "-m", "pystore", "upgrade", str(pwrite_store)],
                       capture_output=True, text=True, cwd=TESTS)
    assert r.returncode == 0 and "write mode writemap" in r.stdout, r.stderr


def test_refused_where_the_mode_is_not_allowed(pwrite_store: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSTORE_WRITEMAP", "0")
    with pytest.raises(StoreError, match="writemap"):
        switch_to_writemap(pwrite_store)
    monkeypatch.delenv("PYSTORE_WRITEMAP")
    with Store(pwrite_store) as s:
        assert s.stats().write_mode == "pwrite"
    # btrfs copies on write: a pwrite store there stays one
    mnt = tmp_path / "mnt"
    mount_image(tmp_path, ["mkfs.btrfs", "-q", "--mixed", "-f"], 48 << 20, mnt)
    try:
        with Store(mnt / "store") as s:
            s.save_resource("Agent", "a", payload("Agent", "a"))
            assert s.stats().write_mode == "pwrite"
        with pytest.raises(StoreError, match="writemap") as info:
            switch_to_writemap(mnt / "store")
        assert not isinstance(info.value, StoreInUseError)
        with Store(mnt / "store") as s:
            assert s.stats().write_mode == "pwrite" and s.count("Agent") == 1
    finally:
        umount_fs(mnt)


def test_not_a_store_and_format_1(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StoreOSError) as info:
        switch_to_writemap(empty)
    assert info.value.errno == 2
    assert os.listdir(empty) == []  # nothing made there
    with pytest.raises(StoreOSError):
        switch_to_writemap(tmp_path / "missing")
    with pytest.raises(TypeError):
        switch_to_writemap(42)  # type: ignore[arg-type]
    if _fs_type(tmp_path) in WRITEMAP_FS:
        v1 = tmp_path / "v1"
        v1.mkdir()
        shutil.copy(TESTS / "fixtures" / "format1" / "data.mdb", v1 / "data.mdb")
        with pytest.raises(IncompatibleStoreError, match="upgrade"):
            switch_to_writemap(v1)
        with Store(v1) as s:  # the upgrade to format 2 (this build: pwrite)
            assert s.stats().write_mode == "pwrite"
        assert switch_to_writemap(v1) is True
