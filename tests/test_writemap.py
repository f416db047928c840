"""Issue 12: the LMDB backend writes through MDB_WRITEMAP, safely.

The map file is preallocated (posix_fallocate) at open and before every
growth, so a full disk is StorageFullError and never SIGBUS; the mode is
chosen by filesystem when a store is created, recorded in it (meta
``format_version`` 3) and kept by every later writer.  Writers that might
crash run in child processes: a death by signal fails the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import WRITEMAP_FS, fill_fs, fs_type, mount_fs, mount_image, umount_fs
from workers import Child, payload

from pystore import StorageFullError, Store

MIB = 1 << 20
TESTS = Path(__file__).parent
def _child(code: str, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.pop("PYSTORE_WRITEMAP", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=TESTS)


def _format(path: Path) -> int:
    with Store(path, readonly=True) as s:
        t = s._begin(False)
        try:
            raw = t.meta_get(b"format_version")
        finally:
            t.abort()
    assert raw is not None
    return int.from_bytes(raw, "little")


def _mode_in_child(path: Path, env: dict[str, str] | None = None, write: str = "x") -> str:
    r = _child(f"""
        from pystore import Store
        from workers import payload
        with Store({str(path)!r}) as s:
            s.save_resource("Mode", {write!r}, payload("Mode", {write!r}))
            print(s.stats().write_mode)
        """, env)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


@pytest.fixture
def writemap_dir(tmp_path: Path) -> Path:
    if fs_type(tmp_path) not in WRITEMAP_FS:
        pytest.skip(f"{fs_type(tmp_path)}: pystore keeps the pwrite mode there")
    return tmp_path


@pytest.fixture(params=["tmpfs", "ext4"])
def small_fs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB filesystem: tmpfs, or ext4 on a loop device (ext4 keeps what
    a failed fallocate got, so the truncate-back is visible there)."""
    mnt = tmp_path / "mnt"
    if request.param == "tmpfs":
        mount_fs(["-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs"], mnt)
    else:
        mount_image(tmp_path, ["mkfs.ext4", "-q", "-F"], 24 * MIB, mnt)
    try:
        yield mnt
    finally:
        umount_fs(mnt)


# -- the mode: chosen at creation, recorded, honoured -----------------------


