"""write.lock: the writers' queue of all processes (csrc/ps_xlock.c).

A writer waiting for another process's write transaction waits on
pystore's own robust mutex in slices, so Ctrl-C lands at once instead of
when the other process commits (durability.md, "Interrupts").  The file is
made by the first writable open (also of a store made before it existed),
is private, is never reached through a symlink, and a damaged or empty one
is made anew."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from lockprocs import counter_code, end, hold

from pystore import Store, UnsafePathError
from pystore.samples.agent_pb2 import Agent

HERE = Path(__file__).parent

# What the waiting process runs: the body of `call(s)`, the store open as `s`.
CALLS = {
    "save": 's.save_resource("A", "x", Agent())',
    "save durable": 's.save_resource("A", "x", Agent())',
    "transaction": 'with s.transaction() as t:\n        t.save_resource("A", "x", Agent())',
    "delete kind": 's.delete_resources_by_kind("Held")',
}


def _interrupt_waiting_writer(path: Path, call: str, sync: bool, first: str = "") -> None:
    """A second process's write waits for the holder; SIGINT ends it at once.
    ``first``: a line that process runs before it opens its writable Store."""
    with Store(path, readonly=True) as s:
        had = s.count("A")
    holder = hold(path)
    code = (
        "from pystore import Store\n"
        "from pystore.samples.agent_pb2 import Agent\n"
        f"{first}\n"
        "def call(s):\n"
        f"    {call}\n"
        f"with Store({str(path)!r}, sync={sync!r}) as s:\n"
        "    print('waiting', flush=True)\n"
        "    try:\n"
        "        call(s)\n"
        "        print('wrote', flush=True)\n"
        "    except KeyboardInterrupt:\n"
        "        print('interrupted', flush=True)\n"
    )
    waiter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert waiter.stdout is not None and waiter.stdout.readline() == "waiting\n"
        time.sleep(0.3)
        assert waiter.poll() is None  # still waiting for the holder
        sent = time.monotonic()
        waiter.send_signal(signal.SIGINT)
        try:
            waiter.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pytest.fail("the waiting writer ignored Ctrl-C while another process held the lock")
        assert time.monotonic() - sent < 5
        assert waiter.stdout.read() == "interrupted\n"
        assert waiter.returncode == 0
    finally:
        end(holder, waiter)
    # the holder's transaction was never committed, the waiter wrote nothing
    with Store(path, readonly=True) as s:
        assert s.count("Held") == 0 and s.count("A") == had
    # and the lock is free: a write goes through at once
    with Store(path, sync=False) as s:
        s.save_resource("A", "after", Agent())


@pytest.mark.parametrize("what", sorted(CALLS))
def test_ctrl_c_ends_a_wait_for_another_process_write_transaction(
    tmp_path: Path, what: str
) -> None:
    path = tmp_path / "s"
    Store(path).close()
    _interrupt_waiting_writer(path, CALLS[what], sync=what == "save durable")
    with Store(path, readonly=True) as s:
        assert s.list_ids("A") == ["after"]


def _garbage(p: Path) -> None:
    p.write_bytes(os.urandom(4096))


def _short(p: Path) -> None:
    p.write_bytes(b"\x01" * 100)


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _missing(p: Path) -> None:
    p.unlink()  # a store made before write.lock existed


@pytest.mark.parametrize("damage", [_garbage, _short, _empty, _missing])
def test_a_damaged_or_missing_write_lock_is_made_anew(tmp_path: Path, damage: object) -> None:
    path = tmp_path / "s"
    with Store(path) as s:
        s.save_resource("A", "kept", Agent(model="m"))
    damage(path / "write.lock")  # type: ignore[operator]
    with Store(path) as s:
        assert s.get_resource("A", "kept", Agent).model == "m"
    assert (path / "write.lock").stat().st_size == 4096
    # and it queues writers again: the wait for another process ends on Ctrl-C
    _interrupt_waiting_writer(path, CALLS["save"], sync=False)


def test_the_write_lock_made_by_one_process_is_kept_by_the_next(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Store(path) as s:
        s.save_resource("A", "1", Agent())
    before = (path / "write.lock").stat()
    content = (path / "write.lock").read_bytes()
    code = (f"from pystore import Store\nfrom pystore.samples.agent_pb2 import Agent\n"
            f"with Store({str(path)!r}) as s: s.save_resource('A', '2', Agent())\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    after = (path / "write.lock").stat()
    assert (after.st_ino, after.st_size) == (before.st_ino, 4096)
    assert (path / "write.lock").read_bytes()[:8] == content[:8]  # its marker, not remade


def test_a_writer_opened_after_a_reader_in_one_process_queues(tmp_path: Path) -> None:
    """The env a read-only Store opened first gets the queue with the first
    writable Store on it: that writer's wait for another process ends on
    Ctrl-C too.  (That a reader never makes write.lock:
    test_write_lock_attacks.py::test_a_read_only_open_never_makes_the_write_lock.)"""
    path = tmp_path / "s"
    Store(path).close()
    (path / "write.lock").unlink()
    _interrupt_waiting_writer(path, CALLS["save"], sync=False,
                              first=f"r = Store({str(path)!r}, readonly=True)")
    assert (path / "write.lock").stat().st_size == 4096


def test_a_fifo_as_write_lock_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    Store(path).close()
    (path / "write.lock").unlink()
    os.mkfifo(path / "write.lock")
    for readonly in (False, True):
        with pytest.raises(UnsafePathError):
            Store(path, readonly=readonly)


def test_threads_of_two_processes_take_turns(tmp_path: Path) -> None:
    """Two processes x 3 threads, each appending to one counter record in
    transactions: no update is lost, so the queue and LMDB's mutex agree."""
    path = tmp_path / "s"
    with Store(path) as s:
        s.save_resource("C", "n", Agent(model="0"))
    code = counter_code(path, 150, 3)
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    with Store(path, readonly=True) as s:
        assert s.get_resource("C", "n", Agent).model == str(2 * 3 * 150)


def test_a_thread_waiting_for_another_process_writes_once_it_is_done(tmp_path: Path) -> None:
    path = tmp_path / "s"
    Store(path).close()
    holder = hold(path)
    try:
        with Store(path, sync=False) as s:
            done = threading.Event()

            def write() -> None:
                s.save_resource("A", "late", Agent())
                done.set()

            th = threading.Thread(target=write, daemon=True)
            th.start()
            assert not done.wait(0.5)  # waits, in slices, for the holder
            holder.send_signal(signal.SIGTERM)
            assert done.wait(20)
            assert s.list_ids("A") == ["late"]
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
