"""The parts of ``AsyncStore`` beyond group-committed writes and the change
feed: ``transaction()``, ``snapshot()``, ``collection()``, ``stats()``,
``backup()`` and where its shared reads and writes (:mod:`pystore.aio_ops`)
run, plus the objects the first two hand out.

    async with astore.transaction() as t:       # on the store's writer thread
        await t.save_resource("Agent", "a1", msg)
        agent = await t.get_resource("Agent", "a1", Agent)   # sees t's writes
    async with astore.snapshot() as snap:       # one consistent read view
        agents = await snap.list_resources("Agent", Agent)

An ``AsyncTransaction`` runs each of its operations on the store's single
writer thread (LMDB binds a write transaction to its thread), commits when
the ``async with`` block ends and rolls back when it raises (a cancelled
task included).  While it is open, the store's group-committed writes and
other writer-thread calls wait for it.  An ``AsyncSnapshot`` answers every
read from one LMDB read transaction, in worker threads.  Both have the read
methods of their synchronous twins (``AsyncReads``); a transaction also has
every write of ``Transaction`` (``AsyncWrites`` and the three below).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from google.protobuf.message import Message

from ._lmdb.admin import StoreStats
from .aio_collection import AsyncCollection, AsyncOwner
from .aio_ops import AsyncReads, AsyncWrites
from .errors import ReadOnlyError, StoreClosedError, TransactionError

if TYPE_CHECKING:
    from .snapshot import Snapshot
    from .store import Store
    from .transaction import Transaction

__all__ = ["AsyncSnapshot", "AsyncStoreViews", "AsyncTransaction", "in_transaction"]

M = TypeVar("M", bound=Message)
T = TypeVar("T")


# The transaction()s the current task -- or the task that started it -- is
# inside: their store's close() would wait for itself.  A task started in
# the block inherits the tuple for good, so each is asked whether it is
# still open (a mark by the store alone refused such a task's close() after
# the transaction had ended).
_IN_TXN: contextvars.ContextVar[tuple[AsyncTransaction, ...]] = contextvars.ContextVar(
    "pystore_async_txn", default=())


def in_transaction(owner: object) -> bool:
    """Whether this task runs inside ``owner``'s open ``transaction()`` block."""
    return any(t._owner is owner and t._txn is not None for t in _IN_TXN.get())


async def _run_in(executor: Executor | None, fn: Callable[..., T], *args: Any,
                  **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))


