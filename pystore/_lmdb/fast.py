"""Fast paths over the C core: one C call per read, one parse per list.

- :func:`env_get` reads one record with ``ps_get_into``: one C call that
  renews a parked read transaction, copies the payload into this thread's
  reusable buffer and parks the transaction again.  No ``ffi.new`` per call.
- :func:`list_wire` lists a kind as the wire format of a repeated field
  (see ``_wire.py``), ready for one ``ParseFromString``.
"""

from __future__ import annotations

import threading
from array import array
from typing import Any, cast

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message

from ..errors import NotFoundError, check, error_for
from ._native import ffi, lib
from .core import CTxn, damaged_id
from .violation import unique_error
from .wire import ITEMS_FIELD, MAX_WIRE, bytes_list_class, list_class

__all__ = ["env_get", "list_wire", "parse_list", "put_many"]

_KEEP_MAX = 1 << 20  # a per-thread buffer grown past this is not kept
# Bound once: attribute lookups on the cffi lib cost as much as a small call.
_get_into = lib.ps_get_into_rev
_unpack = ffi.unpack
_NOTFOUND: int = lib.PS_LMDB_NOTFOUND


class _Tls(threading.local):
    def __init__(self) -> None:
        # One attribute: each access to a threading.local costs ~0.1 us.
        # [buffer, its size, size, updated_ns, revision, busy]: busy from the
        # C call to the copy of its results (see env_get).
        self.get: list[Any] = _get_space(1 << 16)


def _get_space(n: int) -> list[Any]:
    return [ffi.new("char[]", n), n, ffi.new("size_t *"), ffi.new("int64_t *"),
            ffi.new("uint64_t *"), False]


_tls = _Tls()


def _context(kind: bytes, id: bytes) -> str:
    return f"{kind.decode('utf-8', 'replace')}/{id.decode('utf-8', 'replace')}"


def env_get(env: Any, kind: bytes, id: bytes) -> tuple[bytes, int, int]:
    """Payload (a copy), updated_ns and revision of ``kind/id``; NotFoundError
    when absent."""
    o = _tls.get
    if o[5]:
        # Run between another read's C call and its copy, in this thread (a
        # signal handler's or a finalizer's): its results are in the
        # thread's buffer, so this read takes its own.
        o = _get_space(o[1])
    o[5] = True
    try:
        n = _read(env, kind, id, o)
        if n <= o[1]:
            return _unpack(o[0], n), o[3][0], o[4][0]
    finally:
        o[5] = False
    return _get_large(env, kind, id, n)


def _read(env: Any, kind: bytes, id: bytes, o: list[Any]) -> int:
    """Read kind/id into the space ``o`` (see _get_space): the record's size
    (past the buffer: read again into a bigger one); NotFoundError when absent."""
    rc = _get_into(env, kind, len(kind), id, len(id), o[0], o[1], o[2], o[3], o[4])
    if rc:
        if rc == _NOTFOUND:
            raise NotFoundError(f"resource not found: {_context(kind, id)}")
        raise error_for(rc, _context(kind, id))
    n: int = o[2][0]
    return n


def _get_large(env: Any, kind: bytes, id: bytes, n: int) -> tuple[bytes, int, int]:
    """A record larger than this thread's buffer: grow it (kept only if
    modest) and read again; the record may change in between, hence the loop."""
    while True:
        o = _get_space(n)  # its own: kept for the thread only when no longer read
        got = _read(env, kind, id, o)
        if got <= n:
            result = _unpack(o[0], got), o[3][0], o[4][0]
            if n <= _KEEP_MAX:
                _tls.get = o
            return result
        n = got


def list_wire(txn: CTxn, kind: bytes, after: bytes | None, limit: int) -> tuple[bytes, int]:
    """The records of a kind as repeated field ITEMS_FIELD in wire format, and their count."""
    buf = ffi.new("ps_buf *")
    try:
        a = after if after is not None else ffi.NULL
        alen = len(after) if after is not None else 0
        rc = lib.ps_list_wire(txn.ptr, kind, len(kind), a, alen, limit, ITEMS_FIELD, buf)
        if rc == lib.PS_ERR_VALUE_BOUNDS:  # name the damaged record
            bad = damaged_id(txn, kind, after) or b"?"
            raise error_for(rc, _context(kind, bad))
        check(rc, kind.decode("utf-8", "replace"))
        if buf.len == 0:
            return b"", 0
        return ffi.unpack(buf.data, buf.len), int(buf.count)
    finally:
        lib.ps_buf_free(buf)


def parse_list(wire: bytes, count: int, cls: type[Message] | None) -> list[Any] | None:
    """The ``count`` records in ``wire`` as bytes (cls None) or ``cls`` messages,
    parsed at once; None if that cannot be done (the caller goes record by record)."""
    if len(wire) > MAX_WIRE:
        return None
    wrapper = (
        bytes_list_class()() if cls is None else list_class(cast(Descriptor, cls.DESCRIPTOR))()
    )
    try:
        wrapper.ParseFromString(wire)
    except (DecodeError, RecursionError):
        return None
    items = list(wrapper.items)  # type: ignore[attr-defined]
    if len(items) != count or (cls is not None and items and type(items[0]) is not cls):
        return None
    return items


def put_many(txn: CTxn, kind: bytes, batch: list[tuple[bytes, bytes]], ns: int) -> None:
    """Upsert (id, payload) pairs of one kind in ``txn`` with one C call."""
    if not batch:
        return
    parts = [x for pair in batch for x in pair]
    data = b"".join(parts)
    lens = array("I", [len(x) for x in parts])
    txn._keep.append(data)  # borrowed by the core until the txn ends
    # the failing record's index: this call's own (~0.1 us a batch), as a
    # handler's batch run after the call would overwrite the thread's
    index = ffi.new("size_t *")
    rc = lib.ps_put_many(
        txn.ptr,
        kind,
        len(kind),
        data,
        len(data),
        ffi.from_buffer("uint32_t[]", lens),
        len(batch),
        ns,
        lib.PS_PUT_BORROW,
        index,
    )
    if rc:
        where = _context(kind, batch[min(index[0], len(batch) - 1)][0])
        if rc == lib.PS_ERR_UNIQUE:
            raise unique_error(txn.ptr, kind, where)
        raise error_for(rc, where)
