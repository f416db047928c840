"""The record type returned by ``get_record`` and ``iter_resources``."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

__all__ = ["Resource", "ns_to_datetime"]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def ns_to_datetime(ns: int) -> _dt.datetime:
    """Nanoseconds since the Unix epoch to an aware UTC datetime (microsecond precision)."""
    return _EPOCH + _dt.timedelta(microseconds=ns // 1000)


@dataclass(frozen=True, slots=True)
class Resource:
    """One stored resource: its identity, raw protobuf bytes and last save time.

    ``data`` is the protobuf payload exactly as stored (tenancy fields already
    stripped).  ``updated_at`` is an aware UTC datetime; ``updated_ns`` keeps
    the full nanosecond stamp.
    """

    id: str
    kind: str
    data: bytes
    updated_at: _dt.datetime
    updated_ns: int = field(default=0, compare=False)
