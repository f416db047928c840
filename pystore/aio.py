"""``AsyncStore``: the asyncio front of a :class:`~pystore.Store` for the daemon.

    async with AsyncStore.open(path) as astore:     # same options as Store
        await astore.save_resource("Agent", "a1", msg)  # returns once durable
        agent = await astore.get_resource("Agent", "a1", Agent)
        agents = astore.collection("Agent", Agent)      # coroutine methods
        async with astore.transaction() as t:           # on the writer thread
            await t.delete_resource("Agent", "a1")
    # or: astore = await AsyncStore.open(path); ...; await astore.close()

Writes (``save_resource``, ``create_resource``, ``delete_resource``) are
validated and serialized in the calling task, then queued: one commit at a
time runs in a worker thread and takes every write queued so far, so the
writes of many concurrent tasks share a commit and its fsync (group
commit).  Each awaits only until the commit holding its write has returned,
i.e. until it is durable (with ``sync=True``, the default).  A task
cancelled while it waits does not withdraw its write: it may still commit.
An event loop closed while its writes are queued leaves them undecided
(they may or may not commit); the store goes on from the next loop.  While
a task holds ``transaction()``, other tasks' writes wait for it; that
task's own writes through the store (not ``t``) raise TransactionError, as
``Store``'s do in the thread holding one, and ``close()`` waits for it.

Point reads (``get_*``, ``exists``, ``count``, ``kinds``, ``revision``)
are a few microseconds and run inline (the C core releases the GIL while
LMDB works); lists, index lookups, events, history, ``stats``, ``backup``
and snapshots run in worker threads; every other write (batches,
``update_resource``, kind and prefix deletes, index and history
administration, event appends) and transactions run on the writer thread.
The reads and those writes are written once for AsyncStore, its
transactions and snapshots (:mod:`pystore.aio_ops`); see
:mod:`pystore.aio_views` for transactions and snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import AsyncIterator, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from google.protobuf.message import Message

from ._lmdb.core import check_key, encode_id, encode_kind
from ._lmdb.group import Op, commit_ops
from ._ops import _check_revision
from .aio_views import AsyncStoreViews, in_transaction
from .errors import (
    ForkedError,
    ReadOnlyError,
    StoreClosedError,
    StoreError,
    TransactionError,
)
from .records import Change
from .store import Store
from .watch import POLL_S, Watcher, _check_rev, _kinds, _streams

__all__ = ["AsyncStore"]

_WATCH_STEP_S = 0.25  # etcd: longest a watch step holds a worker thread


class _Opening:
    """What ``AsyncStore.open()`` returns: ``await`` it for the store, or use
    it in ``async with`` (the store is closed at the end of the block)."""

    def __init__(self, path: str | os.PathLike[str], options: dict[str, Any]) -> None:
        self._path, self._options = path, options
        self._store: AsyncStore | None = None

    async def _open(self) -> AsyncStore:
        loop = asyncio.get_running_loop()
        store = await loop.run_in_executor(
            None, functools.partial(Store, self._path, **self._options))
        return AsyncStore(store)

    def __await__(self) -> Generator[Any, None, AsyncStore]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncStore:
        self._store = await self._open()
        return self._store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._store is not None:
            await self._store.close()


def _apply_one(store: Store, op: Op) -> Any:
    """One queued write applied alone (a networked backend: no group commit)."""
    id = op.ib.decode("utf-8")
    msg: Any = op.msg
    if op.payload is None:
        return store.delete_resource(op.kind, id, if_revision=op.if_revision)
    if op.create:
        return store.create_resource(op.kind, id, msg)
    return store.save_resource(op.kind, id, msg, if_revision=op.if_revision)


# Bumped in every child after fork(): an AsyncStore made before must not
# hand work to its writer thread, which is not in the child.
_fork_gen = 0


def _after_fork_in_child() -> None:
    global _fork_gen
    _fork_gen += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


class AsyncStore(AsyncStoreViews):
    """An asyncio front of one Store (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"store must be a pystore.Store, not {type(store).__name__}")
        self.store = store
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pystore-commit")
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._flush_gen = 0  # which _flush is the current one
        self._closed = False
        # Held by an open transaction(): writer-thread work waits for it.
        self._gate = asyncio.Lock()
        self._closing: asyncio.Future[None] | None = None
        self._fork_gen = _fork_gen  # a child of fork() has none of its threads

    @classmethod
    def open(cls, path: str | os.PathLike[str], **options: Any) -> _Opening:
        """Open ``Store(path, **options)`` in a worker thread and wrap it:
        ``async with AsyncStore.open(path) as s:`` or ``s = await AsyncStore.open(path)``."""
        return _Opening(path, options)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store {self.store.path!r} is closed")
        if self._fork_gen != _fork_gen:  # its writer thread stayed in the parent
            raise ForkedError(
                "AsyncStore was opened before fork(): open a new one in the child process"
            )

    def _check_writable(self) -> None:
        """ReadOnlyError for a readonly=True store, before the key is looked at
        (as Store's writes); the queued writes would otherwise meet it only
        in the commit."""
        if self.store.readonly:
            raise ReadOnlyError(f"store {self.store.path!r} was opened with readonly=True")

    async def __aenter__(self) -> AsyncStore:
        """``async with AsyncStore(store)``: closes the store at the end."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store (see :meth:`close`)."""
        await self.close()

    async def close(self) -> None:
        """Wait for queued writes, then close the store (idempotent).

        The closing runs in its own task: a caller cancelled while it waits
        does not stop it, and a later ``close()`` waits for the same closing
        (or starts it again if it was itself cancelled before the store
        closed), so the store is closed when any ``close()`` returns.  An
        open ``transaction()`` of another task is waited for; inside the
        calling task's own, TransactionError (it would wait for itself).
        """
        if in_transaction(self):  # also from a task started inside its block
            raise TransactionError("close() inside this task's open transaction()")
        if self._fork_gen != _fork_gen:
            # A child of fork(): the writer thread stayed in the parent, so
            # work given to it would wait for ever.  Closing the Store here
            # only forgets the parent's handle (it never touches its LMDB
            # state), as Store.close() does in a child.
            self._closed = True
            self.store.close()
            return
        loop = asyncio.get_running_loop()
        home = self._home_loop()
        if home is not None and home is not loop and not home.is_closed():
            # Called from another thread's loop while this store's work is
            # in flight on its own: its tasks, futures and gate belong to
            # that loop (awaiting them here raised RuntimeError and left the
            # store half closed), so the closing runs there.
            if not home.is_running():
                raise StoreError(
                    "close(): this store's writes wait on another event loop, which is "
                    "stopped: close it from that loop"
                )
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.close(), home))
            return
        self._closed = True
        task = self._closing
        if (task is None or (task.done() and not self.store.closed)
                or task.get_loop().is_closed()):
            task = self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(task)

    def _home_loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop of this store's work in flight (its group commit,
        closing or a holder of the gate); None when there is none."""
        for task in (self._flusher, self._closing):
            if task is not None and not task.done():
                return task.get_loop()
        return self._gate_loop if self._gate.locked() else None

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reclaim what an event loop closed mid-work left behind, before
        ``loop`` uses the store: a flusher left pending there never runs
        again (the writes it had not taken go with it: their callers are
        gone with their loop); a transaction() left open there is rolled
        back on the writer thread (it held LMDB's write lock, so every
        writer of the path waited for ever); and the gate either may hold,
        bound to that loop, is replaced."""
        stale = False
        old = self._flusher
        if old is not None and old.get_loop() is not loop and old.get_loop().is_closed():
            self._flusher = None
            self._flush_gen += 1  # its finally, run when it is collected, leaves the state alone
            self._pending = [(op, fut) for op, fut in self._pending if fut.get_loop() is loop]
            stale = True
        t = self._txn_open
        if t is not None and t._loop is not loop and t._loop is not None and t._loop.is_closed():
            t._abandon()
            stale = True
        home = self._gate_loop
        if stale or (home is not None and home is not loop and home.is_closed()):
            self._gate = asyncio.Lock()
            self._gate_loop = None

    async def _close(self) -> None:
        self._adopt(asyncio.get_running_loop())
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        loop = asyncio.get_running_loop()
        async with self._gate:  # an open transaction() ends first
            self._gate_loop = loop
            await loop.run_in_executor(self._writer, self.store.close)
        self._writer.shutdown(wait=True)

    # -- writes shared by one commit -----------------------------------------

    async def _write(self, op: Op) -> Any:
        if self._closed:
            raise StoreClosedError(f"store {self.store.path!r} is closed")
        self._check_not_in_txn()
        self.store._check_usable()
        if self.store._remote:  # etcd: each write is its own Txn, in a worker thread
            check_key(op.kb, op.ib)
            return await asyncio.get_running_loop().run_in_executor(
                None, _apply_one, self.store, op)
        check_key(op.kb, op.ib)  # a bad key must fail alone, not its whole batch
        loop = asyncio.get_running_loop()
        if ((self._flusher is not None and self._flusher.get_loop() is not loop)
                or (self._gate_loop is not None and self._gate_loop is not loop)):
            self._adopt(loop)  # its first loop was closed mid-commit
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((op, fut))
        if self._flusher is None:
            self._flush_gen += 1
            self._flusher = loop.create_task(self._flush(self._flush_gen))
        return await fut

    async def _flush(self, gen: int) -> None:
        loop = asyncio.get_running_loop()
        batch: list[tuple[Op, asyncio.Future[Any]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                ops = [op for op, _ in batch]
                async with self._gate:  # not while a transaction() holds the writer
                    self._gate_loop = loop
                    with contextlib.suppress(Exception):  # outcomes are recorded in the ops
                        await loop.run_in_executor(self._writer, commit_ops, self.store, ops)
                for op, fut in batch:
                    if fut.done():
                        continue
                    if op.error is not None:
                        fut.set_exception(op.error)
                    else:
                        fut.set_result(op.result)
        finally:
            current = gen == self._flush_gen  # else _adopt replaced it (its loop closed)
            if current:
                self._flusher = None
            # Cancelled (the loop is going away): nobody may wait forever.
            for _, fut in batch + self._pending if current else batch:
                if not fut.done():
                    with contextlib.suppress(RuntimeError):  # its loop is closed
                        fut.set_exception(
                            StoreError("write interrupted: its commit may or may not have happened")
                        )
            if current:
                self._pending = []

    async def save_resource(
        self, kind: str, id: str, msg: Message, *, if_revision: int | None = None
    ) -> int:
        """Upsert ``kind/id``; returns its revision once the commit holding it is
        durable.  ``if_revision`` as for Store.save_resource."""
        expected = _check_revision(if_revision)
        self._check_writable()
        kb, ib = encode_kind(kind), encode_id(id)
        return int(await self._write(
            Op(kind, kb, ib, self.store._payload(msg), msg, False, expected)
        ))

    async def create_resource(self, kind: str, id: str, msg: Message) -> int:
        """Like save_resource, but AlreadyExistsError if ``kind/id`` exists."""
        self._check_writable()
        kb, ib = encode_kind(kind), encode_id(id)
        return int(await self._write(Op(kind, kb, ib, self.store._payload(msg), msg, True)))

    async def delete_resource(
        self, kind: str, id: str, *, if_revision: int | None = None
    ) -> bool:
        """Delete ``kind/id``; True if it existed."""
        expected = _check_revision(if_revision)
        self._check_writable()
        kb, ib = encode_kind(kind), encode_id(id)
        return bool(await self._write(Op(kind, kb, ib, None, if_revision=expected)))

    # -- the change feed ------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once ``close()`` has begun (calls then raise StoreClosedError)."""
        return self._closed or self.store.closed

    async def revision(self) -> int:
        """The revision of the last committed write (0 for a new store); inline."""
        return await self._point(self.store.revision)

    async def changes(
        self,
        after: int = 0,
        *,
        kinds: Iterable[str] | None = None,
        streams: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[Change]:
        """Committed changes with revision > ``after``, oldest first (see
        ``Store.changes``), read in a worker thread."""
        return await self._call(self.store.changes, after, kinds=kinds, streams=streams,
                                limit=limit)

    def watch(
        self,
        after: int | None = None,
        *,
        kinds: Iterable[str] | None = None,
        streams: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Change]:
        """Store.watch as an async iterator.  It waits on the event loop (this
        process's commits wake it at once, other processes' are seen within
        POLL_S); only reads of the change log run in a worker thread.

        As Store.watch, it starts at the call: the arguments are checked and,
        on LMDB, ``after=None`` is the revision current at the call (a change
        committed before the first ``async for`` step is not missed).  On
        etcd, where that is a network round trip the loop must not wait for,
        ``after=None`` is the revision at the first step: pass ``after=``
        for an exact start."""
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
            if timeout < 0:
                raise ValueError("timeout must be >= 0")
        if self.store._remote:  # etcd: the store's own watch, stepped in a worker thread
            _kinds(kinds), _streams(streams)  # bad arguments fail here, as on LMDB
            if after is not None:
                _check_rev(after, "after")
            return self._watch_remote(after, kinds, streams, timeout)
        # One C call and a short read (no wait: LMDB readers never block), on
        # the loop like the point reads: the start is fixed now.
        return self._watch_local(Watcher(self.store, after, kinds, streams), timeout)

    async def _watch_remote(
        self, after: int | None, kinds: Iterable[str] | None,
        streams: Iterable[str] | None, timeout: float | None,
    ) -> AsyncIterator[Change]:
        from ._etcd.feed import follower

        loop = asyncio.get_running_loop()
        f = await loop.run_in_executor(None, functools.partial(
            follower, self.store, after, kinds, streams, timeout))  # type: ignore[arg-type]
        try:
            while (batch := await loop.run_in_executor(None, f.step, _WATCH_STEP_S)
                   ) is not None:
                for ch in batch:
                    yield ch
                if batch:
                    f.idle_since = time.monotonic()
        finally:
            f.close()

    async def _watch_local(
        self, watcher: Watcher, timeout: float | None
    ) -> AsyncIterator[Change]:
        loop = asyncio.get_running_loop()
        # Waiting happens on the loop, never in a worker thread (idle
        # watchers held one each and starved every other worker-thread call):
        # this process's commits set ``woken``; other processes' are seen by
        # the revision check every POLL_S, one C call on the loop.  Only a
        # read of the log runs in a worker thread.
        signal, woken = self.store._signal, asyncio.Event()
        waiter = (loop, woken)
        signal.add_async(waiter)
        try:
            idle_since = loop.time()
            while True:
                woken.clear()  # before the check: a commit after it sets it again
                if watcher.moved():
                    batch = await loop.run_in_executor(None, watcher.poll, 0.0)
                    if batch is None:
                        return
                    if batch:
                        for ch in batch:
                            yield ch
                        idle_since = loop.time()
                        continue
                wait = POLL_S
                if timeout is not None:
                    left = idle_since + timeout - loop.time()
                    if left <= 0:
                        return
                    wait = min(wait, left)
                # a timer sets the event too, and the wait is a plain await:
                # asyncio.wait_for (3.11) returns normally when the event is
                # set in the loop turn that cancels this task, and the
                # cancellation was lost (the iterator ran on)
                timer = loop.call_later(wait, woken.set)
                try:
                    await woken.wait()
                finally:
                    timer.cancel()
        finally:
            signal.discard_async(waiter)
