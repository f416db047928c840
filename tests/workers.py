"""Child-process programs of the reliability tests, and the payloads they write.

Run as ``python workers.py MODE STORE [ARGS...]``.  Writers print one line
per acknowledged operation (after the call returned) and flush it, so a
parent that kills them knows exactly which saves were acknowledged.  The
payload of every record is a pure function of its kind and id, so a reader
can check any record without knowing what else happened.
"""

from __future__ import annotations

import sys
import threading
import time

from pystore import Store
from pystore.samples.agent_pb2 import Agent
from pystore.samples.common_pb2 import ResourceMetadata

BATCH = 20  # records per save_resources call ("many")
TXN_SIZE = 10  # records per transaction() ("txn")
DOOMED = 400  # records per kind filled and then deleted ("delkind")


def payload(kind: str, id: str) -> Agent:
    """The message stored under ``kind/id``; some are a few pages long."""
    n = sum(id.encode()) % 7
    return Agent(
        metadata=ResourceMetadata(id=id, name=f"{kind} {id}", labels={"kind": kind}),
        instructions=f"{kind}/{id};" * (1 + 300 * (n == 0)),
        model="m",
        temperature=n / 8,
    )


def ack(*parts: object) -> None:
    """One line, one write(2): a kill never leaves half a line."""
    sys.stdout.write(" ".join(map(str, parts)) + "\n")
    sys.stdout.flush()


def run_save(store: Store, start: int) -> None:
    for i in range(start, start + 1_000_000):
        store.save_resource("Crash", f"c{i:07d}", payload("Crash", f"c{i:07d}"))
        ack(i)


def run_many(store: Store, start: int) -> None:
    for i in range(start, start + 1_000_000):
        ids = [f"b{i:07d}-{j:02d}" for j in range(BATCH)]
        store.save_resources("Batch", [(x, payload("Batch", x)) for x in ids])
        ack(i)


def run_txn(store: Store, start: int) -> None:
    for i in range(start, start + 1_000_000):
        with store.transaction() as t:
            for j in range(TXN_SIZE):
                x = f"t{i:07d}-{j:02d}"
                t.save_resource("Txn", x, payload("Txn", x))
            t.save_resource("TxnCounter", "last", Agent(model=str(i)))
        ack(i)


def run_delkind(store: Store, start: int) -> None:
    for i in range(start, start + 1_000_000):
        kind = f"Doomed{i:05d}"
        ids = [f"d{j:04d}" for j in range(DOOMED)]
        store.save_resources(kind, [(x, payload(kind, x)) for x in ids])
        ack("filled", i)
        n = store.delete_resources_by_kind(kind)
        ack("deleted", i, n)


def run_follow(store: Store, expect: int) -> None:
    """Readonly follower: report each new count of kind Follow until ``expect``."""
    seen = -1
    deadline = time.monotonic() + 60
    while seen < expect and time.monotonic() < deadline:
        n = store.count("Follow")
        if n != seen:
            if n > 0:
                x = f"f{n - 1:05d}"
                got = store.get_resource("Follow", x, Agent)
                if got != payload("Follow", x):
                    ack("mismatch", x)
                    return
            seen = n
            ack("count", n)
        time.sleep(0.001)


def run_hold_reader(path: str) -> None:
    """Open readonly, hold a read transaction open, then wait to be killed."""
    from pystore._lmdb._native import ffi, lib

    store = Store(path, readonly=True)
    pp = ffi.new("ps_txn **")
    rc = lib.ps_txn_begin(store._env, 0, pp)
    ack("holding", rc)
    time.sleep(120)


def run_hold_writer(path: str) -> None:
    """Hold a write transaction until a line arrives on stdin (at most 20 s)."""
    import select

    with Store(path) as store, store.transaction() as t:
        t.save_resource("Held", "h", payload("Held", "h"))
        ack("holding")
        select.select([sys.stdin], [], [], 20.0)
    ack("committed")


