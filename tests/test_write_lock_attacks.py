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