class AsyncTransaction(AsyncWrites, AsyncReads):
    """``async with astore.transaction() as t:`` -- a Transaction whose
    operations run on the store's writer thread; see the module docstring.

    ``t`` has every method of :class:`~pystore.transaction.Transaction` as a
    coroutine.  After the block, ``revision`` is the revision it committed
    at (0 if it changed nothing or rolled back), as ``Transaction.revision``.
    """

    revision: int = 0

    def __init__(self, owner: AsyncStoreViews) -> None:
        self._owner = owner
        self._txn: Transaction | None = None
        self._done = False
        self._gate: asyncio.Lock | None = None  # the gate it holds while open
        self._loop: asyncio.AbstractEventLoop | None = None  # where it was entered
        # its task, weakly: a task left on a closed loop must stay collectable
        self._task: weakref.ref[asyncio.Task[Any]] | None = None
        self._mark: contextvars.Token[tuple[AsyncTransaction, ...]] | None = None

    def _sync(self) -> Transaction:
        if self._txn is None:
            raise TransactionError(
                "transaction is finished" if self._done else "use the transaction in async with"
            )
        return self._txn

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._sync()
        return await _run_in(self._owner._writer, fn, *args, **kwargs)

    async def _write_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._call(fn, *args, **kwargs)  # the gate is ours already

    async def __aenter__(self) -> AsyncTransaction:
        if self._txn is not None or self._done:
            raise TransactionError("an AsyncTransaction can be entered only once")
        owner = self._owner
        owner._check_open()
        owner._check_not_in_txn()  # nested in this task's own: it would wait for itself
        loop = asyncio.get_running_loop()
        owner._adopt(loop)  # a transaction left open on a closed loop is rolled back
        gate = owner._gate
        await gate.acquire()
        owner._gate_loop = loop
        txn = owner.store.transaction()
        try:
            await _run_in(owner._writer, txn.__enter__)
        except BaseException as exc:
            # Cancelled while the writer thread begins it: the begin still
            # runs there, and nobody would end it (every later write on that
            # thread failed, close() waited forever).  Roll it back on that
            # thread, queued behind the begin (a no-op if it never began).
            with contextlib.suppress(RuntimeError):  # the executor is shut down
                owner._writer.submit(txn.__exit__, type(exc), exc, None)
            gate.release()
            raise
        self._txn, self._gate, self._loop = txn, gate, loop
        task = asyncio.current_task()
        self._task = None if task is None else weakref.ref(task)
        self._mark = _IN_TXN.set((*_IN_TXN.get(), self))
        owner._txn_open = self
        return self

    def _holder(self) -> asyncio.Task[Any] | None:
        return None if self._task is None else self._task()

    def _abandon(self) -> None:
        """End it without awaiting anything: its rollback is queued on the
        writer thread (which holds it).  For a transaction whose event loop
        is gone: its coroutine is being closed (collected), or the store is
        used from a new loop."""
        txn, self._txn, self._done = self._txn, None, True
        owner = self._owner
        if owner._txn_open is self:
            owner._txn_open = None
        if txn is not None:
            err = TransactionError("transaction abandoned: its event loop was closed")
            with contextlib.suppress(RuntimeError):  # the executor is shut down
                owner._writer.submit(txn.__exit__, TransactionError, err, None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._txn is None:
            return
        gate = self._gate
        assert gate is not None
        if exc_type is GeneratorExit:
            # Its coroutine is closed without running on (a task collected
            # after its event loop was closed): nothing can be awaited, and
            # the open LMDB transaction held the write lock of every writer
            # of the path for good.  Roll back on the writer thread, unwaited.
            self._abandon()
            with contextlib.suppress(RuntimeError):  # a waiter's loop is closed
                gate.release()
            return
        txn, self._txn, self._done = self._txn, None, True
        owner = self._owner
        try:
            # Commit (or roll back) on the thread that holds the transaction,
            # queued there now, before anything can cancel this: a coroutine
            # or task doing it could be cancelled before it ran (asyncio.run
            # ending cancels every task), leaving the transaction open on the
            # writer thread, where the store's close() then ran inside it.
            # Awaited through a shield: the queued exit is never cancelled.
            done = owner._writer.submit(txn.__exit__, exc_type, exc, tb)
            await asyncio.shield(asyncio.wrap_future(done))
        finally:
            if owner._txn_open is self:
                owner._txn_open = None
            if self._mark is not None:
                with contextlib.suppress(ValueError):  # exited in another context
                    _IN_TXN.reset(self._mark)
            gate.release()
            self.revision = txn.revision

    async def save_resource(
        self, kind: str, id: str, msg: Message, *, if_revision: int | None = None
    ) -> int:
        """Upsert ``kind/id`` in the transaction; the revision it commits at
        (see ``Store.save_resource`` for ``if_revision``)."""
        return await self._call(self._sync().save_resource, kind, id, msg,
                                if_revision=if_revision)

    async def create_resource(self, kind: str, id: str, msg: Message) -> int:
        """Create ``kind/id`` in the transaction; AlreadyExistsError if present."""
        return await self._call(self._sync().create_resource, kind, id, msg)

    async def delete_resource(
        self, kind: str, id: str, *, if_revision: int | None = None
    ) -> bool:
        """Delete ``kind/id`` in the transaction; True if it existed."""
        return await self._call(self._sync().delete_resource, kind, id, if_revision=if_revision)


class AsyncSnapshot(AsyncReads):
    """``async with astore.snapshot() as snap:`` -- one consistent read view
    (``Store.snapshot()``) with coroutine reads, run in worker threads.

    ``snap`` has every read method of :class:`~pystore.snapshot.Snapshot` as
    a coroutine; ``revision`` (an attribute, as on ``Snapshot``) is the
    revision it sees, set on entering.  Writes raise ReadOnlyError.
    """

    revision: int = 0

    def __init__(self, owner: AsyncStoreViews) -> None:
        self._owner = owner
        self._snap: Snapshot | None = None

    @property
    def _watch_owner(self) -> AsyncStoreViews:
        return self._owner

    def _sync(self) -> Snapshot:
        if self._snap is None:
            raise StoreClosedError("snapshot is closed (use it inside its async with block)")
        return self._snap

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._sync()
        return await _run_in(None, fn, *args, **kwargs)

    async def __aenter__(self) -> AsyncSnapshot:
        self._owner._check_open()
        snap = self._owner.store.snapshot()
        await _run_in(None, snap.__enter__)
        self._snap = snap
        self.revision = snap.revision
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """End the read view (idempotent); later reads raise StoreClosedError.

        Ending it waits for this snapshot's reads still running in worker
        threads (a cancelled read's thread runs on), so it runs in one too:
        the event loop goes on meanwhile.  Shielded: a cancelled close still
        ends the view."""
        snap, self._snap = self._snap, None
        if snap is not None:
            try:
                end = asyncio.get_running_loop().run_in_executor(None, snap.close)
            except RuntimeError:  # the loop's executor is shut down: here, then
                snap.close()
                return
            await asyncio.shield(end)

    async def save_resource(
        self, kind: str, id: str, msg: Message, *, if_revision: int | None = None
    ) -> int:
        """Always ReadOnlyError: write through the store."""
        raise ReadOnlyError("a snapshot is read-only: write through the store")

    async def create_resource(self, kind: str, id: str, msg: Message) -> int:
        """Always ReadOnlyError: write through the store."""
        raise ReadOnlyError("a snapshot is read-only: write through the store")

    async def delete_resource(
        self, kind: str, id: str, *, if_revision: int | None = None
    ) -> bool:
        """Always ReadOnlyError: write through the store."""
        raise ReadOnlyError("a snapshot is read-only: write through the store")

    # The other writes of Snapshot, which raises ReadOnlyError for each: here
    # too (they were missing: AttributeError).

    async def save_resources(self, kind: str, items: Iterable[tuple[str, Message]]) -> int:
        """Always ReadOnlyError: write through the store."""
        raise ReadOnlyError("a snapshot is read-only: write through the store")

    async def update_resource(
        self, kind: str, id: str, msg_type: type[M], fn: Callable[[M], object], *,
        create: bool = False,
    ) -> M:
        """Always ReadOnlyError: write through the store."""
        raise ReadOnlyError("a snapshot is read-only: write through the store")

    async def delete_resources_by_kind(self, kind: str) -> int:
        """Always ReadOnlyError: write through the store."""
        raise ReadOnlyError("a snapshot is read-only: write through the store")

    async def delete_resources_by_prefix(self, kind: str, id_prefix: str) -> int:
        """Always ReadOnlyError: write through the store."""
        raise ReadOnlyError("a snapshot is read-only: write through the store")

    async def append_events(self, stream: str, events: Iterable[tuple[int, Message]]) -> int:
        """Always ReadOnlyError: write through the store."""
        raise ReadOnlyError("a snapshot is read-only: write through the store")

    async def append_event(self, stream: str, msg: Message) -> int:
        """Always ReadOnlyError: write through the store."""
        raise ReadOnlyError("a snapshot is read-only: write through the store")

    async def delete_events(self, stream: str, *, upto: int | None = None) -> int:
        """Always ReadOnlyError: write through the store."""
        raise ReadOnlyError("a snapshot is read-only: write through the store")

    async def set_history(self, kind: str, keep: int) -> None:
        """Always ReadOnlyError: write through the store."""
        raise ReadOnlyError("a snapshot is read-only: write through the store")

    async def delete_history(self, kind: str, id: str) -> int:
        """Always ReadOnlyError: write through the store."""
        raise ReadOnlyError("a snapshot is read-only: write through the store")


class AsyncStoreViews(AsyncWrites, AsyncReads):
    """Mixed into ``AsyncStore`` (which provides the attributes below): where
    its calls run, and the views it hands out."""

    store: Store
    _writer: Executor
    _gate: asyncio.Lock
    _gate_loop: asyncio.AbstractEventLoop | None = None  # where the gate was last taken
    _txn_open: AsyncTransaction | None = None  # the open transaction()

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reclaim what an event loop closed mid-work left holding the gate
        (AsyncStore's; here nothing)."""

    def _check_not_in_txn(self) -> None:
        """TransactionError for a write through the store by the task holding
        its transaction(): it would wait for that transaction, i.e. itself
        (as Store raises for the thread holding one).  Other tasks wait."""
        t = self._txn_open
        if t is not None and (task := t._holder()) is not None and task is asyncio.current_task():
            raise TransactionError(
                "this task holds an open transaction(): use the transaction's "
                "methods, or finish it first"
            )

    def _check_open(self) -> None:
        raise NotImplementedError

    def _sync(self) -> Store:
        self._check_open()
        return self.store

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a synchronous store call in a worker thread."""
        self._check_open()
        return await _run_in(None, fn, *args, **kwargs)

    async def _point(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A point read, inline: a few microseconds, the GIL released in C.  On a
        networked backend (etcd) in a worker thread instead: the event loop
        never waits on a round trip."""
        self._check_open()
        if self.store._remote:
            return await _run_in(None, fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def _write_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """On the writer thread, once no transaction() holds it."""
        self._check_open()
        self._check_not_in_txn()
        loop = asyncio.get_running_loop()
        self._adopt(loop)
        async with self._gate:
            self._gate_loop = loop
            return await _run_in(self._writer, fn, *args, **kwargs)

    def transaction(self) -> AsyncTransaction:
        """``async with astore.transaction() as t:`` -- ``t``'s methods are
        coroutines run on the writer thread; commit at exit, roll back on error."""
        if self.store.readonly:
            raise ReadOnlyError(f"store {self.store.path!r} was opened with readonly=True")
        return AsyncTransaction(self)

    def snapshot(self) -> AsyncSnapshot:
        """``async with astore.snapshot() as snap:`` -- one consistent read view
        with coroutine reads and ``snap.revision``."""
        return AsyncSnapshot(self)

    def collection(self, kind: str, msg_type: type[M]) -> AsyncCollection[M]:
        """The typed handle of one kind (a plain call); its methods are coroutines.
        InvalidMessageError if the store recorded another type for ``kind``."""
        return AsyncCollection(cast(AsyncOwner, self), self.store.collection(kind, msg_type))

    async def stats(self) -> StoreStats:
        """``Store.stats()`` in a worker thread."""
        return await self._call(self.store.stats)

    async def backup(self, dest: str | os.PathLike[str], compact: bool = True) -> int:
        """``Store.backup(dest)`` in a worker thread; the size of the copy."""
        return await self._call(self.store.backup, dest, compact)