def hold_in_thread(store: Store, kind: str, id: str, msg: Agent) -> tuple[
    threading.Thread, threading.Event
]:
    """A thread that saves kind/id in a ``transaction()`` of ``store`` and
    keeps it open -- the store's write lock held -- until the returned
    event is set; returned once the thread holds it (or 30 s passed)."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction() as t:
            t.save_resource(kind, id, msg)
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(30)
    return holder, release


def run_fork(path: str) -> None:
    """Fork with an open store while another thread holds a write transaction
    (its locks are copied held into the child); the child reports what
    touching the store did, and must not hang on those locks."""
    import os

    from pystore import ForkedError
    from pystore._lmdb._native import ffi, lib

    store = Store(path)
    store.save_resource("Fork", "before", payload("Fork", "before"))
    holder, release = hold_in_thread(store, "Fork", "held", payload("Fork", "held"))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out = []
        for name, call in [
            ("get", lambda: store.get_resource("Fork", "before", Agent)),
            ("save", lambda: store.save_resource("Fork", "child", Agent())),
            ("count", lambda: store.count("Fork")),
            ("txn", lambda: store.transaction().__enter__()),
        ]:
            try:
                call()
                out.append(f"{name}:no-error")
            except ForkedError as exc:
                out.append(f"{name}:ForkedError:{exc.code}")
            except Exception as exc:
                out.append(f"{name}:{type(exc).__name__}")
        pp = ffi.new("ps_txn **")
        out.append(f"c-begin:{lib.ps_txn_begin(store._env, 0, pp)}")
        with Store(path) as own:  # a store opened in the child works
            own.save_resource("Fork", "child-own", payload("Fork", "child-own"))
        store.close()
        os.write(w, " ".join(out).encode())
        os._exit(0)
    os.close(w)
    release.set()
    holder.join(30)
    _, status = os.waitpid(pid, 0)
    child = os.read(r, 4096).decode()
    os.close(r)
    store.save_resource("Fork", "after", payload("Fork", "after"))
    ok = all(
        store.get_resource("Fork", x, Agent) == payload("Fork", x)
        for x in ("before", "after", "child-own", "held")
    )
    ack("child", os.waitstatus_to_exitcode(status), child)
    ack("parent", "ok" if ok else "bad", store.count("Fork"))
    store.close()


def run_probe(path: str, readonly: bool) -> None:
    """Open a (possibly damaged) store and read everything: one line saying
    "ok <records>" or "error <class> <code>"; anything else is a failure."""
    from pystore import StoreError

    try:
        with Store(path, readonly=readonly) as store:
            n = 0
            for kind in store.kinds():
                n += sum(1 for _ in store.iter_resources(kind))
        ack("ok", n)
    except StoreError as exc:
        ack("error", type(exc).__name__, exc.code)


class Child:
    """A worker subprocess whose stdout lines are read one at a time.

    Every wait is bounded: a watchdog kills the child after ``timeout``
    seconds, which ends any blocked ``line()`` with EOF.
    """

    def __init__(self, *args: str, timeout: float = 60.0) -> None:
        import subprocess
        import threading

        self.proc = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._watchdog = threading.Timer(timeout, self.proc.kill)
        self._watchdog.daemon = True
        self._watchdog.start()

    def line(self) -> str:
        """The next line without its newline; "" once the child is gone."""
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().rstrip("\n")

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def kill(self) -> list[str]:
        """SIGKILL the child, reap it and return the lines it still had printed."""
        self.proc.kill()
        return self.finish()

    def finish(self) -> list[str]:
        """Wait for the child to end; the lines it printed that were not read yet."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        if self.proc.stdout.closed:
            return []
        rest = self.proc.stdout.read().splitlines()
        self.stderr = self.proc.stderr.read()
        self.proc.wait(timeout=30)
        self._watchdog.cancel()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        return rest


WRITERS = {"save": run_save, "many": run_many, "txn": run_txn, "delkind": run_delkind}


def main(argv: list[str]) -> int:
    mode, path = argv[1], argv[2]
    if mode == "hold":
        run_hold_reader(path)
        return 0
    if mode == "holdwrite":
        run_hold_writer(path)
        return 0
    if mode == "fork":
        run_fork(path)
        return 0
    if mode == "probe":
        run_probe(path, argv[3] == "readonly")
        return 0
    if mode == "follow":
        with Store(path, readonly=True) as store:
            run_follow(store, int(argv[3]))
        return 0
    sync = argv[4] != "nosync" if len(argv) > 4 else True
    with Store(path, sync=sync) as store:
        ack("ready")
        WRITERS[mode](store, int(argv[3]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
