"""A pwrite store switched to the writemap mode in place (switch_to_writemap,
``pystore upgrade --writemap``): only while no process has it open, only
where the mode is allowed, and nothing but the recorded mode changes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import WRITEMAP_FS, fill_fs, fs_type, mount_fs, mount_image, umount_fs
from workers import payload

from pystore import (
    IncompatibleStoreError,
    StorageFullError,
    Store,
    StoreError,
    StoreInUseError,
    StoreOSError,
    switch_to_writemap,
)
from pystore.samples.agent_pb2 import Agent

TESTS = Path(__file__).parent
@pytest.fixture
def pwrite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pwrite store (made with PYSTORE_WRITEMAP=0) on a filesystem that
    allows the writemap mode, with records, history and a change log."""
    if fs_type(tmp_path) not in WRITEMAP_FS:
        pytest.skip(f"{fs_type(tmp_path)}: no writemap mode there")
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
        # unbuffered: readline takes "go" alone, and communicate() the rest
        # (a buffered text pipe may read the child's next line along with
        # "go" when the child runs ahead, and communicate() never sees it)
        child = subprocess.Popen([sys.executable, "-c", code, str(copy), str(n / 2000)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
                                 cwd=TESTS)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"go"
        try:
            switched = switch_to_writemap(copy)
        except StoreInUseError:
            switched = None  # the child had it open first
        outb, errb = child.communicate(timeout=60)
        out, err = outb.decode(), errb.decode()
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
    r = subprocess.run([sys.executable, "-m", "pystore", "--json", "upgrade", str(pwrite_store)],
                       capture_output=True, text=True, cwd=TESTS)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["write_mode"] == "writemap" and got["format_version"] == 2
    assert got["revision"] > 0 and got["path"] == str(pwrite_store)


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
    if fs_type(tmp_path) in WRITEMAP_FS:
        v1 = tmp_path / "v1"
        v1.mkdir()
        shutil.copy(TESTS / "fixtures" / "format1" / "data.mdb", v1 / "data.mdb")
        with pytest.raises(IncompatibleStoreError, match="upgrade"):
            switch_to_writemap(v1)
        with Store(v1) as s:  # the upgrade to format 2 (this build: pwrite)
            assert s.stats().write_mode == "pwrite"
        assert switch_to_writemap(v1) is True


# -- a full disk, and errors that must leave the store as it was ------------


def _pwrite_store_on(mnt: Path, records: int, size: int) -> Path:
    path = mnt / "store"
    env = {**os.environ, "PYSTORE_WRITEMAP": "0"}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        from pystore import Store
        from pystore.samples.agent_pb2 import Agent
        with Store({str(path)!r}) as s:
            s.save_resources("Agent", [(f"a{{i}}", Agent(model="m" * {size}))
                                       for i in range({records})])
            assert s.stats().write_mode == "pwrite"
        """)], capture_output=True, text=True, cwd=TESTS, env=env, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    return path


def _refill(mnt: Path, free: int) -> None:
    """The filesystem full but for ``free`` bytes (``filler`` redone)."""
    (mnt / "filler").unlink(missing_ok=True)
    fill_fs(mnt)
    filler = mnt / "filler"
    os.truncate(filler, max(0, os.stat(filler).st_size - free))


def test_switch_on_a_nearly_full_disk_keeps_the_store_readable(tmp_path: Path) -> None:
    # A small pwrite store (< 1 MiB) on a disk with room for the switch's
    # commit but not for the map a writemap store allocates: the switch must
    # not leave a store that no read-only open can open until disk space is
    # freed.  The map is allocated by the switch (StorageFullError, nothing
    # changed), so after it the store is like one made in the mode.
    mnt = tmp_path / "mnt"
    mount_fs(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"], mnt)
    try:
        path = _pwrite_store_on(mnt, 20, 10)
        size = os.stat(path / "data.mdb").st_size
        assert size < (1 << 20)
        _refill(mnt, 64 << 10)
        with pytest.raises(StorageFullError):
            switch_to_writemap(path)
        assert os.stat(path / "data.mdb").st_size == size  # nothing left allocated
        for readonly in (True, False):
            with Store(path, readonly=readonly) as s:
                assert s.count("Agent") == 20 and s.stats().write_mode == "pwrite"
        (mnt / "filler").unlink()
        assert switch_to_writemap(path) is True
        file = os.stat(path / "data.mdb")  # allocated before any open
        assert file.st_size >= (1 << 20) and file.st_blocks * 512 >= file.st_size
        _refill(mnt, 0)
        with Store(path, readonly=True) as s:
            assert s.count("Agent") == 20
        with Store(path) as s:  # writes that fit in the map go on
            assert s.stats().write_mode == "writemap"
            s.save_resource("Agent", "new", Agent(model="x"))
            assert s.count("Agent") == 21
    finally:
        umount_fs(mnt)


def test_switch_on_a_full_ext4_is_storage_full(tmp_path: Path) -> None:
    # LMDB reports a write cut short by a full disk as EIO (ps_full.c): the
    # switch's commit says StorageFullError like every other write, and a
    # failed switch leaves a pwrite store.
    mnt = tmp_path / "mnt"
    mount_image(tmp_path, ["mkfs.ext4", "-q", "-F"], 24 << 20, mnt)
    try:
        path = _pwrite_store_on(mnt, 400, 3000)
        size = os.stat(path / "data.mdb").st_size
        # (the map allocated first: the commit's pages find their blocks)
        for free in [*range(0, 16 << 10, 4096), *range(64 << 10, 4 << 20, 128 << 10)]:
            _refill(mnt, free)
            try:
                switched = switch_to_writemap(path)
            except StorageFullError:
                # (a commit cut short may leave written pages past the end)
                assert os.stat(path / "data.mdb").st_size >= size
                with Store(path, readonly=True) as s:
                    assert s.stats().write_mode == "pwrite" and s.count("Agent") == 400
                    assert len(list(s.iter_resources("Agent"))) == 400
                continue
            assert switched is True
            break
        else:
            pytest.fail("no switch with 4 MiB free")
        (mnt / "filler").unlink()
        with Store(path) as s:
            assert s.stats().write_mode == "writemap" and s.count("Agent") == 400
    finally:
        umount_fs(mnt)


def test_an_empty_data_file_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "store"
    path.mkdir(mode=0o700)
    (path / "data.mdb").touch()
    with pytest.raises(StoreError) as ro:
        Store(path, readonly=True)
    with pytest.raises(type(ro.value)):
        switch_to_writemap(path)
    assert os.listdir(path) == ["data.mdb"] and os.stat(path / "data.mdb").st_size == 0


def test_a_path_with_a_nul_byte_is_refused(pwrite_store: Path) -> None:
    # C would see the path cut at the NUL: another directory (this one)
    with pytest.raises(ValueError, match="null"):
        Store(f"{pwrite_store}\0other")
    with pytest.raises(ValueError, match="null"):
        switch_to_writemap(f"{pwrite_store}\0other")
    with Store(pwrite_store) as s:
        assert s.stats().write_mode == "pwrite"


def _holes(file: Path) -> list[tuple[int, int]]:
    """(offset, length) of each hole in ``file`` (SEEK_HOLE/SEEK_DATA)."""
    fd = os.open(file, os.O_RDONLY)
    try:
        size, off, found = os.fstat(fd).st_size, 0, []
        while (hole := os.lseek(fd, off, os.SEEK_HOLE)) < size:
            off = os.lseek(fd, hole, os.SEEK_DATA)
            found.append((hole, off - hole))
        return found
    finally:
        os.close(fd)


def test_a_switched_store_has_every_page_allocated(tmp_path: Path) -> None:
    # LMDB's pwrite mode never writes a page that a transaction allocated and
    # freed again (a "loose" page): a pwrite store's file has holes there.
    # Those pages are on the free list; in the writemap mode a store into one
    # on a full disk is SIGBUS.  st_blocks cannot tell one such hole from the
    # filesystem's own blocks, so the switch must allocate the whole file.
    mnt = tmp_path / "mnt"
    mount_image(tmp_path, ["mkfs.ext4", "-q", "-F"], 64 << 20, mnt)
    try:
        path = mnt / "store"
        r = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import random
            from pystore import Store
            from pystore.samples.agent_pb2 import Agent
            rnd = random.Random(1)
            with Store({str(path)!r}) as s:
                s.save_resources("B", [(f"b{{i}}", Agent(model="m" * rnd.randrange(10, 300)))
                                       for i in range(3000)])
                for r in range(12):  # records added and mostly deleted in one txn
                    with s.transaction() as t:
                        n = rnd.randrange(100, 3000)
                        for i in range(n):
                            msg = Agent(model="m" * rnd.randrange(10, 300))
                            t.save_resource("A", f"a{{r}}-{{i}}", msg)
                        for i in range(n):
                            if rnd.random() < 0.95:
                                t.delete_resource("A", f"a{{r}}-{{i}}")
                assert s.stats().write_mode == "pwrite"
            """)], capture_output=True, text=True, cwd=TESTS, timeout=120,
            env={**os.environ, "PYSTORE_WRITEMAP": "0"})
        assert r.returncode == 0, r.stderr[-2000:]
        data = path / "data.mdb"
        holes = _holes(data)
        assert len(holes) > 1, "no loose pages: LMDB changed?"
        # one hole left (the others allocated with the zeros they read as:
        # the file's bytes do not change)
        fd = os.open(data, os.O_WRONLY)
        try:
            for off, length in holes[1:]:
                os.pwrite(fd, b"\0" * length, off)
            os.fsync(fd)
        finally:
            os.close(fd)
        assert len(_holes(data)) == 1
        assert switch_to_writemap(path) is True
        fill_fs(mnt)
        r = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import random
            from pystore import StorageFullError, Store
            from pystore.samples.agent_pb2 import Agent
            rnd = random.Random(2)
            with Store({str(path)!r}) as s:
                assert s.stats().write_mode == "writemap"
                try:
                    for r in range(3000):  # pages from the free list, then growth
                        s.save_resources("B", [(f"b{{rnd.randrange(3000)}}",
                                                Agent(model="w" * rnd.randrange(10, 300)))
                                               for i in range(50)])
                except StorageFullError:
                    print("full")
            """)], capture_output=True, text=True, cwd=TESTS, timeout=120)
        assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
        assert r.stdout.strip() == "full"
    finally:
        umount_fs(mnt)
