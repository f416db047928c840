"""Thin typed wrappers over the C core: key encoding and one live transaction.

Everything that crosses into C goes through here.  Bytes objects are handed
to C without copying; payloads written with ``PS_PUT_BORROW`` are kept alive
by the transaction until it ends, as the core's contract requires.
"""

from __future__ import annotations

import builtins
import re
import struct
import threading
import weakref
from collections.abc import Iterator
from typing import Any

from ..errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidKeyError,
    NotFoundError,
    TransactionError,
    check,
    error_for,
)
from ._native import ffi, lib
from .violation import unique_error

__all__ = [
    "MAX_PAYLOAD", "CTxn", "check_key", "check_key_held", "encode_id", "encode_kind",
    "holds_txn",
]

_REC = struct.Struct("<IIqQ")  # id_len, payload_len, updated_ns, revision
_U32 = struct.Struct("<I")
# The meta key of a schema of a kind too long for "kind.type/<kind>" (schema.py).
_HASHED = re.compile(rb"#[0-9a-f]{64}")
MAX_PAYLOAD: int = lib.PS_MAX_PAYLOAD  # largest protobuf payload a record holds


def _encode(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKeyError(f"{what} {value!r} is not encodable as UTF-8: {exc.reason}") from None


def encode_kind(kind: object) -> bytes:
    return _encode(kind, "kind")


def encode_id(id: object) -> bytes:
    return _encode(id, "id")


def check_key(kind: bytes, id: bytes) -> None:
    """Validate an encoded kind and id without touching the store."""
    check(lib.ps_check_key(kind, len(kind), id, len(id)), _key_context(kind, id))


_MAX_KEY: int = lib.PS_MAX_KEY
_SLASH = ord("/")


def check_key_held(kind: bytes, id: bytes) -> None:
    """``check_key`` without a C call for a valid key (a cffi call releases
    the GIL, and threads queueing for a group commit would convoy on it).
    Accepts only what ``ps_check_key`` accepts; anything else goes to it
    for the exact error."""
    if not (
        kind and id and len(kind) + len(id) < _MAX_KEY
        and _SLASH not in kind and 0 not in kind and 0 not in id
    ):
        check_key(kind, id)


_WeakRef = weakref.ref


def holds_txn(tls: Any) -> bool:
    """With a Store's ``tls.txn`` set: whether this thread holds a
    transaction (or runs an update callback).  A Transaction's dead weak
    reference -- it was collected without its exit, and rolled back -- is
    cleared: the thread holds none."""
    held = tls.txn
    if held.__class__ is _WeakRef and held() is None:
        tls.txn = None
        return False
    return True


class _Params:
    """Out-parameters of one C call of CTxn, read after it returns."""

    __slots__ = ("busy", "int", "ns", "ptr", "rev", "size", "u64")

    def __init__(self) -> None:
        self.ptr: Any = ffi.new("const char **")
        self.size: Any = ffi.new("size_t *")
        self.ns: Any = ffi.new("int64_t *")
        self.u64: Any = ffi.new("uint64_t *")
        self.int: Any = ffi.new("int *")
        self.rev: Any = ffi.new("uint64_t *")
        self.busy = False  # from the C call to the read of its results


class _Out(threading.local):
    """Per-thread out-parameters, so hot calls allocate nothing in cffi."""

    def __init__(self) -> None:
        self.p = _Params()


_out = _Out()


def _params() -> _Params:
    """This thread's out-parameters; new ones when they are busy: this call
    runs between another call's C call and its read of them (a signal
    handler's or a finalizer's, in this thread), whose results they hold.
    The caller sets ``busy`` right before its ``try`` (no check point in
    between: an interrupt cannot leave it set) and clears it in ``finally``."""
    o: _Params = _out.p
    return _Params() if o.busy else o


def _number(where: str, fn: Any, *args: Any) -> int:
    """``fn(*args, out)`` with a u64 out-parameter of this call's own (see
    _params), checked (``where`` names it in an error): the number."""
    o = _params()
    o.busy = True
    try:
        check(fn(*args, o.u64), where)
        return int(o.u64[0])
    finally:
        o.busy = False


def _key_context(kind: bytes, id: bytes | None) -> str:
    k = kind.decode("utf-8", "replace")
    return k if id is None else f"{k}/{id.decode('utf-8', 'replace')}"


_begin_txn = lib.ps_txn_begin
_WRITE_SLICED: int = lib.PS_TXN_WRITE | lib.PS_TXN_WAIT_SLICE
_WAIT_AGAIN: int = lib.PS_ERR_WAIT_AGAIN
# Ends the txn in a slot and clears the slot in ONE C call: code that ends
# a transaction calls this directly in a ``finally`` block (no Python
# function in between, so no KeyboardInterrupt can land before it).
finish = lib.ps_txn_finish
NO_SLOT: Any = ffi.new("ps_txn **")  # always NULL: finishing it does nothing
PENDING = -1  # in CTxn.rc until the txn is finished (-1 is no core code)


class CTxn:
    """One transaction of the core; ends with commit(), abort() or ``finish``.

    Interrupt safety: the core writes the live ``ps_txn *`` into
    ``self.pp`` (memory this object owns) before ``ps_txn_begin`` returns,
    and ``finish(slot, commit, rc, revp)`` ends it and clears the slot in
    one C call, writing the outcome into ``rc``/``revp``.  So the object is
    created (no C call) before the ``try`` whose ``finally`` finishes it,
    and ``begin()`` runs inside that ``try``: wherever a KeyboardInterrupt
    lands, the ``finally`` ends exactly the transaction that was begun, and
    ``committed`` tells whether a commit happened.  ``slot`` is what
    per-call code finishes: ``pp`` for a transaction of its own,
    ``NO_SLOT`` for a ``Transaction``'s (which ends at its exit).
    """

    __slots__ = ("_keep", "commit_asked", "pp", "rc", "revp", "schemas", "slot", "write")

    # ``t.finish(t.slot, ok, t.rc, t.revp)``: a cffi function is no
    # descriptor, so this calls C directly, with no Python frame (another
    # backend's txn class gives a method of the same shape).
    finish = finish

    def __init__(self, write: bool, owned: bool = True) -> None:
        self.pp: Any = ffi.new("ps_txn **")
        self.rc: Any = ffi.new("int *", PENDING)
        self.revp: Any = ffi.new("uint64_t *")
        self.slot: Any = self.pp if owned else NO_SLOT
        self.write = write
        self.commit_asked = False
        self._keep: list[bytes] = []
        # kind -> descriptor whose schema this txn recorded (see _schema.py)
        self.schemas: dict[str, Any] | None = None

    def begin(self, env: Any) -> None:
        if self.pp[0] != ffi.NULL:
            raise TransactionError("this transaction was begun already")
        flags = _WRITE_SLICED if self.write else 0
        rc = _begin_txn(env, flags, self.pp)
        while rc == _WAIT_AGAIN:
            # Another thread's or process's write txn: waited for in slices (PS_TXN_SLICE_MS),
            # each call returning here, so a signal's handler (Ctrl-C) runs
            # between them instead of after that whole transaction.
            rc = _begin_txn(env, flags, self.pp)
        if rc:
            raise error_for(rc, "begin transaction")

    @property
    def ptr(self) -> Any:
        return self.pp[0]

    @property
    def committed(self) -> bool:
        """True once a commit of this txn succeeded."""
        return self.commit_asked and self.rc[0] == 0

    def check_commit(self) -> int:
        """After ``finish``: raise the error of a failed commit, else the
        revision committed (0: none, or not a commit)."""
        self._keep.clear()
        rc = self.rc[0]
        if self.commit_asked and rc not in (0, PENDING):
            raise error_for(rc, "commit")
        return int(self.revp[0]) if self.commit_asked else 0

    def commit(self) -> int:
        """Commit; the revision committed (0 when the txn changed nothing)."""
        # Borrowed payloads must outlive the commit: on MDB_MAP_FULL the
        # core grows the map and replays the log from them.
        self.commit_asked = True
        rc = finish(self.pp, 1, self.rc, self.revp)
        if rc == lib.PS_ERR_WRONG_THREAD:
            self.commit_asked = False
            raise error_for(rc, "commit")
        return self.check_commit()

    def pending(self) -> int:
        """The revision this write txn's changes carry (0 while none)."""
        return _number("revision", lib.ps_txn_pending, self.ptr)

    def revision(self) -> int:
        """The last committed revision this txn sees."""
        return _number("revision", lib.ps_txn_revision, self.ptr)

    def abort(self) -> None:
        finish(self.pp, 0, self.rc, ffi.NULL)
        self._keep.clear()

    def __del__(self) -> None:
        # Reached only if the code that owns the txn was torn down without
        # its finally (e.g. a generator never closed): never leave a lock.
        pp = getattr(self, "pp", None)
        if pp is not None and pp[0] != ffi.NULL:
            finish(pp, 0, ffi.NULL, ffi.NULL)

    def put(
        self, kind: bytes, id: bytes, payload: bytes, ns: int, create: bool,
        if_revision: int | None = None,
    ) -> None:
        flags = lib.PS_PUT_BORROW | (lib.PS_PUT_NOOVERWRITE if create else 0)
        actual = 0
        if if_revision is None:
            rc = lib.ps_put(self.ptr, kind, len(kind), id, len(id), payload, len(payload), ns,
                            flags)
        else:
            o = _params()
            o.busy = True
            try:
                rc = lib.ps_put_if(self.ptr, kind, len(kind), id, len(id), payload,
                                   len(payload), ns, flags | lib.PS_PUT_IF_REVISION,
                                   if_revision, o.rev)
                actual = int(o.rev[0])
            finally:
                o.busy = False
        if rc:
            if rc == lib.PS_LMDB_KEYEXIST:
                raise AlreadyExistsError(f"resource already exists: {_key_context(kind, id)}")
            if rc == lib.PS_ERR_UNIQUE:
                raise unique_error(self.ptr, kind, _key_context(kind, id))
            raise _write_error(rc, kind, id, if_revision, actual)
        self._keep.append(payload)

    def get(self, kind: bytes, id: bytes) -> tuple[bytes, int, int]:
        """Payload (copied), updated_ns and revision; NotFoundError when absent."""
        o = _params()
        o.busy = True
        try:
            rc = lib.ps_get_rev(self.ptr, kind, len(kind), id, len(id), o.ptr, o.size, o.ns,
                                o.rev)
            if rc == 0:
                return ffi.unpack(o.ptr[0], o.size[0]), int(o.ns[0]), int(o.rev[0])
        finally:
            o.busy = False
        if rc == lib.PS_LMDB_NOTFOUND:
            raise NotFoundError(f"resource not found: {_key_context(kind, id)}")
        raise error_for(rc, _key_context(kind, id))

    def exists(self, kind: bytes, id: bytes) -> bool:
        """Whether kind/id is stored (nothing is copied)."""
        o = _out.p  # written, never read: a call of a handler may share them
        rc = lib.ps_get(self.ptr, kind, len(kind), id, len(id), o.ptr, o.size, o.ns)
        if rc == lib.PS_LMDB_NOTFOUND:
            return False
        if rc:
            raise error_for(rc, _key_context(kind, id))
        return True

    def delete(self, kind: bytes, id: bytes, if_revision: int | None = None) -> bool:
        o = _params()
        o.busy = True
        try:
            rc = lib.ps_del_if(self.ptr, kind, len(kind), id, len(id), if_revision is not None,
                               if_revision or 0, o.rev, o.int)
            actual, existed = int(o.rev[0]), bool(o.int[0])
        finally:
            o.busy = False
        if rc:
            raise _write_error(rc, kind, id, if_revision, actual)
        return existed

    def delete_kind(self, kind: bytes) -> int:
        return _number(_key_context(kind, None), lib.ps_del_kind, self.ptr, kind, len(kind))

    def delete_prefix(self, kind: bytes, prefix: bytes) -> int:
        return _number(_key_context(kind, prefix or None), lib.ps_del_prefix, self.ptr, kind,
                       len(kind), prefix, len(prefix))

    def count(self, kind: bytes) -> int:
        return _number(_key_context(kind, None), lib.ps_count, self.ptr, kind, len(kind))

    def list(
        self, kind: bytes, after: bytes | None, limit: int
    ) -> list[tuple[bytes, bytes, int, int]]:
        """(id, payload, updated_ns, revision) of up to ``limit`` (0: all) records
        after ``after``."""
        buf = ffi.new("ps_buf *")
        try:
            a = after if after is not None else ffi.NULL
            alen = len(after) if after is not None else 0
            rc = lib.ps_list(self.ptr, kind, len(kind), a, alen, limit, buf)
            if rc == lib.PS_ERR_VALUE_BOUNDS:
                raise error_for(rc, _key_context(kind, damaged_id(self, kind, after)))
            check(rc, _key_context(kind, after))
            return list(_records(ffi.buffer(buf.data, buf.len), buf.count))
        finally:
            lib.ps_buf_free(buf)

    def list_ids(
        self, kind: bytes, after: bytes | None, prefix: bytes | None, limit: int
    ) -> builtins.list[str]:
        """Ids (no payloads) of up to ``limit`` (0: all) records starting with
        ``prefix``, strictly after ``after``, in key order."""
        buf = ffi.new("ps_buf *")
        try:
            a = after if after else ffi.NULL
            p = prefix if prefix else ffi.NULL
            rc = lib.ps_list_ids(self.ptr, kind, len(kind), a, len(after or b""), p,
                                 len(prefix or b""), limit, buf)
            check(rc, _key_context(kind, after))
            view = memoryview(ffi.buffer(buf.data, buf.len))
            out, off = [], 0
            unpack = _U32.unpack_from
            for _ in range(buf.count):
                (n,) = unpack(view, off)
                out.append(str(view[off + 4 : off + 4 + n], "utf-8"))
                off += 4 + n
            return out
        finally:
            lib.ps_buf_free(buf)

    def space(self) -> tuple[int, int, int, int]:
        """(page size, high-water pages, free pages, live pages) of this snapshot."""
        sp = ffi.new("ps_space *")
        check(lib.ps_txn_space(self.ptr, sp), "space")
        return int(sp.page_size), int(sp.high_pages), int(sp.free_pages), int(sp.live_pages)

    def entries(self) -> int:
        """The records the resources table's root says it holds (LMDB's count)."""
        out = ffi.new("uint64_t *")
        check(lib.ps_txn_entries(self.ptr, out), "entries")
        return int(out[0])

    def kinds(self) -> builtins.list[str]:  # `list` here is the method above
        buf = ffi.new("ps_buf *")
        try:
            check(lib.ps_kinds(self.ptr, buf), "kinds")
            view = memoryview(ffi.buffer(buf.data, buf.len))
            out, off = [], 0
            for _ in range(buf.count):
                (n,) = _U32.unpack_from(view, off)
                out.append(bytes(view[off + 4 : off + 4 + n]).decode("utf-8", "replace"))
                off += 4 + n
            # Key order is not kind order: "A\x17/x" sorts before "A/x".
            return sorted(out)
        finally:
            lib.ps_buf_free(buf)

    def kinds_with_state(self) -> builtins.list[str]:
        """Sorted kinds with a history keep count, kept versions or a recorded
        schema (records or not); a schema kept under a hashed key is left out."""
        buf = ffi.new("ps_buf *")
        try:
            check(lib.ps_kinds_with_state(self.ptr, buf), "kinds")
            raw = ffi.unpack(buf.data, buf.len) if buf.len else b""
            out, off = set(), 0
            for _ in range(buf.count):
                (n,) = _U32.unpack_from(raw, off)
                name = raw[off + 4 : off + 4 + n]
                off += 4 + n
                if not _HASHED.fullmatch(name):
                    out.add(name.decode("utf-8", "replace"))
            return sorted(out)
        finally:
            lib.ps_buf_free(buf)

    def meta_get(self, key: bytes) -> bytes | None:
        o = _params()
        o.busy = True
        try:
            rc = lib.ps_meta_get(self.ptr, key, len(key), o.ptr, o.size)
            if rc == lib.PS_LMDB_NOTFOUND:
                return None
            check(rc, "meta")
            value: bytes = ffi.unpack(o.ptr[0], o.size[0])
            return value
        finally:
            o.busy = False

    def meta_put(self, key: bytes, value: bytes) -> None:
        check(lib.ps_meta_put(self.ptr, key, len(key), value, len(value)), "meta")


def _write_error(rc: int, kind: bytes, id: bytes, if_revision: int | None,
                 actual: int = 0) -> Exception:
    if rc == lib.PS_ERR_CONFLICT and if_revision is not None:
        return ConflictError(
            kind.decode("utf-8", "replace"), id.decode("utf-8", "replace"),
            if_revision, actual,
        )
    return error_for(rc, _key_context(kind, id))


def damaged_id(txn: CTxn, kind: bytes, after: bytes | None) -> bytes | None:
    """The first record of ``kind`` after ``after`` whose stored size runs
    outside its pages (``ps_list_raw`` names it), to name it in an error."""
    while True:
        buf = ffi.new("ps_buf *")
        try:
            a = after if after is not None else ffi.NULL
            rc = lib.ps_list_raw(txn.ptr, kind, len(kind), a, len(after or b""), 512, buf)
            if rc:
                return None
            view = memoryview(ffi.buffer(buf.data, buf.len))
            off = 0
            for _ in range(buf.count):
                id_len, vlen = struct.unpack_from("<II", view, off)
                start = off + 8
                ident = bytes(view[start : start + id_len])
                if vlen == lib.PS_RAW_DAMAGED:
                    return ident
                after, off = ident, start + id_len + vlen
            if buf.count < 512:
                return None
        finally:
            lib.ps_buf_free(buf)


def _records(raw: Any, count: int) -> Iterator[tuple[bytes, bytes, int, int]]:
    view = memoryview(raw)
    off = 0
    unpack = _REC.unpack_from
    for _ in range(count):
        id_len, plen, ns, rev = unpack(view, off)
        start = off + 24
        yield bytes(view[start : start + id_len]), bytes(
            view[start + id_len : start + id_len + plen]
        ), ns, rev
        off = start + id_len + plen


def records_of(raw: bytes, count: int) -> list[tuple[bytes, bytes, int, int]]:
    """The ``count`` entries of a buffer in ps_list's layout."""
    return list(_records(raw, count))
