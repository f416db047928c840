"""Event streams: glue over ``csrc/ps_events.c``."""

from __future__ import annotations

import struct

from ..errors import InvalidKeyError, check
from ._native import ffi, lib
from .core import CTxn

__all__ = ["MAX_SEQ", "append", "check_seq", "delete", "encode_stream", "last", "marks", "read",
           "streams"]

MAX_SEQ: int = lib.PS_MAX_SEQ
_EV = struct.Struct("<QqI")


def encode_stream(stream: object) -> bytes:
    """A stream name follows the id rules: non-empty str, no NUL (at most 500 bytes)."""
    if not isinstance(stream, str):
        raise TypeError(f"stream must be str, not {type(stream).__name__}")
    try:
        b = stream.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKeyError(
            f"stream {stream!r} is not encodable as UTF-8: {exc.reason}"
        ) from None
    if not b:
        raise InvalidKeyError("stream is empty (a stream is a non-empty str)")
    if b"\0" in b:
        raise InvalidKeyError(f"stream {stream!r} contains a NUL character")
    if len(b) > lib.PS_MAX_STREAM:
        raise InvalidKeyError(f"stream is {len(b)} bytes of UTF-8; at most {lib.PS_MAX_STREAM}")
    return b


def check_seq(seq: object, what: str = "seq", low: int = 1) -> int:
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise TypeError(f"{what} must be int, not {type(seq).__name__}")
    if not low <= seq <= MAX_SEQ:
        raise ValueError(f"{what} must be in {low}..2**63-1, not {seq}")
    return seq


def _ctx(stream: bytes) -> str:
    return f"stream {stream.decode('utf-8', 'replace')!r}"


def append(txn: CTxn, stream: bytes, seq: int, payload: bytes, ns: int) -> tuple[int, bool]:
    """Append (seq 0: the next); (the seq, whether it was new)."""
    seq_out, added = ffi.new("uint64_t *"), ffi.new("int *")
    rc = lib.ps_event_append(txn.ptr, stream, len(stream), seq, payload, len(payload), ns,
                             lib.PS_PUT_BORROW, seq_out, added)
    check(rc, _ctx(stream))
    if added[0]:
        txn._keep.append(payload)  # borrowed by the core until the txn ends
    return int(seq_out[0]), bool(added[0])


def read(txn: CTxn, stream: bytes, after: int, limit: int) -> list[tuple[int, int, bytes]]:
    """(seq, recorded_ns, payload) of the events after ``after``, in seq order."""
    buf = ffi.new("ps_buf *")
    try:
        check(lib.ps_events_read(txn.ptr, stream, len(stream), after, limit, buf), _ctx(stream))
        raw = ffi.unpack(buf.data, buf.len) if buf.len else b""
        out, off = [], 0
        for _ in range(buf.count):
            seq, ns, n = _EV.unpack_from(raw, off)
            off += _EV.size
            out.append((seq, ns, raw[off : off + n]))
            off += n
        return out
    finally:
        lib.ps_buf_free(buf)


def last(txn: CTxn, stream: bytes) -> int:
    out = ffi.new("uint64_t *")
    check(lib.ps_event_last(txn.ptr, stream, len(stream), out), _ctx(stream))
    return int(out[0])


def delete(txn: CTxn, stream: bytes, upto: int | None) -> int:
    out = ffi.new("uint64_t *")
    rc = lib.ps_events_delete(txn.ptr, stream, len(stream), int(upto is None), upto or 0, out)
    check(rc, _ctx(stream))
    return int(out[0])


def marks(txn: CTxn, stream: bytes) -> tuple[int, int]:
    """(highest seq appended, seq up to which events are forgotten)."""
    hwm, forgot = ffi.new("uint64_t *"), ffi.new("uint64_t *")
    check(lib.ps_event_marks(txn.ptr, stream, len(stream), hwm, forgot), _ctx(stream))
    return int(hwm[0]), int(forgot[0])


def streams(txn: CTxn, all_: bool = False) -> list[str]:
    buf = ffi.new("ps_buf *")
    try:
        check(lib.ps_streams(txn.ptr, int(all_), buf), "streams")
        raw = ffi.unpack(buf.data, buf.len) if buf.len else b""
        out, off = [], 0
        for _ in range(buf.count):
            (n,) = struct.unpack_from("<I", raw, off)
            out.append(raw[off + 4 : off + 4 + n].decode("utf-8", "replace"))
            off += 4 + n
        return sorted(out)
    finally:
        lib.ps_buf_free(buf)
