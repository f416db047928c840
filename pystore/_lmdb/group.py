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
then applied.

``commit_ops`` is also what ``AsyncStore`` uses for its batches.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

from ..errors import AlreadyExistsError, ConflictError

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["GroupCommit", "Op", "commit_ops"]


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

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


def commit_ops(store: Store, ops: list[Op]) -> None:
    """Apply ``ops`` in one write transaction and commit it; outcomes go to each op."""
    try:
        t = store._begin(True)
        ok = False
        try:
            ns = time.time_ns()
            puts = []
            for op in ops:
                try:
                    if op.payload is None:
                        op.result = t.delete(op.kb, op.ib, op.if_revision)
                        continue
                    t.put(op.kb, op.ib, op.payload, ns, op.create, op.if_revision)
                except (AlreadyExistsError, ConflictError) as exc:  # this write alone fails
                    op.error = exc
                    continue
                puts.append(op)
                if op.msg is not None:
                    store._note_schema(t, op.kind, op.kb, op.msg)
            ok = True
        finally:
            rev = store._end(t, ok)
        for op in puts:  # a put's result: the revision of the commit holding it
            op.result = rev
    except BaseException as exc:
        for op in ops:  # nothing of this transaction was applied
            op.error, op.result = exc, None
        raise
    finally:
        for op in ops:
            op.done = True


class GroupCommit:
    """The leader/follower queue of one Store's durable writes."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[Op] = []
        self._busy = False
        # Writers seen active around the last commit.  A new leader
        # that finds fewer queued waits (at most GATHER_S) for the others,
        # which are still serializing their next message, so the next
        # commit is shared by all of them instead of by one.
        self._expect = 1

    GATHER_S = 0.001

    def run(self, op: Op) -> Any:
        """Queue ``op`` and return its outcome once the commit holding it is done."""
        cond = self._cond
        with cond:
            self._queue.append(op)
            cond.notify_all()  # a gathering leader may be waiting for this write
            deadline = 0.0
            while not op.done:
                if not self._busy:
                    if len(self._queue) < self._expect:
                        now = time.monotonic()
                        deadline = deadline or now + self.GATHER_S
                        if now < deadline:
                            cond.wait(deadline - now)
                            continue
                    self._busy = True
                    batch, self._queue = self._queue, []
                    break
                cond.wait()
            else:
                return op.outcome()
        try:
            commit_ops(self._store, batch)
        except BaseException:
            pass  # recorded in every op of the batch
        finally:
            with cond:
                self._busy = False
                # active writers: this batch and those that queued meanwhile
                self._expect = len(batch) + len(self._queue)
                cond.notify_all()
        return op.outcome()
