"""Attacks on write.lock, the writers' queue of all processes (csrc/ps_xlock.c):
a lock left held in the file itself (a machine that stopped, a copied live
store), threads and processes that end or fork while they hold it, a full
disk, files the writer may not open, and opens of the same store read-only
and writable in one process.  Real processes, real files, real signals."""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lockprocs import counter_code, end, hold
from support import fill_fs, mount_fs, umount_fs, unprivileged_argv

from pystore import StorageFullError, Store, UnsafePathError
from pystore.samples.agent_pb2 import Agent

HERE = Path(__file__).parent


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
    holder = hold(path)
    try:
        on_disk = (path / "write.lock").read_bytes()  # as written back while held
    finally:
        end(holder)
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
    holder = hold(path)
    try:
        shutil.copytree(path, tmp_path / "copy")
        _write_in_another_process(tmp_path / "copy", "in-copy")
    finally:
        end(holder)
    with Store(tmp_path / "copy", readonly=True) as s:
        assert s.list_ids("A") == ["before", "in-copy"]


def test_openers_racing_on_a_stale_write_lock_all_write(tmp_path: Path) -> None:
    """Six processes open (and close) the store over and over at once, its
    write.lock left "held" on disk: whoever finds itself alone initialises
    it, the rest wait for that and use it; each increment lands once."""
    path = tmp_path / "s"
    with Store(path) as s:
        s.save_resource("C", "n", Agent(model="0"))
    holder = hold(path)
    try:
        on_disk = (path / "write.lock").read_bytes()
    finally:
        end(holder)
    with open(path / "write.lock", "r+b") as f:
        f.write(on_disk)
    code = textwrap.dedent(f"""
        from pystore import Store
        from pystore.samples.agent_pb2 import Agent
        for _ in range(8):
            with Store({str(path)!r}, sync=False) as s:
                with s.transaction() as t:
                    n = int(t.get_resource("C", "n", Agent).model)
                    t.save_resource("C", "n", Agent(model=str(n + 1)))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(6)]
    try:
        for p in procs:
            assert p.wait(timeout=60) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    with Store(path, readonly=True) as s:
        assert s.get_resource("C", "n", Agent).model == str(6 * 8)


def test_a_write_lock_in_use_is_not_initialised_again_by_the_next_opener(
    tmp_path: Path,
) -> None:
    """Re-initialising is only for a lock nobody maps: a process that opens
    the store while another holds the write lock must wait for it (the
    holder's mutex is live, and LMDB's mutex alone would not let Ctrl-C in)."""
    path = tmp_path / "s"
    Store(path).close()
    holder = hold(path)
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
            end(w)  # type: ignore[arg-type]
    finally:
        end(holder)
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
                assert str(e).endswith("(write.lock): Permission denied"), str(e)
                print("refused", flush=True)
            else:
                print("opened", flush=True)
            if r is not None:
                assert r.list_ids("A") == ["1"]
                r.close()
        with Store(path, readonly=True) as s:
            print(s.list_ids("A"), flush=True)
    """)
    p = subprocess.run([*unprivileged_argv(fowner=True), sys.executable, "-c", code],
                       capture_output=True, text=True, timeout=60, cwd=HERE)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "refused\nrefused\n['1']\n"


# ---- threads and processes that end or fork holding the queue -------------


def _run(code: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=HERE)


def test_a_thread_that_ends_inside_its_transaction_does_not_stop_other_processes(
    tmp_path: Path,
) -> None:
    """A thread that returns with its Transaction open (never exited): both
    robust mutexes -- write.lock's and LMDB's -- are its dead thread's, so
    another process takes both over and writes; the dead thread's write is
    never committed.  In its own process the store's write lock stays with
    the dead thread (as before write.lock): a write there waits, in slices,
    and Ctrl-C ends that wait."""
    path = tmp_path / "s"
    Store(path).close()
    code = f"""
        import signal, subprocess, sys, threading, time
        from pystore import Store
        from pystore.samples.agent_pb2 import Agent
        s = Store({str(path)!r}, sync=False)
        kept = []
        def leave_it_open():
            t = s.transaction().__enter__()
            t.save_resource("A", "never", Agent())
            kept.append(t)  # the thread ends holding it
        th = threading.Thread(target=leave_it_open)
        th.start()
        th.join()
        other = ("from pystore import Store\\nfrom pystore.samples.agent_pb2 import Agent\\n"
                 "with Store({str(path)!r}, sync=False) as s:\\n"
                 "    s.save_resource('A', 'other', Agent())\\n"
                 "    print(s.list_ids('A'))\\n")
        p = subprocess.run([sys.executable, "-c", other], capture_output=True, text=True,
                           timeout=15)
        print(p.returncode, p.stdout.strip(), flush=True)
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        signal.signal(signal.SIGALRM, lambda *a: signal.raise_signal(signal.SIGINT))
        t0 = time.monotonic()
        try:
            s.save_resource("A", "mine", Agent())
            print("wrote", flush=True)
        except KeyboardInterrupt:
            print("interrupted", time.monotonic() - t0 < 10, flush=True)
        import os
        os._exit(0)
    """
    p = _run(code)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["0 ['other']", "interrupted True"]
    with Store(path) as s:  # and a later writer, in a new process
        s.save_resource("A", "later", Agent())
        assert s.list_ids("A") == ["later", "other"]


