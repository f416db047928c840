"""The parts of ``AsyncStore`` beyond single reads and group-committed writes:
``transaction()``, ``snapshot()``, ``collection()``, ``stats()``, ``backup()``
and the per-kind reads, plus the objects the first two hand out.

    async with astore.transaction() as t:       # on the store's writer thread
        await t.save_resource("Agent", "a1", msg)
        agent = await t.get_resource("Agent", "a1", Agent)   # sees t's writes
    async with astore.snapshot() as snap:       # one consistent read view
        agents = await snap.list_resources("Agent", Agent)

An ``AsyncTransaction`` runs each of its operations on the store's single
writer thread (LMDB binds a write transaction to its thread), commits when
the ``async with`` block ends and rolls back when it raises (a cancelled
task included).  While it is open, the store's group-committed writes and
other writer-thread calls wait for it.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from google.protobuf.message import Message

from ._lmdb.admin import StoreStats
from .aio_collection import AsyncCollection, AsyncOwner
from .errors import ReadOnlyError, StoreClosedError, TransactionError
from .records import Resource

if TYPE_CHECKING:
    from .store import Store
    from .transaction import Transaction

__all__ = ["AsyncSnapshot", "AsyncStoreViews", "AsyncTransaction"]

M = TypeVar("M", bound=Message)
T = TypeVar("T")


async def _run_in(executor: Executor | None, fn: Callable[..., T], *args: Any,
                  **kwargs: Any) -> T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))


class _AsyncReads:
    """Coroutine reads over a synchronous owner (a Transaction or a snapshot),
    each run by ``_call``."""

    def _sync(self) -> Any:
        raise NotImplementedError

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        raise NotImplementedError

    @overload
    async def get_resource(self, kind: str, id: str, msg_or_type: type[M]) -> M: ...
    @overload
    async def get_resource(self, kind: str, id: str, msg_or_type: M) -> M: ...

    async def get_resource(self, kind: str, id: str, msg_or_type: M | type[M]) -> M:
        """``kind/id`` as a message (see ``Store.get_resource``)."""
        msg: M = await self._call(self._sync().get_resource, kind, id, msg_or_type)
        return msg

    async def get_record(self, kind: str, id: str) -> Resource:
        """The raw record of ``kind/id`` (see ``Store.get_record``)."""
        rec: Resource = await self._call(self._sync().get_record, kind, id)
        return rec

    async def get_bytes(self, kind: str, id: str) -> bytes:
        """The raw protobuf bytes of ``kind/id``."""
        data: bytes = await self._call(self._sync().get_bytes, kind, id)
        return data

    async def exists(self, kind: str, id: str) -> bool:
        """Whether ``kind/id`` is stored."""
        found: bool = await self._call(self._sync().exists, kind, id)
        return found

    async def list_ids(
        self, kind: str, *, after: str | None = None, limit: int | None = None,
        prefix: str | None = None,
    ) -> list[str]:
        """Ids of a kind in key order, no payloads (see ``Store.list_ids``)."""
        ids: list[str] = await self._call(
            self._sync().list_ids, kind, after=after, limit=limit, prefix=prefix)
        return ids

    @overload
    async def list_resources(self, kind: str, msg_type: None = None) -> list[bytes]: ...
    @overload
    async def list_resources(self, kind: str, msg_type: type[M]) -> list[M]: ...

    async def list_resources(
        self, kind: str, msg_type: type[M] | None = None
    ) -> list[bytes] | list[M]:
        """Every resource of a kind in key order: bytes, or messages of ``msg_type``."""
        out: list[bytes] | list[M] = await self._call(
            self._sync().list_resources, kind, msg_type)
        return out

    async def count(self, kind: str) -> int:
        """Number of resources of a kind."""
        n: int = await self._call(self._sync().count, kind)
        return n

    async def kinds(self) -> list[str]:
        """Sorted kinds holding at least one resource."""
        kinds: list[str] = await self._call(self._sync().kinds)
        return kinds

    def collection(self, kind: str, msg_type: type[M]) -> AsyncCollection[M]:
        """The typed handle of one kind, with coroutine methods (a plain call;
        the recorded type is checked by its first read)."""
        from .collection import Collection

        sync = Collection(self._sync(), kind, msg_type, check=False)
        return AsyncCollection(cast(AsyncOwner, self), sync)


class AsyncTransaction(_AsyncReads):
    """``async with astore.transaction() as t:`` -- a Transaction whose
    operations run on the store's writer thread; see the module docstring."""

    def __init__(self, owner: AsyncStoreViews) -> None:
        self._owner = owner
        self._txn: Transaction | None = None
        self._done = False

    def _sync(self) -> Transaction:
        if self._txn is None:
            raise TransactionError(
                "transaction is finished" if self._done else "use the transaction in async with"
            )
        return self._txn

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        self._sync()
        return await _run_in(self._owner._writer, fn, *args, **kwargs)

    async def __aenter__(self) -> AsyncTransaction:
        if self._txn is not None or self._done:
            raise TransactionError("an AsyncTransaction can be entered only once")
        owner = self._owner
        owner._check_open()
        await owner._gate.acquire()
        try:
            txn = owner.store.transaction()
            await _run_in(owner._writer, txn.__enter__)
        except BaseException:
            owner._gate.release()
            raise
        self._txn = txn
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        txn, self._txn, self._done = self._txn, None, True
        if txn is None:
            return
        try:
            # Commit (or roll back) on the thread that holds the transaction;
            # shielded: a cancellation here must not leave it open.
            await asyncio.shield(_run_in(self._owner._writer, txn.__exit__, exc_type, exc, tb))
        finally:
            self._owner._gate.release()

    async def save_resource(
        self, kind: str, id: str, msg: Message, *, if_revision: int | None = None
    ) -> int:
        """Upsert ``kind/id`` in the transaction (see ``Transaction.save_resource``)."""
        kw = {} if if_revision is None else {"if_revision": if_revision}
        rev: int | None = await self._call(self._sync().save_resource, kind, id, msg, **kw)
        return int(rev or 0)

    async def create_resource(self, kind: str, id: str, msg: Message) -> int:
        """Create ``kind/id`` in the transaction; AlreadyExistsError if present."""
        rev: int | None = await self._call(self._sync().create_resource, kind, id, msg)
        return int(rev or 0)

    async def save_resources(self, kind: str, items: Iterable[tuple[str, Message]]) -> int:
        """Upsert many resources of one kind in the transaction; the count."""
        return await self._call(self._sync().save_resources, kind, list(items))

    async def update_resource(
        self, kind: str, id: str, msg_type: type[M], fn: Callable[[M], object], *,
        create: bool = False,
    ) -> M:
        """Read-modify-write of ``kind/id`` in the transaction (``fn`` is plain)."""
        from ._ops import check_update_fn

        check_update_fn(fn)
        return await self._call(self._sync().update_resource, kind, id, msg_type, fn,
                                create=create)

    async def delete_resource(
        self, kind: str, id: str, *, if_revision: int | None = None
    ) -> bool:
        """Delete ``kind/id`` in the transaction; True if it existed."""
        kw = {} if if_revision is None else {"if_revision": if_revision}
        return await self._call(self._sync().delete_resource, kind, id, **kw)

    async def delete_resources_by_kind(self, kind: str) -> int:
        """Delete every resource of a kind in the transaction; the count."""
        return await self._call(self._sync().delete_resources_by_kind, kind)


