"""``pystore verify``: every record's header and payload must decode, and
every index must hold exactly the entries its kind's records give.

The records are read with the core's ``ps_list_raw``, which hands out each
stored value with its header unchecked (``ps_list`` refuses to go past a
damaged header), so every damaged record is named and the check goes on.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError, Message

from .._lmdb._native import ffi, lib
from .._lmdb.core import CTxn, encode_kind
from .._lmdb.indexcheck import check_indexes
from .._seam import op_for
from ..errors import CorruptionError, StoreError, check
from .dump import Decoder
from .progress import Progress

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["raw_records", "verify"]

_PAGE = 512
_ENTRY = struct.Struct("<II")  # id_len, value_len
_HEADER: int = lib.PS_HEADER_SIZE
_VERSION: int = lib.PS_FORMAT_VERSION
_DAMAGED: int = lib.PS_RAW_DAMAGED


def _raw_page(txn: CTxn, kb: bytes, after: bytes | None) -> list[tuple[bytes, bytes | None]]:
    buf = ffi.new("ps_buf *")
    try:
        a = after if after is not None else ffi.NULL
        rc = lib.ps_list_raw(txn.ptr, kb, len(kb), a, len(after or b""), _PAGE, buf)
        check(rc, kb.decode("utf-8", "replace"))
        view = memoryview(ffi.buffer(buf.data, buf.len))
        out: list[tuple[bytes, bytes | None]] = []
        off = 0
        for _ in range(buf.count):
            id_len, vlen = _ENTRY.unpack_from(view, off)
            start = off + _ENTRY.size
            if vlen == _DAMAGED:  # the core read nothing of it
                out.append((bytes(view[start : start + id_len]), None))
                off = start + id_len
                continue
            out.append((bytes(view[start : start + id_len]),
                        bytes(view[start + id_len : start + id_len + vlen])))
            off = start + id_len + vlen
        return out
    finally:
        lib.ps_buf_free(buf)


def raw_records(txn: CTxn, kb: bytes, after: bytes | None = None
                ) -> Iterator[tuple[bytes, bytes | None]]:
    """(id, stored value: header then payload) of every record of a kind
    (after ``after``); the value is None when its stored size is damaged."""
    while True:
        page = op_for(txn, _raw_page)(txn, kb, after)
        yield from page
        if len(page) < _PAGE:
            return
        after = page[-1][0]


def header_problem(value: bytes) -> str:
    """Why a stored value's header is damaged, or "" if it is sound."""
    if len(value) < _HEADER:
        return f"damaged record header ({len(value)} bytes, under {_HEADER})"
    if value[0] != _VERSION:
        return f"damaged record header (format version {value[0]}, expected {_VERSION})"
    return ""


def verify(store: Store, report: IO[str]) -> tuple[int, int]:
    """Check every record's header and payload: (records checked, problems).

    Each problem is one ``BAD ...`` line on ``report``.  A payload is decoded
    with its kind's stored schema; a kind without one is checked for
    well-formed protobuf wire format.
    """
    dec = Decoder()
    checked = problems = 0
    bars: list[Progress] = []

    def bad(text: str) -> None:
        nonlocal problems
        problems += 1
        for b in bars:
            b.clear()
        report.write(f"BAD {text}\n")
        report.flush()

    with store._reading() as t:
        try:
            names = t.kinds()
        except StoreError as exc:
            bad(f"the key index: {exc}")
            return checked, problems
        total = sum(t.count(encode_kind(k)) for k in names)
        with Progress("verify", total) as bar:
            bars.append(bar)
            for kind in names:
                cls = dec.cls(t, kind)
                if kind in dec.errors:
                    bad(f"{kind}: {dec.errors[kind]}")
                check_cls: type[Message] = cls if cls is not None else empty_pb2.Empty
                what = f"its schema {check_cls.DESCRIPTOR.full_name}" if cls else "wire format"
                try:
                    for ib, value in raw_records(t, encode_kind(kind)):
                        checked += 1
                        bar.update(checked)
                        try:
                            id = ib.decode("utf-8")
                        except UnicodeDecodeError:
                            id = repr(ib)
                            bad(f"{kind}/{id}: id is not valid UTF-8")
                        if value is None:
                            bad(f"{kind}/{id}: stored size runs outside its pages "
                                "(damaged file): nothing of it was read")
                            continue
                        why = header_problem(value)
                        if why:
                            bad(f"{kind}/{id}: {why}")
                            continue
                        try:
                            check_cls.FromString(value[_HEADER:])
                        except DecodeError as exc:
                            bad(f"{kind}/{id}: payload does not decode ({what}): {exc}")
                except CorruptionError as exc:
                    bad(f"{kind}: {exc}")
        if isinstance(t, CTxn):  # LMDB keeps the count apart from the pages walked
            held = t.entries()
            if held != checked:
                bad(f"the resources table says it holds {held} record(s), {checked} were "
                    "found: damaged B-tree pages (restore from a backup or a dump)")
        # every index against a full scan of its kind (indexcheck.py)
        try:
            for problem in check_indexes(t):  # either backend (op_for)
                bad(problem)
        except StoreError as exc:
            bad(f"indexes: {exc}")
    return checked, problems
