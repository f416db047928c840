"""Group commit: concurrent durable writes share one commit (and one fsync).

A durable commit costs an fsync (hundreds of microseconds to milliseconds),
so N threads that each commit their own save wait N fsyncs in a row.  Here
writes queue up; one waiting thread (the leader) takes the whole queue,
applies it in ONE write transaction and commits it, while the writes that
arrive meanwhile queue for the next leader.  Every caller returns only
after the commit that holds its write has returned, i.e. after its data is
durable.  Each write keeps its own outcome: a ``create_resource`` that
finds its key taken fails alone; an error that spoils the transaction
(e.g. the disk is full) fails every write of that commit, none of which is
then applied.  A put's result is the revision of the commit holding it.

``commit_ops`` is also what ``AsyncStore`` uses for its batches.

Speed (issue 12): a durable writer makes no C call before it queues.
Every cffi call releases the GIL, and with 8 runnable writers each
release hands the GIL to another thread (a convoy of OS switches between
commits), so a writer queues its message as serialized with the plan that
strips it (``Op.wire``; valid keys are checked in Python, see
``core.check_key_held``) and the leader strips the whole batch before it
begins the transaction.  The hand-off wakes each writer once (see
``GroupCommit``).

Interrupts: a KeyboardInterrupt (delivered in the main thread, at any
bytecode) must neither leak the write transaction nor misreport anyone's
outcome.  The transaction follows ``CTxn``'s interrupt-safe shape; a batch
is marked done by one attribute store in the leader's ``finally``; each op
learns whether its commit happened from the transaction itself (the core
writes the commit's result into memory the txn owns), not from the
leader's stack.  A follower whose batch was aborted because the LEADER was
interrupted re-queues its write; only the leader raises the interrupt.
Queue state is guarded by a raw ``threading.Lock`` (its ``with`` runs no
Python code), and waiters poll with a short timeout, so a wake-up lost to
an interrupt costs milliseconds, never a hang.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

from ..errors import AlreadyExistsError, ConflictError
from ._native import lib
from .core import CTxn
from .wirestrip import WirePlan

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["Batch", "GroupCommit", "Op", "commit_ops"]

_allocate_lock = threading.Lock
_POLL_S = 0.01  # a waiter re-checks at least this often
_RACED: int = lib.PS_ERR_RACED


class Batch(list["Op"]):
    """The ops of one commit; ``done`` is set by a single store."""

    done: bool = False
    txn: CTxn | None = None  # set before it begins
    leader: Op | None = None  # the writer that commits it
    error: BaseException | None = None  # a failure of the whole transaction


@dataclass(slots=True)
class Op:
    """One queued write: a put (payload not None; result: its revision) or a
    delete (result: whether it existed)."""

    kind: str
    kb: bytes
    ib: bytes
    payload: bytes | None
    msg: Message | None = None
    create: bool = False
    if_revision: int | None = None
    done: bool = False
    result: Any = None
    error: BaseException | None = None
    batch: Batch | None = None
    pos: int = 0  # its index in ``batch``
    wake: Any = field(default=None)
    # The plan that strips ``payload`` (None: it is final).  A durable
    # writer queues its message's bytes as serialized and the leader strips
    # them (``commit_ops``), so the writer makes no C call: each cffi call
    # releases the GIL, and 8 queueing writers would convoy on it.
    wire: WirePlan | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        result = self.result
        if result is None and self.payload is not None:
            # A put whose leader was interrupted after the commit, before it
            # gave the puts its revision: the commit's, from its txn.
            t = self.batch.txn if self.batch is not None else None
            if t is not None and t.committed:
                return int(t.revp[0])
        return result


def _settle(ops: list[Op], t: CTxn | None, exc: BaseException | None) -> bool:
    """Give each op its outcome from the txn; False if the caller must retry
    (the txn was aborted by an interrupt, not by a failure of its own)."""
    if t is not None and t.committed:
        return True  # per-op errors were set as applied (a put's revision: Op.outcome)
    for op in ops:
        op.result = None
    if exc is None or not isinstance(exc, Exception):
        return False  # interrupted (KeyboardInterrupt, SystemExit): not applied
    for op in ops:
        op.error = exc
    return True


def commit_ops(store: Store, ops: list[Op]) -> None:
    """Apply ``ops`` in one write transaction and commit it; outcomes go to each op.

    A failure of the transaction is set on every op and raised.  An
    interrupt is raised too; then ops are marked done only if the commit
    happened (``Batch.txn`` tells a caller which).
    """
    stripper = store._stripper
    for op in ops:
        op.error, op.result = None, None
        wire, data, msg = op.wire, op.payload, op.msg
        if wire is not None and data is not None and msg is not None:
            # An interrupt between these two stores leaves a stripped
            # payload with its plan: stripping it again changes nothing.
            op.payload = stripper.strip(msg, data, wire)
            op.wire = None
    try:
        t = store._prepare(True)
    except Exception as exc:  # nothing begun: every op fails with it (never a None result)
        for op in ops:
            op.error, op.done = exc, True
        raise
    if isinstance(ops, Batch):
        ops.txn = t
    ok = False
    puts = []
    try:
        store._start(t)
        ns = time.time_ns()
        for op in ops:
            try:
                if op.payload is None:
                    op.result = t.delete(op.kb, op.ib, op.if_revision)
                    continue
                t.put(op.kb, op.ib, op.payload, ns, op.create, op.if_revision)
            except (AlreadyExistsError, ConflictError) as exc:  # this write alone fails
                if getattr(exc, "code", 0) == _RACED:
                    raise  # unless the whole txn failed (map growth raced a commit)
                op.error = exc
                continue
            puts.append(op)
            if op.msg is not None:
                store._note_schema(t, op.kind, op.kb, op.msg)
        ok = True
    except BaseException as exc:
        if _settle(ops, None, exc):  # nothing was committed (the finally aborts)
            for op in ops:
                op.done = True
        raise
    finally:
        t.commit_asked = ok
        t.finish(t.slot, ok, t.rc, t.revp)
    try:
        rev = store._after(t)
    except BaseException as exc:
        _settle(ops, t, exc)
        for op in ops:
            op.done = True
        raise
    for op in puts:  # a put's result: the revision of the commit holding it
        op.result = rev
    for op in ops:
        op.done = True


def _wake(op: Op) -> None:
    # not contextlib.suppress: its __exit__ is Python code an interrupt can hit
    try:  # noqa: SIM105
        op.wake.release()
    except RuntimeError:
        pass  # already woken


def _wake_after(batch: Batch, pos: int) -> None:
    """Wake the writer queued after ``pos`` in a done batch (the leader,
    which waits on nothing, is skipped).

    The leader wakes only the first writer of its batch and each writer
    woken wakes the next: the next one's wake-up (an OS switch of tens of
    microseconds here) overlaps this one's Python, and it finds the GIL
    free instead of queueing for it behind all the others.  A writer woken
    by its poll timeout passes the wake on too, so an interrupt that
    breaks the chain costs milliseconds, never a hang.
    """
    pos += 1
    if pos < len(batch) and batch[pos] is batch.leader:
        pos += 1
    if pos < len(batch):
        _wake(batch[pos])


class GroupCommit:
    """The leader/follower queue of one Store's durable writes.

    Hand-off (each wake-up is an OS switch of tens of microseconds on a
    busy machine, and each waits for the GIL): a writer that queues while
    no commit runs either leads at once (the queue holds as many writes as
    were active around the last commit), or gathers: it waits, at most
    ``GATHER_S``, for the others, which are still serializing their next
    message.  The writer whose write completes the expected batch leads it
    itself, with no wake-up at all; the gatherer becomes one of its
    followers.  After a commit the leader wakes exactly its batch's
    writers (in a chain: see ``_wake_after``) and, if writes queued
    meanwhile, the first of them, which gathers the next batch.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._mu = _allocate_lock()
        self._queue = Batch()
        self._busy = False  # a leader is committing
        self._gatherer: Op | None = None  # waits to lead ``_queue``
        # Writers seen active around the last commit.  A new leader
        # that finds fewer queued waits (at most GATHER_S) for the others,
        # which are still serializing their next message, so the next
        # commit is shared by all of them instead of by one.
        self._expect = 1

    GATHER_S = 0.001

    def run(self, op: Op) -> Any:
        """Queue ``op`` and return its outcome once the commit holding it is done.

        Interrupts: the lead is taken by plain stores (no call, so no
        KeyboardInterrupt can land between them) inside the ``try`` whose
        ``finally`` ends the batch, so a batch taken is always marked done.
        Every writer keeps its own gathering deadline: if the gatherer's
        thread is interrupted away, another writer leads after its poll.
        """
        op.wake = _allocate_lock()
        op.wake.acquire()
        mu = self._mu
        deadline = 0.0
        batch: Batch | None = None
        with mu:
            op.batch = self._queue
            op.pos = len(self._queue)
            self._queue.append(op)
        try:
            while batch is None:
                b = op.batch
                if b is not None and b.done:
                    _wake_after(b, op.pos)  # the next writer of its batch
                    if b.error is None and not (b.txn is not None and b.txn.committed):
                        with mu:  # its leader was interrupted: not applied, queue again
                            op.batch = self._queue
                            op.pos = len(self._queue)
                            self._queue.append(op)
                        deadline = 0.0
                        continue
                    return op.outcome()
                wait = _POLL_S
                with mu:
                    q = self._queue
                    if not self._busy and b is q:
                        now = time.monotonic()
                        deadline = deadline or now + self.GATHER_S
                        if len(q) >= self._expect or now >= deadline:
                            fresh = Batch()  # the only call: before the stores
                            batch = q
                            self._queue = fresh
                            self._busy = True
                            self._gatherer = None
                            q.leader = op
                        else:
                            g = self._gatherer
                            if g is None or g is op:
                                self._gatherer = op
                                wait = deadline - now
                if batch is None:
                    op.wake.acquire(timeout=wait)
            self._lead(batch)
        finally:
            if batch is not None:
                batch.done = True  # first: one store, whatever interrupted the leader
                self._busy = False
                _wake_after(batch, -1)  # its first writer, who wakes the next
                with mu:
                    # active writers: this batch and those that queued meanwhile
                    self._expect = len(batch) + len(self._queue)
                    if self._queue:
                        _wake(self._queue[0])  # the next leader
        return op.outcome()

    def _lead(self, batch: Batch) -> None:
        try:
            commit_ops(self._store, batch)
        except Exception as exc:
            for o in batch:  # a failure of the whole transaction: every op's
                o.error, o.result = exc, None
            batch.error = exc
