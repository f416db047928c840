"""``AsyncCollection[M]``: the typed handle of one kind for asyncio code.

``AsyncStore.collection(kind, msg_type)`` (a plain call) returns one; so do
``AsyncTransaction.collection`` and ``AsyncSnapshot.collection``.  Its
methods are coroutines with the names and meaning of
:class:`pystore.collection.Collection`'s.  Writes through an ``AsyncStore``
collection share group commits (``AsyncStore.save_resource``); everything
else runs the synchronous collection's method where its owner runs calls: a
worker thread for a store or snapshot, the store's writer thread for a
transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf.message import Message

from .collection import Collection, check_own
from .records import Change, Page

__all__ = ["AsyncCollection", "AsyncOwner"]

M = TypeVar("M", bound=Message)
T = TypeVar("T")


class AsyncOwner(Protocol):
    """What an async collection needs from its owner."""

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Awaitable[T]: ...

    async def save_resource(
        self, kind: str, id: str, msg: Message, *, if_revision: int | None = None
    ) -> int: ...

    async def create_resource(self, kind: str, id: str, msg: Message) -> int: ...

    async def delete_resource(
        self, kind: str, id: str, *, if_revision: int | None = None
    ) -> bool: ...

    async def update_resource(
        self, kind: str, id: str, msg_type: type[M], fn: Callable[[M], object], *,
        create: bool = False,
    ) -> M: ...


class AsyncCollection(Generic[M]):
    """One kind, read and written as messages of one type, with coroutine methods."""

    __slots__ = ("_owner", "_sync", "kind", "msg_type")

    def __init__(self, owner: AsyncOwner, sync: Collection[M]) -> None:
        self._owner = owner
        self._sync = sync
        self.kind = sync.kind
        self.msg_type: type[M] = sync.msg_type

    def __repr__(self) -> str:
        return (f"<pystore.AsyncCollection {self.kind!r} of "
                f"{self.msg_type.DESCRIPTOR.full_name}>")

    async def get(self, id: str) -> M:
        """The message stored under ``id``; NotFoundError if absent."""
        return await self._owner._call(self._sync.get, id)

    async def get_or_none(self, id: str) -> M | None:
        """The message stored under ``id``, or None."""
        return await self._owner._call(self._sync.get_or_none, id)

    async def exists(self, id: str) -> bool:
        """Whether ``id`` is stored."""
        return await self._owner._call(self._sync.exists, id)

    async def ids(
        self, *, after: str | None = None, limit: int | None = None, prefix: str | None = None
    ) -> list[str]:
        """Ids in key order (see ``Collection.ids``); no payload is copied."""
        return await self._owner._call(self._sync.ids, after=after, limit=limit, prefix=prefix)

    async def items(
        self, *, after: str | None = None, limit: int | None = None, prefix: str | None = None
    ) -> list[tuple[str, M]]:
        """``(id, message)`` pairs in id order (see ``Collection.items``)."""
        return await self._owner._call(self._sync.items, after=after, limit=limit, prefix=prefix)

    async def page(self, size: int, token: str | None = None) -> Page[M]:
        """One page and the next page's token (see ``Collection.page``)."""
        return await self._owner._call(self._sync.page, size, token)

    async def count(self) -> int:
        """Number of resources of the kind."""
        return await self._owner._call(self._sync.count)

    async def find(
        self, index: str, value: object, *, after: str | None = None, limit: int | None = None
    ) -> list[M]:
        """Messages whose index ``index`` holds ``value``, in id order."""
        return await self._owner._call(self._sync.find, index, value, after=after, limit=limit)

    async def find_one(self, index: str, value: object) -> M:
        """The first message (by id) whose index holds ``value``; NotFoundError if none."""
        return await self._owner._call(self._sync.find_one, index, value)

    async def _check(self, msg: object) -> None:
        """A write's checks: ``msg`` is the handle's type, and (until a read or
        a check saw it) so is the kind's recorded type, which a sync handle
        checks at its creation."""
        check_own(self.kind, self.msg_type, msg)
        if not self._sync.kind_checked():
            await self._owner._call(self._sync.check_kind)

    async def save(self, id: str, msg: M, *, if_revision: int | None = None) -> int:
        """Upsert ``id``; the revision it committed at (see ``Collection.save``)."""
        await self._check(msg)
        return await self._owner.save_resource(self.kind, id, msg, if_revision=if_revision)

    async def create(self, id: str, msg: M) -> int:
        """Save ``id`` only if absent (AlreadyExistsError); the revision."""
        await self._check(msg)
        return await self._owner.create_resource(self.kind, id, msg)

    async def update(self, id: str, fn: Callable[[M], object], *, create: bool = False) -> M:
        """Atomic read-modify-write (see ``Collection.update``); ``fn`` is a plain
        function: a coroutine function is refused with TypeError."""
        from ._ops import check_update_fn

        check_update_fn(fn)  # at the call, in the caller's task
        # The owner's write path (a store's writer thread behind its gate,
        # or the transaction's): run as a plain call in a worker thread it
        # waited there for the LMDB write lock of an open transaction().
        return await self._owner.update_resource(self.kind, id, self.msg_type, fn,
                                                 create=create)

    async def delete(self, id: str, *, if_revision: int | None = None) -> bool:
        """Delete ``id``; True if it existed."""
        return await self._owner.delete_resource(self.kind, id, if_revision=if_revision)

    def watch(
        self, after: int | None = None, *, timeout: float | None = None
    ) -> AsyncIterator[Change]:
        """Changes of this kind after revision ``after``, as ``AsyncStore.watch``
        yields them, starting at the call as it does (on a snapshot's
        collection ``after`` defaults to the snapshot's revision)."""
        watcher: Any = getattr(self._owner, "_watch_owner", self._owner)
        if after is None and hasattr(self._owner, "revision") and watcher is not self._owner:
            after = self._owner.revision
        changes: AsyncIterator[Change] = watcher.watch(after, kinds=[self.kind], timeout=timeout)
        return changes
