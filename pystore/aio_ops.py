"""The coroutine methods ``AsyncStore``, ``AsyncTransaction`` and
``AsyncSnapshot`` share, written once.

``AsyncReads`` holds every read (resources, ids, index lookups, events,
history, typed collections); ``AsyncWrites`` the writes that run on the
store's writer thread (batches, read-modify-write, kind and prefix deletes,
index administration, event streams, history administration).  Each method
calls the synchronous twin of the same name on the object's ``_sync()``
(a :class:`~pystore.Store`, a :class:`~pystore.transaction.Transaction` or a
:class:`~pystore.snapshot.Snapshot`) through a hook the object defines:

* ``_call``: where the object runs a call -- a worker thread for a store
  and a snapshot, the store's writer thread for a transaction (LMDB binds a
  write transaction to its thread);
* ``_point``: point reads (``get_*``, ``exists``, ``count``, ``kinds``);
  ``_call`` by default, inline on a store (a few microseconds; the C core
  releases the GIL while LMDB works);
* ``_write_call``: writes; on a store, the writer thread once no
  ``transaction()`` holds it; in a transaction, its writer thread.

The signatures, defaults and results are those of the synchronous methods
(see their docstrings for the contracts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from google.protobuf.message import Message

from .records import Event, IndexInfo, Resource

if TYPE_CHECKING:
    from ._ops import ResourceOps
    from .aio_collection import AsyncCollection
    from .store import Store
    from .transaction import Transaction

__all__ = ["AsyncReads", "AsyncWrites"]

M = TypeVar("M", bound=Message)
T = TypeVar("T")
_PAGE = 512  # resources an async iteration reads per worker-thread call


class AsyncReads:
    """Coroutine reads over a synchronous owner, each run by ``_call`` (or ``_point``)."""

    def _sync(self) -> ResourceOps:
        """The synchronous object the calls go to (raises once it is unusable)."""
        raise NotImplementedError

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        raise NotImplementedError

    async def _point(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._call(fn, *args, **kwargs)

    # -- resources ------------------------------------------------------------

    @overload
    async def get_resource(self, kind: str, id: str, msg_or_type: type[M]) -> M: ...
    @overload
    async def get_resource(self, kind: str, id: str, msg_or_type: M) -> M: ...

    async def get_resource(self, kind: str, id: str, msg_or_type: M | type[M]) -> M:
        """``kind/id`` as a message: given a class, a new instance; given an
        instance, filled and returned.  NotFoundError if absent."""
        get = cast("Callable[[str, str, M | type[M]], M]", self._sync().get_resource)
        return await self._point(get, kind, id, msg_or_type)

    async def get_record(self, kind: str, id: str) -> Resource:
        """The raw record of ``kind/id``: Resource(id, kind, data, updated_at, revision)."""
        return await self._point(self._sync().get_record, kind, id)

    async def get_bytes(self, kind: str, id: str) -> bytes:
        """The raw protobuf bytes of ``kind/id``; NotFoundError if absent."""
        return await self._point(self._sync().get_bytes, kind, id)

    async def exists(self, kind: str, id: str) -> bool:
        """Whether ``kind/id`` is stored (nothing is copied)."""
        return await self._point(self._sync().exists, kind, id)

    async def count(self, kind: str) -> int:
        """Number of resources of a kind."""
        return await self._point(self._sync().count, kind)

    async def kinds(self) -> list[str]:
        """Sorted kinds that hold at least one resource."""
        return await self._point(self._sync().kinds)

    async def list_ids(
        self, kind: str, *, after: str | None = None, limit: int | None = None,
        prefix: str | None = None,
    ) -> list[str]:
        """Ids of a kind in key order, without reading any payload: only ids
        strictly after ``after`` and starting with ``prefix``, at most ``limit``."""
        return await self._call(self._sync().list_ids, kind, after=after, limit=limit,
                                prefix=prefix)

    @overload
    async def list_resources(self, kind: str, msg_type: None = None) -> list[bytes]: ...
    @overload
    async def list_resources(self, kind: str, msg_type: type[M]) -> list[M]: ...

    async def list_resources(
        self, kind: str, msg_type: type[M] | None = None
    ) -> list[bytes] | list[M]:
        """Every resource of a kind in key order: raw bytes, or messages of
        ``msg_type`` (InvalidMessageError if the store recorded another type)."""
        fn = cast("Callable[[str, type[M] | None], list[bytes] | list[M]]",
                  self._sync().list_resources)
        return await self._call(fn, kind, msg_type)

    async def iter_resources(
        self,
        kind: str,
        msg_type: type[Message] | None = None,
        *,
        after: str | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[Resource]:
        """Resources of a kind with ids strictly after ``after``, in key order
        (with ``msg_type``: each Resource's ``.message`` set), read a page at a
        time by ``_call``.  Bad arguments raise at the first ``__anext__``."""
        it: Iterator[Resource] = await self._call(
            self._sync().iter_resources, kind, msg_type, after=after, limit=limit)

        def page() -> list[Resource]:
            out: list[Resource] = []
            for r in it:
                out.append(r)
                if len(out) == _PAGE:
                    break
            return out

        while True:
            chunk = await self._call(page)
            for r in chunk:
                yield r
            if len(chunk) < _PAGE:
                return

    def collection(self, kind: str, msg_type: type[M]) -> AsyncCollection[M]:
        """The typed handle of one kind (a plain call) with coroutine methods;
        the recorded type is checked by its first read."""
        from .aio_collection import AsyncCollection, AsyncOwner
        from .collection import Collection

        sync = Collection(self._sync(), kind, msg_type, check=False)
        return AsyncCollection(cast(AsyncOwner, self), sync)

    # -- index lookups --------------------------------------------------------

    @overload
    async def find(
        self, kind: str, index: str, value: object, msg_type: None = None, *,
        after: str | None = None, limit: int | None = None,
    ) -> list[bytes]: ...
    @overload
    async def find(
        self, kind: str, index: str, value: object, msg_type: type[M], *,
        after: str | None = None, limit: int | None = None,
    ) -> list[M]: ...

    async def find(
        self, kind: str, index: str, value: object, msg_type: type[M] | None = None, *,
        after: str | None = None, limit: int | None = None,
    ) -> list[bytes] | list[M]:
        """Resources of ``kind`` whose ``index`` holds ``value``, in id order:
        raw bytes, or ``msg_type`` messages; ids strictly after ``after``."""
        fn = cast("Callable[..., list[bytes] | list[M]]", self._sync().find)
        return await self._call(fn, kind, index, value, msg_type, after=after, limit=limit)

    async def find_ids(self, kind: str, index: str, value: object) -> list[str]:
        """Ids of the resources whose ``index`` holds ``value``, in id order."""
        return await self._call(self._sync().find_ids, kind, index, value)

    async def find_one(self, kind: str, index: str, value: object, msg_type: type[M]) -> M:
        """The first resource (by id) whose ``index`` holds ``value``;
        NotFoundError if none."""
        fn = cast("Callable[[str, str, object, type[M]], M]", self._sync().find_one)
        return await self._call(fn, kind, index, value, msg_type)

    async def count_index(self, kind: str, index: str, value: object) -> int:
        """Number of resources whose ``index`` holds ``value``."""
        return await self._call(self._sync().count_index, kind, index, value)

    async def indexes(self, kind: str | None = None) -> list[IndexInfo]:
        """Every index (of ``kind``, or of all kinds), sorted by (kind, name)."""
        return await self._call(self._sync().indexes, kind)

    # -- event streams --------------------------------------------------------

    async def read_events(
        self, stream: str, msg_type: type[Message] | None = None, *, after: int = 0,
        limit: int | None = None,
    ) -> list[Event]:
        """Events of ``stream`` with seq > ``after``, in seq order; each
        ``data`` is bytes, or a ``msg_type`` message."""
        return await self._call(self._sync().read_events, stream, msg_type, after=after,
                                limit=limit)

    async def last_seq(self, stream: str) -> int:
        """Highest seq ever appended to ``stream`` and not forgotten; 0 if none."""
        return await self._call(self._sync().last_seq, stream)

    async def streams(self) -> list[str]:
        """Sorted streams holding at least one event."""
        return await self._call(self._sync().streams)

    # -- version history ------------------------------------------------------

    async def history_keep(self, kind: str) -> int:
        """The keep count of ``kind`` (0: no history)."""
        return await self._call(self._sync().history_keep, kind)

    async def history(self, kind: str, id: str, *, limit: int | None = None) -> list[Resource]:
        """The versions of ``kind/id``, newest first: the live one (when it
        exists), then the kept ones, each with its revision and updated_at."""
        return await self._call(self._sync().history, kind, id, limit=limit)

    async def get_record_at(self, kind: str, id: str, revision: int) -> Resource:
        """The version of ``kind/id`` written at ``revision`` (live or kept);
        NotFoundError when that version is not kept."""
        return await self._call(self._sync().get_record_at, kind, id, revision)


class AsyncWrites:
    """Coroutine writes of a Store or Transaction, each run by ``_write_call``."""

    def _sync(self) -> Store | Transaction:
        raise NotImplementedError

    async def _write_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        raise NotImplementedError

    async def save_resources(self, kind: str, items: Iterable[tuple[str, Message]]) -> int:
        """Upsert many resources of one kind, all or nothing, in one commit; the count."""
        return await self._write_call(self._sync().save_resources, kind, list(items))

    async def update_resource(
        self, kind: str, id: str, msg_type: type[M], fn: Callable[[M], object], *,
        create: bool = False,
    ) -> M:
        """Atomic read-modify-write of ``kind/id`` (see ``Store.update_resource``);
        ``fn`` runs on the writer thread, so a coroutine function is refused
        with TypeError at the call and nothing is written."""
        from ._ops import check_update_fn

        check_update_fn(fn)  # in the caller's task, before anything is queued
        update = cast("Callable[..., M]", self._sync().update_resource)
        return await self._write_call(update, kind, id, msg_type, fn, create=create)

    async def delete_resources_by_kind(self, kind: str) -> int:
        """Delete every resource of a kind (and its history); the count."""
        return await self._write_call(self._sync().delete_resources_by_kind, kind)

    async def delete_resources_by_prefix(self, kind: str, id_prefix: str) -> int:
        """Delete the resources of ``kind`` whose id starts with ``id_prefix``
        ("" = the whole kind) in one write transaction; the count."""
        return await self._write_call(self._sync().delete_resources_by_prefix, kind, id_prefix)

    async def create_index(
        self, kind: str, name: str, *, field: str, msg_type: type[Message], unique: bool = False
    ) -> int:
        """Index ``field`` (a dotted path in ``msg_type``) of every resource of
        ``kind``; backfills and returns the number of entries (see
        ``Store.create_index``)."""
        return await self._write_call(self._sync().create_index, kind, name, field=field,
                                      msg_type=msg_type, unique=unique)

    async def drop_index(self, kind: str, name: str) -> None:
        """Drop an index and its entries; NotFoundError if absent."""
        await self._write_call(self._sync().drop_index, kind, name)

    async def rebuild_index(self, kind: str, name: str) -> int:
        """Rebuild an index's entries from the records; the entry count."""
        return await self._write_call(self._sync().rebuild_index, kind, name)

    async def append_events(self, stream: str, events: Iterable[tuple[int, Message]]) -> int:
        """Append ``(seq, msg)`` pairs (any order) in one transaction; a
        (stream, seq) already present or forgotten is skipped; how many were new."""
        return await self._write_call(self._sync().append_events, stream, list(events))

    async def append_event(self, stream: str, msg: Message) -> int:
        """Append ``msg`` as the next event (last seq + 1, assigned atomically); its seq."""
        return await self._write_call(self._sync().append_event, stream, msg)

    async def delete_events(self, stream: str, *, upto: int | None = None) -> int:
        """Delete all events of ``stream``, or those with seq <= ``upto``;
        appends at or below that seq are skipped from then on.  The count."""
        return await self._write_call(self._sync().delete_events, stream, upto=upto)

    async def set_history(self, kind: str, keep: int) -> None:
        """Keep the last ``keep`` superseded versions of each resource of
        ``kind`` (0 keeps none).  Persisted; makes no revision."""
        await self._write_call(self._sync().set_history, kind, keep)

    async def delete_history(self, kind: str, id: str) -> int:
        """Drop the kept versions of ``kind/id`` (not the live one); how many."""
        return await self._write_call(self._sync().delete_history, kind, id)

