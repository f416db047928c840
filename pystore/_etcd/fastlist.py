"""The list fast path of the etcd backend: Range pages at one revision, their
wire bytes turned into one repeated-field buffer by the C core
(``ps_etcd_range_wire``, csrc/ps_etcd.c), parsed by Python once -- as
``ps_list_wire`` does for LMDB.  No record is touched in Python."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lmdb._native import ffi, lib
from .._lmdb.core import check_key
from .._lmdb.wire import ITEMS_FIELD
from ..errors import error_for
from . import _common as c

if TYPE_CHECKING:
    from .txn import EtcdTxn

__all__ = ["list_wire", "range_wire"]

# Pages start at 1000 keys and adapt to the record size: doubled (up to
# 16,000) while a page is under 4 MiB, halved over 16 MiB.  etcd cannot bound
# a Range by bytes; this bounds what one response holds in memory.
_PAGE_FIRST, _PAGE_MAX, _SMALL, _BIG = 1000, 16_000, 4 << 20, 16 << 20


def range_wire(raw: bytes, what: str) -> tuple[bytes, int, int, bool, bytes]:
    """(wire list, records, header revision, more, last key) of a RangeResponse."""
    buf = ffi.new("ps_buf *")
    rev, more = ffi.new("uint64_t *"), ffi.new("int *")
    off, klen = ffi.new("size_t *"), ffi.new("size_t *")
    try:
        rc = lib.ps_etcd_range_wire(raw, len(raw), ITEMS_FIELD, buf, rev, more, off, klen)
        if rc:
            raise error_for(rc, what)
        wire = ffi.unpack(buf.data, buf.len) if buf.len else b""
        last = raw[off[0] : off[0] + klen[0]]
        return wire, int(buf.count), int(rev[0]), bool(more[0]), last
    finally:
        lib.ps_buf_free(buf)


def _varint(v: int) -> bytes:
    out = bytearray()
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def list_wire(txn: EtcdTxn, kind: bytes, after: bytes | None, limit: int) -> tuple[bytes, int]:
    """The records of a kind as ITEMS_FIELD elements, and their count, read in
    pages at the transaction's pinned revision."""
    check_key(kind, after if after else b"_")
    if kind in txn.dropped:
        return b"", 0
    if txn.overlaid(kind):  # this transaction's own writes merged: record by record
        rows = txn.list(kind, after, limit)
        return b"".join(b"\x0a" + _varint(len(r[1])) + r[1] for r in rows), len(rows)
    prefix = txn.lay.kind_prefix(kind)
    start = prefix + after + b"\0" if after else prefix
    end = c.prefix_end(prefix)
    parts: list[bytes] = []
    count = 0
    what = kind.decode("utf-8", "replace")
    page = _PAGE_FIRST
    while True:
        want = page if not limit else min(page, limit - count)
        raw = txn.client.range_raw(
            start, end, limit=want, revision=txn.pin, serializable=txn.store._serializable
        )
        wire, n, rev, more, last = range_wire(raw, what)
        if not txn.pin:
            txn.pin = rev
        txn.note_range(start)
        parts.append(wire)
        count += n
        if len(raw) < _SMALL:
            page = min(page * 2, _PAGE_MAX)
        elif len(raw) > _BIG:
            page = max(page // 2, 1)
        if not more or not n or (limit and count >= limit):
            return b"".join(parts), count
        start = last + b"\0"