def test_fork_while_another_thread_holds_the_write_lock(tmp_path: Path) -> None:
    """The child of a fork() made while a thread of the parent holds the
    store's write transaction: the inherited Store refuses (ForkedError); a
    Store the child opens queues behind the parent's transaction (Ctrl-C
    ends that wait), then writes once the parent commits."""
    path = tmp_path / "s"
    Store(path).close()
    code = f"""
        import os, signal
        from pystore import ForkedError, Store
        from pystore.samples.agent_pb2 import Agent
        from workers import hold_in_thread
        path = {str(path)!r}
        s = Store(path, sync=False)
        th, release = hold_in_thread(s, "A", "parent", Agent())
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                try:
                    s.save_resource("A", "inherited", Agent())
                    code |= 1
                except ForkedError:
                    pass
                with Store(path, sync=False) as c:
                    signal.setitimer(signal.ITIMER_REAL, 0.3)
                    signal.signal(signal.SIGALRM,
                                  lambda *a: signal.raise_signal(signal.SIGINT))
                    try:
                        c.save_resource("A", "child", Agent())
                        code |= 2  # written while the parent held the lock
                    except KeyboardInterrupt:
                        pass
                    os.write(w, b"x")  # now let the parent commit
                    c.save_resource("A", "child", Agent())
                    if "parent" not in c.list_ids("A"):
                        code |= 4
            except BaseException as e:
                print("child:", repr(e), flush=True)
                code |= 8
            os._exit(code)
        os.read(r, 1)
        release.set()
        th.join()
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), sorted(s.list_ids("A")), flush=True)
        s.close()
    """
    p = _run(code)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "0 ['child', 'parent']", p.stdout