def test_new_store_mode_follows_the_filesystem(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store(path) as s:
        st = s.stats()
    if fs_type(tmp_path) in WRITEMAP_FS:
        assert st.write_mode == "writemap"
        assert _format(path) == 3
        # the whole map is allocated, and an empty store's map is small
        file = os.stat(path / "data.mdb")
        assert file.st_size == st.map_size <= 8 * MIB
        assert file.st_blocks * 512 >= st.map_size
    else:
        assert st.write_mode == "pwrite" and _format(path) == 2
    assert st.format_version == 2  # the data format is the same in both modes


@pytest.mark.parametrize(("mkfs", "size", "mode"), [
    (["mkfs.xfs", "-q", "-f"], 300 * MIB, "writemap"),  # xfs: 300 MiB at least
    (["mkfs.btrfs", "-q", "--mixed", "-f"], 48 * MIB, "pwrite"),  # copy-on-write
])
def test_mode_on_xfs_and_btrfs(tmp_path: Path, mkfs: list[str], size: int, mode: str) -> None:
    mnt = tmp_path / "mnt"
    mount_image(tmp_path, mkfs, size, mnt)
    try:
        with Store(mnt / "store") as s:
            s.save_resource("Agent", "a", payload("Agent", "a"))
            assert s.stats().write_mode == mode
        assert _format(mnt / "store") == (3 if mode == "writemap" else 2)
    finally:
        umount_fs(mnt)


def test_full_btrfs_is_storage_full_never_sigbus(tmp_path: Path) -> None:
    """btrfs copies on write: a full filesystem made LMDB's next store into
    lock.mdb's map (the commit's transaction id) raise SIGBUS, whatever was
    preallocated.  Commits there keep PS_COW_SLACK (16 MiB) free instead."""
    mnt = tmp_path / "mnt"
    mount_image(tmp_path, ["mkfs.btrfs", "-q", "--mixed", "-f"], 48 * MIB, mnt)
    try:
        path = mnt / "store"
        filler = mnt / "filler"
        filler.write_bytes(b"\1" * (8 * MIB))
        r = _child(_FILL.format(path=str(path), wait=""), timeout=300)
        assert r.returncode == 0, f"writer died: {r.returncode} {r.stderr[-2000:]}"
        lines = dict(line.split(" ", 1) for line in r.stdout.splitlines())
        assert lines["mode"] == "pwrite", r.stdout
        kind, errno_, n = lines["error"].split()
        assert (kind, errno_) == ("StorageFullError", "28"), r.stdout
        assert lines["again"] == "StorageFullError", r.stdout
        committed = int(n)
        assert committed * 1000 > 8 * MIB
        with Store(path) as s:  # readers live on, the data whole
            assert s.count("Fill") == committed
            x = "r00007-3"
            assert s.get_resource("Fill", x, type(payload("Fill", x))) == payload("Fill", x)
            with pytest.raises(StorageFullError):  # a delete writes new blocks too
                s.delete_resource("Fill", x)
            filler.unlink()  # space freed elsewhere: writes go through again
            os.sync()  # (btrfs shows freed space once its transaction commits)
            assert s.delete_resources_by_kind("Fill") == committed
            s.save_resource("After", "a", payload("After", "a"))
            assert s.count("After") == 1
    finally:
        umount_fs(mnt)


def test_unknown_filesystem_keeps_pwrite(tmp_path: Path) -> None:
    """ramfs: not one of the filesystems pystore vouches for."""
    mnt = tmp_path / "ramfs"
    mount_fs(["-t", "ramfs", "ramfs"], mnt)
    try:
        with Store(mnt / "store") as s:
            s.save_resource("Agent", "a", payload("Agent", "a"))
            assert s.stats().write_mode == "pwrite"
        assert _format(mnt / "store") == 2
    finally:
        umount_fs(mnt)


def test_forced_pwrite_is_recorded_and_kept(writemap_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = writemap_dir / "store"
    monkeypatch.setenv("PYSTORE_WRITEMAP", "0")
    with Store(path) as s:
        s.save_resource("Agent", "a", payload("Agent", "a"))
        assert s.stats().write_mode == "pwrite"
    monkeypatch.delenv("PYSTORE_WRITEMAP")
    assert _format(path) == 2
    # a later opener that would choose writemap for a new store keeps pwrite
    assert _mode_in_child(path) == "pwrite"
    with Store(path) as s:
        assert s.stats().write_mode == "pwrite"
        assert s.count("Mode") == 1 and s.count("Agent") == 1
        assert os.stat(path / "data.mdb").st_size < s.stats().map_size


def test_writemap_is_recorded_and_kept_across_processes(writemap_dir: Path) -> None:
    path = writemap_dir / "store"
    with Store(path) as s:
        s.save_resource("Agent", "a", payload("Agent", "a"))
        assert s.stats().write_mode == "writemap"
        # another process asking for pwrite writes in the recorded mode,
        # while this one has the store open
        assert _mode_in_child(path, {"PYSTORE_WRITEMAP": "0"}, "b") == "writemap"
        assert _mode_in_child(path, {}, "c") == "writemap"
        s.save_resource("Agent", "d", payload("Agent", "d"))
        assert s.count("Mode") == 2
    assert _format(path) == 3
    with Store(path, readonly=True) as s:
        assert s.count("Mode") == 2 and s.count("Agent") == 2


def test_format_2_store_keeps_working_in_pwrite(writemap_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A store of a build before writemap (format 2, no mode) stays pwrite;
    a writemap store carries format_version 3, which those builds refuse
    (they accept format 2 only: IncompatibleStoreError, also read-only)."""
    path = writemap_dir / "old"
    monkeypatch.setenv("PYSTORE_WRITEMAP", "0")
    with Store(path) as s:
        s.save_resources("Agent", [(f"a{i}", payload("Agent", f"a{i}")) for i in range(50)])
    monkeypatch.delenv("PYSTORE_WRITEMAP")
    with Store(path) as s:
        s.save_resources("Agent", [(f"b{i}", payload("Agent", f"b{i}")) for i in range(50)])
        assert s.stats().write_mode == "pwrite" and s.count("Agent") == 100
    assert _format(path) == 2


# -- crashes, full disks, growth ---------------------------------------------


@pytest.mark.parametrize("sync", ["sync", "nosync"])
def test_sigkill_loses_no_acknowledged_write(writemap_dir: Path, sync: str) -> None:
    path = writemap_dir / "store"
    with Store(path) as s:
        assert s.stats().write_mode == "writemap"
    child = Child("save", str(path), "0", sync, timeout=120)
    acked = []
    target = 300 if sync == "sync" else 3000  # the nosync writer grows the map
    while len(acked) < target:
        line = child.line()
        assert line, f"writer died early: {child.finish()} {getattr(child, 'stderr', '')}"
        if line.isdigit():
            acked.append(int(line))
    acked += [int(x) for x in child.kill() if x.strip().isdigit()]
    assert child.proc.returncode == -9
    with Store(path, readonly=True) as s:
        assert s.count("Crash") >= len(acked)
        for i in acked:
            x = f"c{i:07d}"
            assert s.get_resource("Crash", x, type(payload("Crash", x))) == payload("Crash", x)


_FILL = """
    import os, pystore
    from workers import payload
    s = pystore.Store({path!r}, sync=True)
    print("mode", s.stats().write_mode, flush=True)
    {wait}
    n = 0
    try:
        for i in range(100000):
            ids = [f"r{{i:05d}}-{{j}}" for j in range(20)]
            s.save_resources("Fill", [(x, payload("Fill", x)) for x in ids])
            n += 20
        print("never full")
    except pystore.StoreError as exc:
        print("error", type(exc).__name__, getattr(exc, "errno", None), n, flush=True)
    st = os.stat(os.path.join({path!r}, "data.mdb"))
    print("file", st.st_size, st.st_blocks * 512, s.stats().map_size, flush=True)
    try:  # still full: a second write fails the same way
        s.save_resources("Again", [(f"z{{j}}", payload("Again", f"z{{j}}")) for j in range(50)])
        print("again ok")
    except pystore.StoreError as exc:
        print("again", type(exc).__name__)
    s.close()
"""


def _check_full(r: subprocess.CompletedProcess[str], path: Path) -> int:
    assert r.returncode == 0, f"writer died: {r.returncode} {r.stderr[-2000:]}"
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert lines["mode"] == "writemap", r.stdout
    kind, errno_, n = lines["error"].split()
    assert (kind, errno_) == ("StorageFullError", "28"), r.stdout
    size, allocated, map_size = map(int, lines["file"].split())
    # the file is the map, no partial allocation left past it
    assert size == map_size and allocated <= size + 64 * 1024, r.stdout
    # free pages inside the map may still take a small batch
    assert lines["again"] in ("ok", "StorageFullError"), r.stdout
    committed = int(n)
    assert committed > 0
    with Store(path, readonly=True) as s:
        assert s.count("Fill") == committed
        for i in range(0, committed // 20, 7):
            x = f"r{i:05d}-3"
            assert s.get_resource("Fill", x, type(payload("Fill", x))) == payload("Fill", x)
    return committed


def test_full_disk_is_storage_full_never_sigbus(small_fs: Path) -> None:
    path = small_fs / "store"
    filler = small_fs / "filler"
    filler.write_bytes(b"\0" * (4 * MIB))
    r = _child(_FILL.format(path=str(path), wait=""), timeout=300)
    committed = _check_full(r, path)
    assert committed * 1000 > 8 * MIB  # the map grew many times before
    # space freed elsewhere: the store grows again and keeps everything
    filler.unlink()
    with Store(path) as s:
        s.save_resources("After", [(f"a{i}", payload("After", f"a{i}")) for i in range(1000)])
        assert s.count("After") == 1000 and s.count("Fill") == committed


def test_disk_filled_by_another_file_after_open(small_fs: Path) -> None:
    path = small_fs / "store"
    code = _FILL.format(path=str(path), wait="input()")
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=TESTS,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    first = proc.stdout.readline()
    fill_fs(small_fs, (1 << 16, 4096))  # behind the open store's back
    out, err = proc.communicate("go\n", timeout=300)
    r = subprocess.CompletedProcess(proc.args, proc.returncode, first + out, err)
    _check_full(r, path)


def test_reader_process_while_the_writer_grows(writemap_dir: Path) -> None:
    path = writemap_dir / "store"
    stop = writemap_dir / "stop"
    with Store(path, sync=False) as s:
        s.save_resource("Grow", "g00000", payload("Grow", "g00000"))
        first_map = s.stats().map_size
        reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            import os, random
            from pystore import Store
            from workers import payload
            reads = 0
            with Store({str(path)!r}, readonly=True) as s:
                while not os.path.exists({str(stop)!r}):
                    n = s.count("Grow")
                    x = f"g{{random.randrange(n):05d}}"
                    assert s.get_resource("Grow", x, type(payload("Grow", x))) == payload("Grow", x)
                    reads += 1
                    if reads == 1:
                        print("reading", flush=True)
            print(reads)
            """)], cwd=TESTS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert reader.stdout is not None
        assert reader.stdout.readline() == "reading\n"  # it reads before the growth starts
        try:
            for b in range(40):
                ids = [f"g{i:05d}" for i in range(1 + b * 250, 1 + (b + 1) * 250)]
                s.save_resources("Grow", [(x, payload("Grow", x)) for x in ids])
            assert s.stats().map_size > 4 * first_map
        finally:
            stop.touch()
            out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, f"reader died: {reader.returncode} {err[-2000:]}"
    assert int(out) > 0


def test_creators_of_both_modes_racing_agree(writemap_dir: Path) -> None:
    """Two processes create one store at once, one asking for pwrite: both
    end up writing in the mode that was recorded (the loser reopens)."""
    code = """
        import sys
        from pystore import Store
        from workers import payload
        with Store(sys.argv[1]) as s:
            s.save_resource("Race", sys.argv[2], payload("Race", sys.argv[2]))
            print(s.stats().write_mode)
        """
    base = dict(os.environ)
    base.pop("PYSTORE_WRITEMAP", None)
    for round_ in range(4):
        path = writemap_dir / f"store{round_}"
        procs = [
            subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(path), who],
                             cwd=TESTS, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**base, "PYSTORE_WRITEMAP": flag})
            for who, flag in (("a", "0"), ("b", "1"))
        ]
        outs = [p.communicate(timeout=60) for p in procs]
        for p, (_, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err[-2000:]
        modes = {out.strip() for out, _ in outs}
        assert len(modes) == 1, modes
        with Store(path, readonly=True) as s:
            assert s.count("Race") == 2
            assert s.stats().write_mode in ("pwrite", "writemap")
        assert _format(path) == (3 if modes == {"writemap"} else 2)


@pytest.mark.parametrize("mode", ["writemap", "pwrite"])
def test_sync_false_commits_without_a_flush_and_sync_true_with_one(
    writemap_dir: Path, mode: str
) -> None:
    """Counted with strace: a durable commit flushes (msync in the writemap
    mode, fdatasync in the pwrite mode), a sync=False one does not.  LMDB
    0.9 ignores MDB_NOSYNC given to mdb_txn_begin, so sync=False used to
    flush every commit."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    path = writemap_dir / "store"
    env = {"PYSTORE_WRITEMAP": "0" if mode == "pwrite" else "1"}
    counts = {}
    for sync in (False, True):
        code = textwrap.dedent(f"""
            import sys
            from pystore import Store
            from workers import payload
            with Store({str(path)!r}, sync={sync}) as s:
                assert s.stats().write_mode == {mode!r}
                for i in range(40):
                    s.save_resource("S", f"s{{i}}", payload("S", f"s{{i}}"))
            """)
        out = writemap_dir / f"strace-{sync}"
        r = subprocess.run(["strace", "-f", "-c", "-o", str(out), "-e",
                            "trace=fdatasync,fsync,msync", sys.executable, "-c", code],
                           capture_output=True, text=True, timeout=120, cwd=TESTS,
                           env={**os.environ, **env})
        if r.returncode != 0 and "ptrace" in r.stderr:
            pytest.skip(f"strace cannot trace here: {r.stderr.strip()[-200:]}")
        assert r.returncode == 0, r.stderr[-2000:]
        calls = 0
        for line in out.read_text().splitlines():
            parts = line.split()
            if parts and parts[-1] in ("fdatasync", "fsync", "msync"):
                calls += int(parts[3])
        counts[sync] = calls
    assert counts[False] < 5, counts  # the open's own writes, not one per commit
    assert counts[True] >= 40, counts


def test_a_hole_in_the_map_is_allocated_at_open(tmp_path: Path) -> None:
    """A store's map with a hole (a sparse copy, a punched page) is made
    whole at open: a store into the hole through the map on a full disk
    would be SIGBUS.  The hole here sits among many small extents, whose
    blocks make st_blocks cover the file's size, so only SEEK_HOLE sees it."""
    mnt = tmp_path / "mnt"
    mount_image(tmp_path, ["mkfs.ext4", "-q", "-F"], 64 * MIB, mnt)
    try:
        path = mnt / "store"
        with Store(path, map_size=16 * MIB) as s:
            assert s.stats().write_mode == "writemap"
            s.save_resources("Seed", [(f"s{i}", payload("Seed", f"s{i}")) for i in range(50)])
        data = path / "data.mdb"
        size = os.stat(data).st_size
        offsets = [8 * MIB + 8192 * k for k in range(400)]  # the unused end of the map
        for off in offsets:
            subprocess.run(["fallocate", "-p", "-o", str(off), "-l", "4096", str(data)],
                           check=True)
        fd = os.open(data, os.O_WRONLY)
        try:
            for off in offsets[1:]:  # zeros written back: one hole left, many extents
                os.pwrite(fd, b"\0" * 4096, off)
            os.fsync(fd)
        finally:
            os.close(fd)
        st = os.stat(data)
        assert st.st_size == size and st.st_blocks * 512 >= size  # st_blocks hides it
        fd = os.open(data, os.O_RDONLY)
        try:
            assert os.lseek(fd, offsets[0], os.SEEK_HOLE) == offsets[0]  # the punched one
        finally:
            os.close(fd)
        fill_fs(mnt)
        r = _child(_FILL.format(path=str(path), wait=""), timeout=300)
        # StorageFullError from the open (the hole cannot be allocated) or
        # from a write; never a death by signal (SIGBUS: -7)
        assert r.returncode in (0, 1), f"writer died: {r.returncode} {r.stderr[-2000:]}"
        assert "StorageFullError" in r.stdout + r.stderr, (r.stdout, r.stderr[-2000:])
        with Store(path, readonly=True) as s:
            assert s.count("Seed") == 50
    finally:
        umount_fs(mnt)
