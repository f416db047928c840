"""``Collection[M]``: the typed handle of one kind.

    agents = store.collection("Agent", Agent)      # Collection[Agent]
    agents.save("agt-1", Agent(model="m"))
    agent = agents.get("agt-1")                    # an Agent; NotFoundError if absent
    page = agents.page(100)                        # Page(items, next_token)

Every method is one call of the owner's public method with the kind and
message type filled in, so a collection made by a ``Store``, a
``Transaction`` or a snapshot behaves exactly as its owner does (a
transaction's collection reads its own writes and commits with it).

The store records the message type of each kind it saves; a collection made
for another type of an existing kind raises ``InvalidMessageError`` naming
both types, at creation.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from google.protobuf.message import Message

from ._lmdb.core import check_key, encode_id, encode_kind
from ._messages import check_type
from .errors import InvalidKeyError, NotFoundError
from .records import Change, Page

if TYPE_CHECKING:
    from ._ops import ResourceOps

__all__ = ["Collection", "check_own", "decode_token", "encode_token"]

M = TypeVar("M", bound=Message)

_TOKEN_PREFIX = "v1."


def encode_token(last_id: str) -> str:
    """The opaque page token that resumes strictly after ``last_id``.

    ``v1.`` and the URL-safe base64 of the id's UTF-8 (no padding): a
    position in key order, not a snapshot, so it stays valid across writes
    and can be reused.
    """
    raw = base64.urlsafe_b64encode(last_id.encode("utf-8")).rstrip(b"=")
    return _TOKEN_PREFIX + raw.decode("ascii")


def decode_token(token: str) -> str:
    """The id a token resumes after; InvalidKeyError for anything not made by
    :func:`encode_token`."""
    if not isinstance(token, str):
        raise TypeError(f"token must be str or None, not {type(token).__name__}")
    if not token.startswith(_TOKEN_PREFIX):
        raise InvalidKeyError(f"invalid page token {token!r}")
    body = token[len(_TOKEN_PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        last = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidKeyError(f"invalid page token {token!r}") from None
    if not last or "\0" in last or encode_token(last) != token:
        raise InvalidKeyError(f"invalid page token {token!r}")
    return last


def check_own(kind: str, msg_type: type[Message], msg: object) -> None:
    """A typed handle writes only its own type: another message would be
    recorded as the kind's type and make its other records unreadable as
    ``msg_type`` (TypeError naming both; a non-message is the owner's to refuse)."""
    if isinstance(msg, Message) and msg.DESCRIPTOR.full_name != msg_type.DESCRIPTOR.full_name:
        raise TypeError(
            f"collection {kind!r} holds {msg_type.DESCRIPTOR.full_name} messages, "
            f"not {msg.DESCRIPTOR.full_name}"
        )


def _check_size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be int, not {type(size).__name__}")
    if size < 1:
        raise ValueError("size must be >= 1")
    return size


class Collection(Generic[M]):
    """One kind of a store, read and written as messages of one type.

    Made by ``store.collection(kind, msg_type)`` (also ``Transaction`` and
    snapshots).  ``kind`` and ``msg_type`` are the handle's; every method
    delegates to the owner's method of the same meaning.
    """

    __slots__ = ("_ops", "kind", "msg_type")

    def __init__(
        self, ops: ResourceOps, kind: str, msg_type: type[M], *, check: bool = True
    ) -> None:
        check_type(msg_type)
        check_key(encode_kind(kind), b"_")
        self._ops = ops
        self.kind = kind
        self.msg_type: type[M] = msg_type
        # check=False (an async transaction's or snapshot's collection, made
        # outside its thread): the first read checks instead, as every typed
        # read does, and its writes call check_kind() first.
        if check:
            self.check_kind()

    def kind_checked(self) -> bool:
        """Whether the kind is known to hold this handle's type (no store read)."""
        return self._ops._schemas.read_ok.get(self.kind) is self.msg_type.DESCRIPTOR

    def check_kind(self) -> None:
        """InvalidMessageError if the store recorded another type for the kind."""
        if not self.kind_checked():
            desc: Any = self.msg_type.DESCRIPTOR
            self._ops._check_read_type(self.kind, encode_kind(self.kind), desc)

    def __repr__(self) -> str:
        return f"<pystore.Collection {self.kind!r} of {self.msg_type.DESCRIPTOR.full_name}>"

    # -- reads ---------------------------------------------------------------

    def get(self, id: str) -> M:
        """The message stored under ``id``; NotFoundError if absent."""
        return self._ops.get_resource(self.kind, id, self.msg_type)

    def get_or_none(self, id: str) -> M | None:
        """The message stored under ``id``, or None if absent."""
        try:
            return self._ops.get_resource(self.kind, id, self.msg_type)
        except NotFoundError:
            return None

    def exists(self, id: str) -> bool:
        """Whether ``id`` is stored (no payload is read)."""
        return self._ops.exists(self.kind, id)

    def ids(
        self, *, after: str | None = None, limit: int | None = None, prefix: str | None = None
    ) -> list[str]:
        """Ids in key order, strictly after ``after``, starting with ``prefix``,
        at most ``limit``; no payload is copied."""
        return self._ops.list_ids(self.kind, after=after, limit=limit, prefix=prefix)

    def items(
        self, *, after: str | None = None, limit: int | None = None, prefix: str | None = None
    ) -> list[tuple[str, M]]:
        """``(id, message)`` pairs in id order, with the same filters as :meth:`ids`."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise TypeError(f"limit must be int or None, not {type(limit).__name__}")
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        out: list[tuple[str, M]] = []
        start = after or None
        if prefix:
            encode_id(prefix)
            # Ids with the prefix sort from the prefix itself (inclusive) on.
            if start is None or start < prefix:
                if limit != 0:
                    first = self.get_or_none(prefix)
                    if first is not None:
                        out.append((prefix, first))
                start = prefix
        left = None if limit is None else limit - len(out)
        for r in self._ops.iter_resources(self.kind, self.msg_type, after=start, limit=left):
            if prefix and not r.id.startswith(prefix):
                break
            out.append((r.id, r.message))
        return out

    def page(self, size: int, token: str | None = None) -> Page[M]:
        """Up to ``size`` ``(id, message)`` pairs after the position ``token``
        (None: from the first id) and the token of the next page.

        A token is an opaque str; it can be kept and reused, and stays valid
        across writes: paging from None to the end sees every id that is
        present throughout exactly once.  ``next_token`` is None when nothing
        follows.
        """
        n = _check_size(size)
        after = None if token is None else decode_token(token)
        got = self.items(after=after, limit=n + 1)
        if len(got) > n:
            return Page(got[:n], encode_token(got[n - 1][0]))
        return Page(got, None)

    def count(self) -> int:
        """Number of resources of the kind."""
        return self._ops.count(self.kind)

    def find(
        self, index: str, value: object, *, after: str | None = None, limit: int | None = None
    ) -> list[M]:
        """Messages whose index ``index`` holds ``value``, in id order (ids
        strictly after ``after``, at most ``limit``)."""
        ops: Any = self._ops  # the query methods (issue 10) are the owner's
        found: list[M] = ops.find(self.kind, index, value, self.msg_type, after=after, limit=limit)
        return found

    def find_one(self, index: str, value: object) -> M:
        """The first message (by id) whose index ``index`` holds ``value``;
        NotFoundError if none."""
        ops: Any = self._ops
        one: M = ops.find_one(self.kind, index, value, self.msg_type)
        return one

    def watch(self, after: int | None = None, *, timeout: float | None = None) -> Iterator[Change]:
        """Changes of this kind committed after revision ``after`` (None: from
        now; on a snapshot's collection: from the snapshot's revision), as
        ``Store.watch`` yields them."""
        store: Any = getattr(self._ops, "_store", self._ops)
        if after is None and hasattr(self._ops, "revision") and store is not self._ops:
            after = self._ops.revision  # a snapshot: gapless from what it saw
        it: Iterator[Change] = store.watch(after, kinds=[self.kind], timeout=timeout)
        return it

    # -- writes --------------------------------------------------------------

    def save(self, id: str, msg: M, *, if_revision: int | None = None) -> int:
        """Upsert ``id``; the revision it committed at.  ``if_revision=N``:
        only if the stored revision is N (0: only if absent), else ConflictError.
        A message of another type than the handle's: TypeError."""
        check_own(self.kind, self.msg_type, msg)
        return self._ops.save_resource(self.kind, id, msg, if_revision=if_revision)

    def create(self, id: str, msg: M) -> int:
        """Save ``id`` only if absent (AlreadyExistsError); the revision."""
        check_own(self.kind, self.msg_type, msg)
        return self._ops.create_resource(self.kind, id, msg)

    def update(self, id: str, fn: Callable[[M], object], *, create: bool = False) -> M:
        """Atomic read-modify-write: ``fn`` mutates the stored message, which is
        saved and returned.  NotFoundError if absent, unless ``create=True``
        (``fn`` then gets a new empty message).  ``fn`` must be a plain
        function returning None or its argument (TypeError otherwise, and
        nothing is written)."""
        return self._ops.update_resource(self.kind, id, self.msg_type, fn, create=create)

    def delete(self, id: str, *, if_revision: int | None = None) -> bool:
        """Delete ``id``; True if it existed.  ``if_revision=N``: only if the
        stored revision is N, else ConflictError."""
        return self._ops.delete_resource(self.kind, id, if_revision=if_revision)