def test_multiprocessing_fork_children_write_through_the_queue(tmp_path: Path) -> None:
    """multiprocessing with the fork start method, the parent's Store open:
    each child opens its own Store; every increment lands exactly once."""
    path = tmp_path / "s"
    with Store(path) as s:
        s.save_resource("C", "n", Agent(model="0"))
    code = f"""
        import multiprocessing as mp
        from pystore import Store
        from pystore.samples.agent_pb2 import Agent
        path = {str(path)!r}
        def work(_):
            with Store(path, sync=False) as c:
                for _ in range(40):
                    with c.transaction() as t:
                        n = int(t.get_resource("C", "n", Agent).model)
                        t.save_resource("C", "n", Agent(model=str(n + 1)))
            return 0
        if __name__ == "__main__":
            s = Store(path, sync=False)
            with s.transaction() as t:  # the parent writes too, before and after
                t.save_resource("P", "1", Agent())
            with mp.get_context("fork").Pool(3) as pool:
                assert pool.map(work, range(3)) == [0, 0, 0]
            work(0)
            print(s.get_resource("C", "n", Agent).model)
            s.close()
    """
    p = _run(code, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(4 * 40)


def test_ctrl_c_storm_on_a_waiting_writer_loses_and_leaks_nothing(tmp_path: Path) -> None:
    """Two processes x 2 threads increment a counter in transactions while a
    third process's writer is sent SIGINT every few ms: every increment
    lands once, every write the victim saw acknowledged is there, nobody
    hangs (an interrupt that leaked the queue would stop every writer), and
    the store verifies."""
    path = tmp_path / "s"
    with Store(path) as s:
        s.save_resource("C", "n", Agent(model="0"))
    stop = tmp_path / "stop"
    worker = counter_code(path, 120, 2)
    victim = textwrap.dedent(f"""
        import json, os, sys
        from pystore import Store
        from pystore.samples.agent_pb2 import Agent
        acked, hits = [], 0
        s = Store({str(path)!r}, sync=False)
        print("ready", flush=True)
        i = 0
        def step():
            global i
            i += 1
            if i % 2:
                s.save_resource("V", str(i), Agent(model=str(i)))
            else:
                with s.transaction() as t:
                    t.save_resource("V", str(i), Agent(model=str(i)))
            acked.append(i)
        def loop():
            global hits
            while not os.path.exists({str(stop)!r}):
                try:
                    step()
                except KeyboardInterrupt:
                    hits += 1
        while True:  # (an interrupt may land anywhere, also in a handler)
            try:
                loop()
                break
            except KeyboardInterrupt:
                hits += 1
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        s.close()
        print(json.dumps([acked, hits, i]), flush=True)
    """)
    v = subprocess.Popen([sys.executable, "-c", victim], stdout=subprocess.PIPE, text=True)
    assert v.stdout is not None and v.stdout.readline() == "ready\n"
    workers = [subprocess.Popen([sys.executable, "-c", worker]) for _ in range(2)]
    try:
        rnd = random.Random(12)
        deadline = time.monotonic() + 60
        while any(w.poll() is None for w in workers):
            assert time.monotonic() < deadline, "the writers hung"
            v.send_signal(signal.SIGINT)
            time.sleep(rnd.uniform(0.002, 0.03))
        assert [w.returncode for w in workers] == [0, 0]
        stop.touch()
        out, _ = v.communicate(timeout=30)
        assert v.returncode == 0
        acked, hits, tried = json.loads(out.strip().splitlines()[-1])
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
            w.wait(timeout=30)
        if v.poll() is None:
            v.kill()
            v.wait(timeout=30)
    assert hits > 0  # the storm reached it
    with Store(path, readonly=True) as s:
        assert s.get_resource("C", "n", Agent).model == str(2 * 2 * 120)
        got = {int(i) for i in s.list_ids("V")}
        assert set(acked) <= got <= set(range(1, tried + 1))
    pystore = Path(sys.executable).parent / "pystore"
    r = subprocess.run([str(pystore), "verify", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_backup_and_load_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    """A backup reads (it never queues for the writers' lock), its copy has no
    write.lock and opens writable; `pystore load` makes a new store's own."""
    path = tmp_path / "s"
    with Store(path) as s:
        s.save_resource("A", "1", Agent(model="m"))
    holder = hold(path)
    try:
        with Store(path, sync=False) as s:
            s.backup(tmp_path / "bk")
        pystore = str(Path(sys.executable).parent / "pystore")
        dump = subprocess.run([pystore, "dump", str(path), "-o", str(tmp_path / "d.jsonl")],
                              capture_output=True, text=True, timeout=30)
        assert dump.returncode == 0, dump.stderr
        load = subprocess.run([pystore, "load", str(tmp_path / "loaded"),
                               str(tmp_path / "d.jsonl")], capture_output=True, text=True,
                              timeout=30)
        assert load.returncode == 0, load.stderr
    finally:
        end(holder)
    assert not (tmp_path / "bk" / "write.lock").exists()
    for copy in (tmp_path / "bk", tmp_path / "loaded"):
        with Store(copy) as c:
            assert c.get_resource("A", "1", Agent).model == "m" and c.count("Held") == 0
            c.save_resource("A", "2", Agent())
        assert (copy / "write.lock").stat().st_size == 4096


def _as_user(uid: int) -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root to run as another user")
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv(1): cannot run as another user")
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


@pytest.fixture
def users_store() -> Iterator[Path]:
    """A store of user 65534 made before write.lock existed (it has none),
    in a directory that user can reach."""
    top = Path(tempfile.mkdtemp(prefix="pystore-xlock-", dir="/tmp"))
    try:
        top.chmod(0o755)
        path = top / "s"
        path.mkdir(mode=0o700)
        os.chown(path, 65534, 65534)
        code = (f"from pystore import Store\nfrom pystore.samples.agent_pb2 import Agent\n"
                f"with Store({str(path)!r}) as s: s.save_resource('A', 'u', Agent())\n")
        p = subprocess.run([*_as_user(65534), sys.executable, "-c", code], capture_output=True,
                           text=True, timeout=60, cwd=HERE)
        if p.returncode != 0:
            pytest.skip(f"cannot run as user 65534: {p.stderr.strip()[-300:]}")
        (path / "write.lock").unlink()
        yield path
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_root_writing_a_users_store_leaves_it_writable_by_its_owner(users_store: Path) -> None:
    """An administrator (root) writes a user's store -- e.g. `sudo pystore
    load` -- made before write.lock existed: the write.lock it makes must not
    be root's 0600 file, or the store's own user could never write again
    (data.mdb and lock.mdb keep their owner, as they always did)."""
    path = users_store
    with Store(path) as s:
        s.save_resource("A", "root", Agent())
    st = (path / "write.lock").stat()
    data = (path / "data.mdb").stat()
    assert (st.st_uid, st.st_gid) == (data.st_uid, data.st_gid) == (65534, 65534)
    assert st.st_mode & 0o777 == 0o600
    code = (f"from pystore import Store\nfrom pystore.samples.agent_pb2 import Agent\n"
            f"with Store({str(path)!r}) as s:\n"
            f"    s.save_resource('A', 'u2', Agent())\n"
            f"    print(s.list_ids('A'))\n")
    p = subprocess.run([*_as_user(65534), sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=60, cwd=HERE)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "['root', 'u', 'u2']"


def test_a_hard_link_as_write_lock_is_refused(tmp_path: Path) -> None:
    """write.lock is written (its page, its mutex) and chmod-ed by whoever
    opens the store: a hard link planted in its place must not make an
    opener write another file of its own."""
    path = tmp_path / "s"
    Store(path).close()
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    victim.chmod(0o644)
    (path / "write.lock").unlink()
    os.link(victim, path / "write.lock")
    with pytest.raises(UnsafePathError):
        Store(path)
    assert victim.read_bytes() == b"precious\n" and victim.stat().st_mode & 0o777 == 0o644
    with Store(path, readonly=True) as s:  # a reader never opens it
        assert s.count("A") == 0


def test_closing_a_store_while_its_writer_waits_for_another_process(tmp_path: Path) -> None:
    """Store.close() from one thread while another thread's write waits in
    the queue for another process's transaction: the write ends with
    StoreClosedError within a slice, and when the other process lets go
    nothing touches write.lock's unmapped page (this was a SIGSEGV), the
    queue is not left held, and the thread's other stores still write."""
    path = tmp_path / "s"
    Store(path).close()
    holder = hold(path)
    code = f"""
        import os, signal, threading, time
        from pystore import Store
        from pystore.samples.agent_pb2 import Agent
        s = Store({str(path)!r}, sync=False)
        got = []
        def write():
            try:
                s.save_resource("A", "w", Agent())
                got.append("wrote")
            except Exception as e:
                got.append(type(e).__name__)
            with Store({str(tmp_path / "other")!r}) as o:  # robust mutexes of LMDB's
                o.save_resource("B", "1", Agent())
            got.append("other")
        th = threading.Thread(target=write)
        th.start()
        time.sleep(0.3)
        s.close()
        os.kill({holder.pid}, signal.SIGKILL)  # within the writer's slice: it wakes
        th.join(5)
        print(got, flush=True)
        time.sleep(0.3)
        with Store({str(tmp_path / "other")!r}) as o:
            o.save_resource("B", "2", Agent())
        print("alive", flush=True)
    """
    try:
        p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                           text=True, cwd=HERE, timeout=60)
    finally:
        end(holder)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout == "['StoreClosedError', 'other']\nalive\n"
    _write_in_another_process(path, "after")  # the queue was given back


def test_truncating_write_lock_under_a_live_store_is_no_worse_than_lock_mdb(
    tmp_path: Path,
) -> None:
    """format.md: both files are mapped shared memory, so cutting either to
    0 bytes under a process that has the store open crashes its next write
    with SIGBUS (only the store's owner or root can: the directory is 0700);
    write.lock adds no new way to crash a process."""
    code = textwrap.dedent("""
        import os, sys
        from pystore import Store
        from pystore.samples.agent_pb2 import Agent
        which, path = sys.argv[1], sys.argv[2]
        s = Store(path, sync=False)
        s.save_resource("A", "1", Agent())
        os.truncate(os.path.join(path, which), 0)
        s.save_resource("A", "2", Agent())
    """)
    rcs = {}
    for which in ("lock.mdb", "write.lock"):
        p = subprocess.run([sys.executable, "-c", code, which, str(tmp_path / which)],
                           capture_output=True, text=True, timeout=60, cwd=HERE)
        rcs[which] = p.returncode
    # (SIGBUS; under `make sanitize` ASan's handler turns it into an exit)
    assert rcs["write.lock"] == rcs["lock.mdb"] != 0
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        assert rcs["write.lock"] == -signal.SIGBUS
    for which in ("lock.mdb", "write.lock"):  # and the next opener mends it
        with Store(tmp_path / which) as s:
            s.save_resource("A", "3", Agent())
            assert s.list_ids("A") == ["1", "3"]


def test_a_closed_store_keeps_no_hold_on_write_lock(tmp_path: Path) -> None:
    """close() lets go of write.lock at once -- its descriptor (so the
    filesystem can be unmounted) and its shared flock (so a later opener
    alone can mend a stale lock) -- even while the Store object lives on."""
    path = tmp_path / "s"
    s = Store(path)
    s.save_resource("A", "1", Agent())
    wl = os.path.realpath(path / "write.lock")

    def held() -> bool:
        fds = Path("/proc/self/fd")
        return any(os.path.realpath(fds / fd) == wl for fd in os.listdir(fds)
                   if (fds / fd).is_symlink())

    assert held()
    s.close()
    assert not held()
    with open(wl, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else holds it
    del s
