"""Attacks on write.lock, the writers' queue of all processes (csrc/ps_xlock.c):
a lock left held in the file itself (a machine that stopped, a copied live
store), threads and processes that end or fork while they hold it, a full
disk, files the writer may not open, and opens of the same store read-only
and writable in one process.  Real processes, real files, real signals."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pystore import StorageFullError, Store, StoreOSError
from pystore.samples.agent_pb2 import Agent
from support import fill_fs, mount_fs, umount_fs

HERE = Path(__file__).parent


def _hold(path: Path) -> subprocess.Popen[str]:
    """Another process holding a write transaction until killed."""
    p = subprocess.Popen(
        [sys.executable, str(HERE / "race_workers.py"), "hold", str(path), "k", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
    )
    assert p.stdout is not None and p.stdout.readline() == "ready\n"
    assert p.stdout.readline() == "holding\n"
    return p


def _end(p: subprocess.Popen[str]) -> None:
    if p.poll() is None:
        p.kill()
    p.wait(timeout=30)
    if p.stdout is not None:
        p.stdout.close()


def _write_in_another_process(path: Path, rid: str, timeout: float = 10) -> None:
    """A save by a fresh process, which must end within `timeout` seconds."""
    code = (f"from pystore import Store\nfrom pystore.samples.agent_pb2 import Agent\n"
            f"with Store({str(path)!r}, sync=False) as s:\n"
            f"    s.save_resource('A', {rid!r}, Agent())\n")
    try:
        subprocess.run([sys.executable, "-c", code], check=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail("a writer waited for a write lock that nobody holds")


# ---- a lock left held in the file ----------------------------------------


def test_a_write_lock_left_held_by_a_machine_that_stopped_does_not_block_writers(
    tmp_path: Path,
) -> None:
    """The mutex lives in a file's page, which the kernel writes back to disk
    while a writer holds it: after a power loss (or a VM reset) the file says
    "held by thread N" and no process is left to die and free it.  LMDB
    re-initialises lock.mdb when it is its only opener; write.lock must be
    re-initialised the same way, or every writer waits forever."""
    path = tmp_path / "s"
    with Store(path) as s:
        s.save_resource("A", "before", Agent())
    holder = _hold(path)
    try:
        on_disk = (path / "write.lock").read_bytes()  # as written back while held
    finally:
        _end(holder)
    with open(path / "write.lock", "r+b") as f:  # the disk's page after the reboot
        f.write(on_disk)
    _write_in_another_process(path, "after")
    with Store(path, readonly=True) as s:
        assert s.list_ids("A") == ["after", "before"]
        assert s.count("Held") == 0


def test_a_store_copied_while_a_writer_held_it_is_writable(tmp_path: Path) -> None:
    """`cp -a` (or a filesystem snapshot) of a live store catches write.lock
    held by a thread of a process that goes on living, elsewhere: the copy's
    mutex has no owner that could ever free it."""
    path = tmp_path / "s"
    with Store(path) as s:
        s.save_resource("A", "before", Agent())
    holder = _hold(path)
    try:
        shutil.copytree(path, tmp_path / "copy")
        _write_in_another_process(tmp_path / "copy", "in-copy")
    finally:
        _end(holder)
    with Store(tmp_path / "copy", readonly=True) as s:
        assert s.list_ids("A") == ["before", "in-copy"]


def test_a_write_lock_in_use_is_not_initialised_again_by_the_next_opener(
    tmp_path: Path,
) -> None:
    """Re-initialising is only for a lock nobody maps: a process that opens
    the store while another holds the write lock must wait for it (the
    holder's mutex is live, and LMDB's mutex alone would not let Ctrl-C in)."""
    path = tmp_path / "s"
    Store(path).close()
    holder = _hold(path)
    try:
        code = (f"from pystore import Store\nfrom pystore.samples.agent_pb2 import Agent\n"
                f"with Store({str(path)!r}, sync=False) as s:\n"
                f"    print('open', flush=True)\n"
                f"    try:\n"
                f"        s.save_resource('A', 'x', Agent())\n"
                f"    except KeyboardInterrupt:\n"
                f"        print('interrupted', flush=True)\n")
        w = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            assert w.stdout is not None and w.stdout.readline() == "open\n"
            time.sleep(0.3)
            assert w.poll() is None
            w.send_signal(signal.SIGINT)  # it waits in the queue: Ctrl-C lands
            assert w.wait(timeout=10) == 0
            assert w.stdout.read() == "interrupted\n"
        finally:
            _end(w)  # type: ignore[arg-type]
    finally:
        _end(holder)
    with Store(path, readonly=True) as s:
        assert s.count("A") == 0


# ---- read-only and writable opens of one store in one process -------------


def test_a_read_only_open_never_makes_the_write_lock(tmp_path: Path) -> None:
    """durability.md / format.md: "a read-only open never makes or opens it"
    -- also where this user could write the store (the env is then opened
    writable, to be shared with a writable Store of the process later)."""
    path = tmp_path / "s"
    with Store(path) as s:
        s.save_resource("A", "1", Agent())
    (path / "write.lock").unlink()
    with Store(path, readonly=True) as s:
        assert s.list_ids("A") == ["1"]
        assert not (path / "write.lock").exists()
        # a writable Store of the same process (one shared env) makes it
        # and queues: a wait for another process's transaction ends on Ctrl-C
        with Store(path) as w:
            assert (path / "write.lock").stat().st_size == 4096
            w.save_resource("A", "2", Agent())
    assert not (path / "lock.mdb").is_symlink()


def test_a_writable_store_opened_after_a_read_only_one_queues(tmp_path: Path) -> None:
    """A process that opened the store read-only first, then writable: its
    writer waits for another process's transaction in the queue, so Ctrl-C
    ends the wait (not in LMDB's mutex, where it would wait for the holder)."""
    path = tmp_path / "s"
    Store(path).close()
    (path / "write.lock").unlink()
    holder = _hold(path)
    code = (f"from pystore import Store\nfrom pystore.samples.agent_pb2 import Agent\n"
            f"r = Store({str(path)!r}, readonly=True)\n"
            f"with Store({str(path)!r}, sync=False) as s:\n"
            f"    print('open', flush=True)\n"
            f"    try:\n"
            f"        s.save_resource('A', 'x', Agent())\n"
            f"    except KeyboardInterrupt:\n"
            f"        print('interrupted', flush=True)\n")
    w = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert w.stdout is not None and w.stdout.readline() == "open\n"
        time.sleep(0.3)
        assert w.poll() is None
        w.send_signal(signal.SIGINT)
        try:
            w.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pytest.fail("Ctrl-C did not end the wait: the writable Store did not queue")
        assert w.stdout.read() == "interrupted\n"
    finally:
        _end(w)  # type: ignore[arg-type]
        _end(holder)


@pytest.fixture
def full_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A store on a small tmpfs that is then filled, its write.lock gone (a
    store made before write.lock existed, or restored without it)."""
    mnt = tmp_path / "mnt"
    mount_fs(["-t", "tmpfs", "-o", "size=4m", "tmpfs"], mnt)
    try:
        path = mnt / "s"
        with Store(path, sync=False) as s:
            s.save_resource("A", "kept", Agent(model="m"))
        (path / "write.lock").unlink()
        fill_fs(mnt)
        yield path
    finally:
        umount_fs(mnt)


def test_a_full_disk_fails_a_writable_open_and_a_reader_still_reads(full_tmpfs: Path) -> None:
    path = full_tmpfs
    with pytest.raises(StorageFullError):
        Store(path)
    assert not (path / "write.lock").exists() or (path / "write.lock").stat().st_size in (0, 4096)
    with Store(path, readonly=True) as s:
        assert s.get_resource("A", "kept", Agent).model == "m"
        # the same open, writable, in the same process: the same error
        with pytest.raises(StorageFullError):
            Store(path)
        assert s.get_resource("A", "kept", Agent).model == "m"
    (path.parent / "filler").unlink()
    with Store(path) as s:  # space again: the queue is made
        s.save_resource("A", "new", Agent())
    assert (path / "write.lock").stat().st_size == 4096


# ---- a write.lock this user may not open ----------------------------------


def _unprivileged() -> list[str]:
    """argv prefix: root without the capabilities that override file modes."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv(1): cannot run as an unprivileged user")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]


def test_a_write_lock_the_writer_may_not_open_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Store(path) as s:
        s.save_resource("A", "1", Agent())
    wl = path / "write.lock"
    os.chown(wl, 65534, 65534)
    os.chmod(wl, 0)
    code = textwrap.dedent(f"""
        import errno
        from pystore import Store, StoreOSError
        from pystore.samples.agent_pb2 import Agent
        path = {str(path)!r}
        for first_read_only in (False, True):
            r = Store(path, readonly=True) if first_read_only else None
            try:
                Store(path)
            except StoreOSError as e:
                assert e.errno == errno.EACCES, e
                assert "write.lock" in str(e) or "ermission" in str(e), str(e)
                print("refused", flush=True)
            else:
                print("opened", flush=True)
            if r is not None:
                assert r.list_ids("A") == ["1"]
                r.close()
        with Store(path, readonly=True) as s:
            print(s.list_ids("A"), flush=True)
    """)
    p = subprocess.run([*_unprivileged(), sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=60, cwd=HERE)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "refused\nrefused\n['1']\n"
