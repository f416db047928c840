"""Issue 8, items 1, 5, 9, 13: several handles on one store, re-entry, closing.

Each hang-prone scenario runs in a child process with a timeout, so a
regression fails the test instead of wedging the suite.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import pystore
from pystore import Store
from pystore.samples.agent_pb2 import Agent


def child(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; its stdout and exit code."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout,
    )


# -- item 1: two handles in one process share one LMDB environment ----------

_WRITER_B = """
import sys, time
from pystore import Store
from pystore.samples.agent_pb2 import Agent
s = Store(sys.argv[1])
print("opened", flush=True)
s.save_resource("Agent", "from-b", Agent(model="b"))
print("wrote", time.monotonic(), flush=True)
s.close()
"""


@pytest.mark.parametrize("second", ["readonly-closed", "writable-closed", "collected"])
def test_closing_a_second_handle_keeps_this_process_locks(tmp_path: Path, second: str) -> None:
    """Process A holds a write transaction on handle 1 after a second handle
    on the same store was closed (or collected without close()); process
    B's write must wait for A's commit: A still holds LMDB's lock."""
    path = tmp_path / "store"
    s1 = Store(path, sync=False)
    s1.save_resource("Agent", "seed", Agent(model="seed"))
    s2 = Store(path, readonly=second == "readonly-closed")
    assert s2.get_resource("Agent", "seed", Agent).model == "seed"
    if second == "collected":
        del s2
        gc.collect()
    else:
        s2.close()
    with s1.transaction() as t:
        t.save_resource("Agent", "from-a", Agent(model="a"))
        b = subprocess.Popen(
            [sys.executable, "-c", _WRITER_B, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert b.stdout is not None
        assert b.stdout.readline().strip() == "opened"
        time.sleep(1.0)  # B is now blocked on LMDB's writer lock, or wrote
        assert b.poll() is None, "B wrote while A held the write transaction"
        committed = time.monotonic()
    out, _ = b.communicate(timeout=30)
    assert b.returncode == 0
    assert float(out.split()[1]) >= committed
    assert s1.get_resource("Agent", "from-a", Agent).model == "a"
    assert s1.get_resource("Agent", "from-b", Agent).model == "b"
    s1.close()
    with Store(path, readonly=True) as s:
        assert s.count("Agent") == 3


def test_handles_on_one_store_share_it_and_keep_their_own_options(tmp_path: Path) -> None:
    path = tmp_path / "store"
    w = Store(path, sync=True, map_size=1 << 20)
    ro = Store(path, readonly=True)
    fast = Store(path, sync=False, map_size=1 << 30)  # map_size of a later handle: ignored
    assert fast.stats().map_size == w.stats().map_size == 1 << 20
    with pytest.raises(pystore.ReadOnlyError):
        ro.save_resource("Agent", "x", Agent())
    w.save_resource("Agent", "w", Agent(model="w"))
    fast.save_resource("Agent", "f", Agent(model="f"))
    assert ro.count("Agent") == 2
    big = Agent(instructions="x" * (3 << 20))  # grows the shared map: all handles see it
    fast.save_resource("Agent", "big", big)
    assert ro.get_resource("Agent", "big", Agent) == big
    w.close()
    assert ro.count("Agent") == 3 and fast.count("Agent") == 3
    with pytest.raises(pystore.StoreClosedError):
        w.count("Agent")
    ro.close()
    fast.save_resource("Agent", "after", Agent())
    fast.close()
    with Store(path) as again:  # the last close closed the environment; reopen works
        assert again.count("Agent") == 4


def test_readonly_first_then_writable_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store(path) as s:
        s.save_resource("Agent", "a", Agent())
    ro = Store(path, readonly=True)  # first handle in this process
    with Store(path) as w:
        w.save_resource("Agent", "b", Agent())
    assert ro.count("Agent") == 2
    ro.close()


def test_nothing_else_opens_lock_mdb() -> None:
    """Only LMDB (and the registry's first opener, before LMDB) may open
    lock.mdb: closing any descriptor of it drops the process's locks."""
    root = Path(pystore.__file__).parent
    hits = [p for p in root.rglob("*.py") if "lock.mdb" in p.read_text()
            and "open(" in p.read_text().split("lock.mdb")[1][:200]]
    assert hits == []


# -- item 13: close() from another thread with calls in flight ---------------


def test_close_while_a_thread_holds_a_read_and_begins_another(tmp_path: Path) -> None:
    """The old writer-preferring lock deadlocked: the pending close blocked
    the reader's second begin, and the close waited for that reader."""
    r = child(f"""
        import threading, time
        import pystore
        from pystore._lmdb.fast import env_get
        from pystore.samples.agent_pb2 import Agent
        s = pystore.Store({str(tmp_path / "s")!r}, sync=False)
        s.save_resource("Agent", "a", Agent())
        held, outcome = threading.Event(), []
        def reader():
            with s._reading():
                held.set()
                time.sleep(0.5)  # the close is now waiting for this read
                try:
                    # a call past its Python checks, entering the core now
                    env_get(s._env, b"Agent", b"a")
                    outcome.append("read")
                except pystore.StoreClosedError:
                    outcome.append("closed")
        th = threading.Thread(target=reader)
        th.start()
        held.wait()
        s.close()
        th.join()
        print(outcome[0])
    """, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "closed"


def test_close_with_many_calls_in_flight_never_hangs(tmp_path: Path) -> None:
    r = child(f"""
        import threading
        import pystore
        from pystore.samples.agent_pb2 import Agent
        for round in range(20):
            s = pystore.Store({str(tmp_path / "s")!r}, sync=False)
            s.save_resource("Agent", "a", Agent())
            go = threading.Event()
            def work():
                go.wait()
                try:
                    while True:
                        with s._reading():
                            s.get_bytes("Agent", "a")
                            s.count("Agent")
                except pystore.StoreClosedError:
                    pass
            ths = [threading.Thread(target=work) for _ in range(4)]
            for t in ths:
                t.start()
            go.set()
            s.close()
            for t in ths:
                t.join()
        print("ok")
    """, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


# -- item 5: update_resource's fn re-entering the store ----------------------


def test_close_from_update_fn_is_a_transaction_error(tmp_path: Path) -> None:
    r = child(f"""
        import pystore
        from pystore.samples.agent_pb2 import Agent
        s = pystore.Store({str(tmp_path / "s")!r})
        s.save_resource("Agent", "a", Agent(model="0"))
        def fn(m):
            s.close()
        try:
            s.update_resource("Agent", "a", Agent, fn)
        except pystore.TransactionError as exc:
            print("TransactionError")
        s.save_resource("Agent", "b", Agent())  # still usable
        print(s.get_resource("Agent", "a", Agent).model, s.count("Agent"))
        s.close()
    """, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["TransactionError", "0", "2"]


def test_save_from_update_fn_while_another_thread_saves(tmp_path: Path) -> None:
    """Durable store (group commit): the fn's save used to queue behind the
    other thread's commit, which waited for fn's write lock: both hung."""
    r = child(f"""
        import threading, time
        import pystore
        from pystore.samples.agent_pb2 import Agent
        s = pystore.Store({str(tmp_path / "s")!r}, sync=True)
        s.save_resource("Agent", "a", Agent(model="0"))
        results = []
        def other():
            for i in range(50):
                s.save_resource("Agent", f"o{{i}}", Agent())
            results.append("other done")
        def fn(m):
            th.start()
            time.sleep(0.2)
            for call in (lambda: s.save_resource("Agent", "inner", Agent()),
                         lambda: s.get_resource("Agent", "a", Agent),
                         lambda: s.delete_resource("Agent", "a")):
                try:
                    call()
                    results.append("allowed")
                except pystore.TransactionError:
                    results.append("refused")
            m.model = "1"
        th = threading.Thread(target=other)
        s.update_resource("Agent", "a", Agent, fn)
        th.join()
        print(*results)
        print(s.get_resource("Agent", "a", Agent).model, s.count("Agent"))
    """, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "refused refused refused other done"
    assert lines[1] == "1 51"


# -- item 9: Transaction.__exit__ from another thread ------------------------


def test_transaction_exit_from_another_thread(tmp_path: Path) -> None:
    s = Store(tmp_path / "s", sync=False)
    tx = s.transaction()
    t = tx.__enter__()
    t.save_resource("Agent", "x", Agent(model="x"))
    errors: list[BaseException] = []

    def finish_elsewhere() -> None:
        try:
            tx.__exit__(None, None, None)
        except BaseException as exc:
            errors.append(exc)

    th = threading.Thread(target=finish_elsewhere)
    th.start()
    th.join(10)
    assert len(errors) == 1 and isinstance(errors[0], pystore.TransactionError)
    t.save_resource("Agent", "y", Agent(model="y"))  # still this thread's
    tx.__exit__(None, None, None)
    done: list[int] = []
    writer = threading.Thread(
        target=lambda: (s.save_resource("Agent", "z", Agent()), done.append(s.count("Agent")))
    )
    writer.start()
    writer.join(10)
    assert done == [3]
    s.close()