class AsyncSnapshot(_AsyncReads):
    """``async with astore.snapshot() as snap:`` -- one consistent read view
    (``Store.snapshot()``) with coroutine reads, run in worker threads."""

    def __init__(self, owner: AsyncStoreViews) -> None:
        self._owner = owner
        self._snap: Any = None
        self.revision = 0

    @property
    def _watch_owner(self) -> AsyncStoreViews:
        return self._owner

    def _sync(self) -> Any:
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
        self.revision = int(getattr(snap, "revision", 0))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        snap, self._snap = self._snap, None
        if snap is not None:
            snap.__exit__(exc_type, exc, tb)

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


class AsyncStoreViews:
    """Mixed into ``AsyncStore`` (which provides the attributes below)."""

    store: Store
    _writer: Executor
    _gate: asyncio.Lock

    def _check_open(self) -> None:
        raise NotImplementedError

    async def _point(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a synchronous store call in a worker thread."""
        self._check_open()
        return await _run_in(None, fn, *args, **kwargs)

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

    async def exists(self, kind: str, id: str) -> bool:
        """Whether ``kind/id`` is stored (inline: a point read)."""
        self._check_open()
        return await self._point(self.store.exists, kind, id)

    async def list_ids(
        self, kind: str, *, after: str | None = None, limit: int | None = None,
        prefix: str | None = None,
    ) -> list[str]:
        """Ids of a kind in key order, no payloads, in a worker thread."""
        return await self._call(self.store.list_ids, kind, after=after, limit=limit,
                                prefix=prefix)
