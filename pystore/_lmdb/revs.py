"""cffi glue of revisions, the change log and version history (ps_changes.c,
ps_history.c): out-parameters and buffer decoding, nothing else."""

from __future__ import annotations

import struct
from typing import Any

from ..errors import NotFoundError, check, error_for
from ..records import Change, Resource, ns_to_datetime
from ._native import ffi, lib
from .core import CTxn

__all__ = [
    "END",
    "env_revision",
    "get_at",
    "history",
    "history_delete",
    "history_ids",
    "history_keep",
    "history_load",
    "history_set",
    "read_changes",
    "reserve",
]

END = 0xFFFFFFFF  # a position index meaning "after the whole revision"
_CHANGE = struct.Struct("<QII")  # revision, index, value_len
_VALUE = struct.Struct("<BxxxqI")  # op, updated_ns, kind_len
_VERSION = struct.Struct("<QqI")  # revision, updated_ns, payload_len
OPS = {
    lib.PS_CHANGE_PUT: "put",
    lib.PS_CHANGE_DELETE: "delete",
    lib.PS_CHANGE_DELETE_KIND: "delete_kind",
    lib.PS_CHANGE_APPEND: "append",
    lib.PS_CHANGE_DELETE_PREFIX: "delete_prefix",
}


def _ctx(kind: bytes, id: bytes | None = None) -> str:
    k = kind.decode("utf-8", "replace")
    return k if id is None else f"{k}/{id.decode('utf-8', 'replace')}"


def env_revision(env: Any) -> int:
    """The last committed revision, in one C call."""
    out = ffi.new("uint64_t *")
    check(lib.ps_revision(env, out), "revision")
    return int(out[0])


def read_changes(
    txn: CTxn, after_rev: int, after_idx: int, kinds: list[bytes] | None, limit: int,
    streams: list[bytes] | None = None,
) -> tuple[list[Change], int, int]:
    """Changes after position (after_rev, after_idx), at most ``limit`` (0: all);
    also the position to continue from.  CompactedError when trimmed."""
    buf = ffi.new("ps_buf *")
    nrev, nidx, comp = ffi.new("uint64_t *"), ffi.new("uint32_t *"), ffi.new("uint64_t *")
    names = b"".join(kinds) if kinds else b""
    lens = ffi.new("uint32_t[]", [len(k) for k in kinds]) if kinds else ffi.NULL
    try:
        snames = b"".join(streams) if streams else ffi.NULL
        slens = ffi.new("uint32_t[]", [len(s) for s in streams]) if streams else ffi.NULL
        rc = lib.ps_changes(txn.ptr, after_rev, after_idx, names if kinds else ffi.NULL, lens,
                            len(kinds) if kinds else 0, snames, slens,
                            len(streams) if streams else 0, limit, buf, nrev, nidx, comp)
        if rc:
            after = after_rev if after_idx == END else f"{after_rev} (index {after_idx})"
            raise error_for(
                rc, f"changes after revision {after} (kept: after revision {int(comp[0])})"
            )
        return _changes(ffi.buffer(buf.data, buf.len), buf.count), int(nrev[0]), int(nidx[0])
    finally:
        lib.ps_buf_free(buf)


def _changes(raw: Any, count: int) -> list[Change]:
    view = memoryview(raw)
    out: list[Change] = []
    off = 0
    last_ns, last_dt = None, ns_to_datetime(0)
    for _ in range(count):
        rev, _idx, vlen = _CHANGE.unpack_from(view, off)
        start = off + _CHANGE.size
        op, ns, klen = _VALUE.unpack_from(view, start)
        body = start + _VALUE.size
        kind = bytes(view[body : body + klen]).decode("utf-8", "replace")
        idb = bytes(view[body + klen : start + vlen])
        if ns != last_ns:
            last_ns, last_dt = ns, ns_to_datetime(ns)
        name = OPS.get(op, f"op{op}")
        if name == "append":  # "kind" holds the stream, the id the u64 BE seq
            out.append(Change(rev, name, None, None, last_dt, kind, int.from_bytes(idb, "big")))
        else:
            keep_id = idb or name in ("put", "delete_prefix")
            id = idb.decode("utf-8", "replace") if keep_id else None
            out.append(Change(rev, name, kind, id, last_dt))
        off = start + vlen
    return out


def history(txn: CTxn, kind: str, kb: bytes, id: str, ib: bytes, limit: int) -> list[Resource]:
    buf = ffi.new("ps_buf *")
    try:
        check(lib.ps_history(txn.ptr, kb, len(kb), ib, len(ib), limit, buf), _ctx(kb, ib))
        view = memoryview(ffi.buffer(buf.data, buf.len))
        out, off = [], 0
        for _ in range(buf.count):
            rev, ns, plen = _VERSION.unpack_from(view, off)
            start = off + _VERSION.size
            data = bytes(view[start : start + plen])
            out.append(Resource(id, kind, data, ns_to_datetime(ns), ns, rev))
            off = start + plen
        return out
    finally:
        lib.ps_buf_free(buf)


def get_at(txn: CTxn, kind: str, kb: bytes, id: str, ib: bytes, revision: int) -> Resource:
    p, n, ns = ffi.new("const char **"), ffi.new("size_t *"), ffi.new("int64_t *")
    rc = lib.ps_get_at(txn.ptr, kb, len(kb), ib, len(ib), revision, p, n, ns)
    if rc == lib.PS_LMDB_NOTFOUND:
        raise NotFoundError(f"no version of {_ctx(kb, ib)} at revision {revision} is kept")
    check(rc, _ctx(kb, ib))
    return Resource(id, kind, ffi.unpack(p[0], n[0]), ns_to_datetime(ns[0]), ns[0], revision)


def history_ids(txn: CTxn, kb: bytes, after: bytes | None, limit: int) -> list[bytes]:
    """Ids of a kind with kept versions, in key order, after ``after``."""
    buf = ffi.new("ps_buf *")
    try:
        a = after if after is not None else ffi.NULL
        rc = lib.ps_history_ids(txn.ptr, kb, len(kb), a, len(after or b""), limit, buf)
        check(rc, _ctx(kb))
        view = memoryview(ffi.buffer(buf.data, buf.len))
        out, off = [], 0
        for _ in range(buf.count):
            (n,) = struct.unpack_from("<I", view, off)
            out.append(bytes(view[off + 4 : off + 4 + n]))
            off += 4 + n
        return out
    finally:
        lib.ps_buf_free(buf)


def history_delete(txn: CTxn, kb: bytes, ib: bytes) -> int:
    out = ffi.new("uint64_t *")
    check(lib.ps_history_delete(txn.ptr, kb, len(kb), ib, len(ib), out), _ctx(kb, ib))
    return int(out[0])


def history_set(txn: CTxn, kb: bytes, keep: int) -> None:
    check(lib.ps_history_set(txn.ptr, kb, len(kb), keep), _ctx(kb))


def history_keep(txn: CTxn, kb: bytes) -> int:
    out = ffi.new("uint64_t *")
    check(lib.ps_history_keep(txn.ptr, kb, len(kb), out), _ctx(kb))
    return int(out[0])


def reserve(txn: CTxn, n: int) -> int:
    out = ffi.new("uint64_t *")
    check(lib.ps_txn_reserve(txn.ptr, n, out), "reserve revisions")
    return int(out[0])


def history_load(
    txn: CTxn, kb: bytes, ib: bytes, data: bytes, ns: int, revision: int
) -> None:
    rc = lib.ps_history_load(txn.ptr, kb, len(kb), ib, len(ib), data, len(data), ns, revision)
    check(rc, _ctx(kb, ib))
