"""Per-kind helpers shared by ``Store``, ``Transaction`` and snapshots.

``exists`` and ``list_ids`` (ids only: no payload is copied), the check that
a kind is read as the message type the store recorded for it, and
``collection()``, the typed handle of one kind (:mod:`pystore.collection`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from ._lmdb.core import CTxn, check_key, encode_id, encode_kind
from ._lmdb.schema import SchemaRecorder, read_type_name, schema_epoch
from ._messages import check_type
from ._seam import nothing
from .errors import InvalidMessageError

if TYPE_CHECKING:
    from ._ops import ResourceOps
    from .collection import Collection

__all__ = ["KindOps", "check_limit"]

M = TypeVar("M", bound=Message)


def check_limit(limit: object) -> int | None:
    """``limit`` as given (None: no limit); TypeError / ValueError otherwise."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be int or None, not {type(limit).__name__}")
    if limit < 0:
        raise ValueError("limit must be >= 0")
    return limit


def _recorded(txn: CTxn, kb: bytes) -> tuple[str | None, bool, int]:
    return read_type_name(txn, kb), txn.write, schema_epoch(txn)


class KindOps:
    """Mixed into ``ResourceOps``; uses its ``_run`` and schema cache."""

    _schemas: SchemaRecorder

    def _run(self, write: bool, op: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    def exists(self, kind: str, id: str) -> bool:
        """Whether ``kind/id`` is stored (nothing is copied)."""
        kb, ib = encode_kind(kind), encode_id(id)
        found: bool = self._run(False, CTxn.exists, kb, ib)
        return found

    def list_ids(
        self,
        kind: str,
        *,
        after: str | None = None,
        limit: int | None = None,
        prefix: str | None = None,
    ) -> list[str]:
        """Ids of a kind in key order, without reading any payload.

        Only ids strictly after ``after`` and starting with ``prefix``, at
        most ``limit`` of them; one read transaction (a consistent answer).
        """
        kb = encode_kind(kind)
        ab = encode_id(after) if after else None
        pb = encode_id(prefix) if prefix else None
        check_key(kb, ab or pb or b"_")  # bad keys fail here, with the key named
        if pb is not None and ab is not None:
            check_key(kb, pb)
        n = check_limit(limit)
        if n == 0:
            self._run(False, nothing)  # a closed store refuses it all the same
            return []
        ids: list[str] = self._run(False, CTxn.list_ids, kb, ab, pb, n or 0)
        return ids

    def collection(self, kind: str, msg_type: type[M]) -> Collection[M]:
        """The typed handle of one kind: ``store.collection("Agent", Agent)``.

        InvalidMessageError if the store recorded another message type for
        ``kind`` (see :class:`pystore.collection.Collection`).
        """
        from .collection import Collection

        return Collection(cast("ResourceOps", self), kind, msg_type)

    def _read_type(self, kind: str, kb: bytes, msg_type: type[M]) -> type[M]:
        """``msg_type`` checked as a message class that ``kind`` may be read
        as (InvalidMessageError if the store recorded another type)."""
        cls = check_type(msg_type)
        if self._schemas.read_ok.get(kind) is not cls.DESCRIPTOR:
            self._check_read_type(kind, kb, cls.DESCRIPTOR)  # type: ignore[arg-type]
        return cast("type[M]", cls)

    def _check_read_type(self, kind: str, kb: bytes, desc: Descriptor) -> None:
        """InvalidMessageError unless ``kind`` may be read as ``desc``'s type.

        Callers test ``self._schemas.read_ok.get(kind) is desc`` first (one
        dict lookup); this looks the recorded type up in the store and
        remembers a match (outside write transactions, which may roll back).
        A kind without a recorded type (raw records, or no record yet) may be
        read as any type.
        """
        name, in_write, epoch = self._run(False, _recorded, kb)
        if name is None:
            return
        if name != desc.full_name:
            raise InvalidMessageError(
                f"kind {kind!r} holds {name} messages (the type recorded in the store), "
                f"cannot read it as {desc.full_name}"
            )
        if not in_write:
            latest = self._schema_epoch()  # None (etcd): the txn's own
            self._schemas.adopt(epoch if latest is None else latest)
            if epoch == self._schemas.epoch:  # checked at the epoch the cache holds
                self._schemas.read_ok[kind] = desc

    def _schema_epoch(self) -> int | None:
        """The newest schema epoch this process saw (None: not tracked)."""
        return None

    def _recheck_type(self, kind: str, kb: bytes, desc: Descriptor) -> None:
        """After a typed read that trusted ``read_ok``: if another process
        changed a kind's recorded type since (the schema epoch moved), forget
        every check and check this kind again (InvalidMessageError)."""
        if self._adopt_epoch():
            self._check_read_type(kind, kb, desc)

    def _adopt_epoch(self) -> bool:
        """After a read: whether the schema epoch moved past the checks
        (then forgotten: the fast readers, which refuse to read meanwhile,
        read again)."""
        epoch = self._schema_epoch()
        if epoch is None or epoch == self._schemas.epoch:
            return False
        self._schemas.adopt(epoch)
        return True
