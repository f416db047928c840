"""The records pystore hands back: resources, changes, events, index facts, pages."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Change", "Event", "IndexInfo", "Page", "Resource", "ns_to_datetime"]

T = TypeVar("T")

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def ns_to_datetime(ns: int) -> _dt.datetime:
    """Nanoseconds since the Unix epoch to an aware UTC datetime (microsecond precision)."""
    return _EPOCH + _dt.timedelta(microseconds=ns // 1000)


@dataclass(frozen=True, slots=True)
class Resource:
    """One stored resource: its identity, raw protobuf bytes and last save time.

    ``data`` is the protobuf payload exactly as stored (tenancy fields already
    stripped).  ``updated_at`` is an aware UTC datetime; ``updated_ns`` keeps
    the full nanosecond stamp; ``revision`` is the store revision of the
    write that produced this version.  ``message`` is the parsed message when
    the caller asked for a type (``iter_resources(kind, msg_type)``), else None.
    """

    id: str
    kind: str
    data: bytes
    updated_at: _dt.datetime
    updated_ns: int = field(default=0, compare=False)
    revision: int = 0
    message: Any = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change, as ``changes()`` and ``watch()`` yield it.

    ``op`` is ``"put"`` (save, create, update, in any API), ``"delete"``,
    ``"delete_kind"`` (``id`` None: one change for a whole kind),
    ``"delete_prefix"`` (``id`` is the prefix) or ``"append"`` (an event:
    ``kind`` and ``id`` None, ``stream`` and ``seq`` set).  Changes carry
    no payload: read the resource.
    """

    revision: int
    op: str
    kind: str | None
    id: str | None
    updated_at: _dt.datetime
    stream: str | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a stream: ``data`` is bytes, or a message when a type was given."""

    stream: str
    seq: int
    data: Any
    recorded_at: _dt.datetime


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """A secondary index of a kind, with its current number of entries."""

    kind: str
    name: str
    field: str
    unique: bool
    entries: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a collection: ``(id, message)`` pairs and the token of the next
    page (None when nothing follows)."""

    items: list[tuple[str, T]]
    next_token: str | None
