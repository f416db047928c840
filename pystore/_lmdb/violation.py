"""Turn the core's PS_ERR_UNIQUE into a :class:`UniqueViolationError`.

After a write fails with ``PS_ERR_UNIQUE`` the core keeps, in the
transaction, the index name, the holder's id and the raw value that
collided (``ps_txn_violation``); the value is decoded here by the index's
final field kind (see ``index.py`` for the forms).
"""

from __future__ import annotations

from typing import Any

from ..errors import StoreError, UniqueViolationError, error_for
from ._native import ffi, lib

__all__ = ["decode_raw", "unique_error"]

_SIGNED = {
    lib.PS_IDX_INT32, lib.PS_IDX_INT64, lib.PS_IDX_SINT32, lib.PS_IDX_SINT64,
    lib.PS_IDX_SFIXED32, lib.PS_IDX_SFIXED64, lib.PS_IDX_ENUM,
}


def _scalar(kind: int, raw: bytes) -> Any:
    if kind == lib.PS_IDX_STRING:
        return raw.decode("utf-8", "replace")
    if kind == lib.PS_IDX_BYTES:
        return raw
    if kind == lib.PS_IDX_BOOL:
        return raw == b"\x01"
    n = int.from_bytes(raw, "big")
    return n - (1 << 63) if kind in _SIGNED else n


def decode_raw(mode: int, raw: bytes) -> Any:
    """The Python value of a raw index value of an index with final ``mode``."""
    kind = mode & lib.PS_IDX_SCALAR_MASK
    if mode & lib.PS_IDX_MAP:
        n = int.from_bytes(raw[:4], "big")
        return (raw[4 : 4 + n].decode("utf-8", "replace"), _scalar(kind, raw[4 + n :]))
    return _scalar(kind, raw)


def unique_error(txn_ptr: Any, kind: bytes, context: str) -> StoreError:
    """The error for PS_ERR_UNIQUE raised by a write in ``txn_ptr``."""
    name, nl = ffi.new("const char **"), ffi.new("size_t *")
    holder, hl = ffi.new("const char **"), ffi.new("size_t *")
    value, vl = ffi.new("const char **"), ffi.new("size_t *")
    mode = ffi.new("unsigned *")
    if lib.ps_txn_violation(txn_ptr, name, nl, holder, hl, value, vl, mode):
        return error_for(lib.PS_ERR_UNIQUE, context)
    exc = UniqueViolationError(
        kind.decode("utf-8", "replace"),
        ffi.unpack(name[0], nl[0]).decode("utf-8", "replace"),
        decode_raw(int(mode[0]), ffi.unpack(value[0], vl[0]) if vl[0] else b""),
        ffi.unpack(holder[0], hl[0]).decode("utf-8", "replace"),
    )
    exc.code = lib.PS_ERR_UNIQUE
    return exc
