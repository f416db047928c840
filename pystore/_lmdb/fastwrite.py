"""One-call writes of a non-durable, writable Store (``ps_fastwrite.c``).

``save_resource``, ``create_resource``, ``delete_resource``,
``delete_resources_by_kind`` and ``save_resources`` of such a Store make ONE
C call each: the core checks the store (fork, close), strips the tenancy
fields with the type's compiled plan, checks the key(s), begins its own
write transaction, writes with every hook (revision, change log, indexes,
history), stamps the time and commits.  No transaction crosses into Python,
so no interrupt can leave one behind.

Anything unusual takes the general path (``ResourceOps``), which then
raises or does exactly what it always did: a thread inside its
``transaction()`` or ``update_resource()`` callback, a kind whose schema is
not recorded yet (the first save records it), arguments of unexpected
types, a message the C strip declines, a unique index violation (the
general path names the holder).  Errors found by the one call are raised
with the same types and messages as the general path's.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import EncodeError

from ..errors import (
    AlreadyExistsError,
    ConflictError,
    StoreError,
    ValueTooLargeError,
    error_for,
)
from ._native import ffi, lib
from .batchbuf import Joined
from .core import MAX_PAYLOAD
from .hygiene import Stripper

if TYPE_CHECKING:
    from ..store import Store
    from ..watch import Signal

__all__ = ["FastWriter", "check_revision", "key_context", "last_info", "pack_pairs"]

# Bound once: attribute lookups on the cffi lib cost as much as a small call.
_save = lib.ps_fw_save
_del = lib.ps_fw_del
_del_kind = lib.ps_fw_del_kind
_save_many = lib.ps_fw_save_many
_CREATE: int = lib.PS_PUT_NOOVERWRITE
_IF_REV: int = lib.PS_PUT_IF_REVISION
_STRIP: int = lib.PS_FW_STAGE_STRIP
_BEGIN: int = lib.PS_FW_STAGE_BEGIN
_COMMIT: int = lib.PS_FW_STAGE_COMMIT
_UNIQUE: int = lib.PS_ERR_UNIQUE
_TOO_LARGE: int = lib.PS_ERR_VALUE_TOO_LARGE
_KEYEXIST: int = lib.PS_LMDB_KEYEXIST
_CONFLICT: int = lib.PS_ERR_CONFLICT
_STORE_STATE = (lib.PS_ERR_CLOSED, lib.PS_ERR_FORKED)
_WAIT_AGAIN: int = lib.PS_ERR_WAIT_AGAIN  # another writer's txn: the general path waits
# this thread holds the store's write lock (its transaction() or an update
# callback): the general path raises its TransactionError
_HELD: int = errno.EDEADLK
_GENERAL = None  # a result meaning: take the general path


def check_revision(if_revision: object) -> int | None:
    """``if_revision`` as given (None: unconditional); TypeError / ValueError."""
    if if_revision is None:
        return None
    if isinstance(if_revision, bool) or not isinstance(if_revision, int):
        raise TypeError(f"if_revision must be int or None, not {type(if_revision).__name__}")
    if not 0 <= if_revision < 2**64:
        raise ValueError("if_revision must be >= 0 (0: only if absent)")
    return if_revision


def last_info(result: int) -> Any | None:
    """This thread's details of the failed ps_fw_* call that returned
    ``result`` (-ticket), or None when they are gone: a later failing call
    of this thread (a signal handler's or a finalizer's, run between the
    call and here) replaced them.  Nothing was written by the failed call,
    so the caller then takes the general path, which does the write again
    and raises what it finds."""
    info = ffi.new("ps_fw_info *")
    lib.ps_fw_last(info)
    return info if info.ticket == -result else None


def _failure(result: int) -> Any | None:
    """The details of the failed one-call write that returned ``result``,
    or None: take the general path, because they are gone (``last_info``)
    or because another thread or process held the write txn for a whole wait slice
    (PS_ERR_WAIT_AGAIN: the general path waits in slices, a signal's
    handler running between them), or because this thread holds the
    store's write lock (EDEADLK: the general path raises TransactionError)."""
    info = last_info(result)
    return None if info is None or info.rc == _WAIT_AGAIN or info.rc == _HELD else info


def key_context(kind: bytes, id: bytes | None) -> str:
    k = kind.decode("utf-8", "replace")
    return k if id is None else f"{k}/{id.decode('utf-8', 'replace')}"


def pack_pairs(
    stripper: Stripper, kind: object, items: object,
    schema_ok: Callable[[str, Descriptor], bool],
) -> tuple[bytes, list[bytes], Iterator[bytes], Any] | None:
    """A ``save_resources`` batch for one ps_fw_*save_many call: (kind,
    ids, an iterator of ids and serialized payloads in turn (to join:
    ``batchbuf.Joined``, which may raise the ``EncodeError`` of a message
    that does not serialize), the strip plan); None when the general path
    must take it (nothing consumed).

    Only a list or tuple of 2-tuples (str id, message of one class whose
    descriptor ``schema_ok(kind, descriptor)`` accepts) is taken: any other iterable goes to
    the general path unconsumed, which raises for a bad item at the same
    point of the iteration as it always did.  A payload too large is
    refused by the core before anything is written."""
    if type(items) is not list and type(items) is not tuple:
        return None
    if type(kind) is not str or not items:
        return None
    if set(map(type, items)) != {tuple} or set(map(len, items)) != {2}:
        return None
    ids, msgs = zip(*items, strict=True)
    cls = type(msgs[0])
    entry = stripper.fw_entry(cls)
    if (
        entry is None
        or set(map(type, msgs)) != {cls}
        or set(map(type, ids)) != {str}
        or not schema_ok(kind, entry[0])
    ):
        return None
    try:
        kb = kind.encode()
        ibs = list(map(str.encode, ids))
    except UnicodeEncodeError:
        return None
    # each message serialized as it is joined (see batchbuf)
    parts = chain.from_iterable(zip(ibs, map(cls.SerializeToString, msgs), strict=True))
    return kb, ibs, parts, entry[1]


def _general_error(store: Store, info: Any, where: str) -> StoreError:
    """The error the general path raises for a failure of the one call."""
    rc = info.rc
    if rc in _STORE_STATE:
        store._check_usable()  # StoreClosedError / ForkedError, worded as ever
    if info.stage == _BEGIN:
        return error_for(rc, "begin transaction")
    if info.stage == _COMMIT:
        return error_for(rc, "commit")
    return error_for(rc, where)


class FastWriter:
    """The one-call write paths of one Store (see the module docstring).

    ``save_one`` and ``delete_one`` are the unconditional upsert and delete
    of ``Store.save_resource`` / ``delete_resource``: closures over the
    store's constants, with no frame of their own beyond the call and no
    attribute chains (in the bench's regime, caches cold between writes,
    each object and attribute a write path touches costs; measured in
    docs/performance.md, round 11).  Either returns the C result, or None:
    take the general path; a negative result is a failure, which
    ``save_failed`` / ``delete_failed`` raise or send to the general path.
    They hold no reference to the Store (no cycle keeps a dropped one open).

    "This thread holds a transaction()" (or runs update_resource()'s
    callback) is not checked here: such a thread holds the store's write
    lock, an error-checking mutex, so the C call's begin reports EDEADLK at
    once, and the general path then raises its TransactionError.
    """

    __slots__ = ("_env", "_known", "_plans", "_signal", "_stripper", "delete_one", "save_one")

    def __init__(self, env: Any, stripper: Stripper, known: dict[str, Descriptor],
                 signal: Signal) -> None:
        self._env = env
        self._stripper = stripper
        self._known = known  # kind -> the descriptor whose schema is recorded
        self._signal = signal  # this path's watchers (Signal.notify after a commit)
        # message class -> (its descriptor, its ps_fw_plan or NULL): the
        # stripper's cache, read first on the hot path
        self._plans = plans = stripper.fw_plans
        fw_entry = stripper.fw_entry

        def save_one(kind: object, id: object, msg: object) -> int | None:
            try:
                entry = plans.get(type(msg)) or fw_entry(type(msg))
                # the kind's schema recorded for this class (the first save
                # records it: the general path); a non-str kind: the general
                # path's TypeError (str.encode, the only encode taken)
                if known.get(kind) is not entry[0]:  # type: ignore[call-overload, index]
                    return _GENERAL
                kb = str.encode(kind)  # type: ignore[arg-type]
                ib = str.encode(id)  # type: ignore[arg-type]
                data = msg.SerializeToString()  # type: ignore[attr-defined]
            except (TypeError, UnicodeEncodeError, EncodeError):
                return _GENERAL  # the general path raises the error
            rev: int = _save(env, kb, len(kb), ib, len(ib), data, len(data),
                             entry[1], 0, 0)  # type: ignore[index]
            if rev >= 0:
                signal.generation += 1  # Signal.notify, inlined
                if signal.waiting:
                    signal.wake()
            return rev

        def delete_one(kind: object, id: object) -> int | None:
            try:
                kb = str.encode(kind)  # type: ignore[arg-type]
                ib = str.encode(id)  # type: ignore[arg-type]
            except (TypeError, UnicodeEncodeError):
                return _GENERAL
            r: int = _del(env, kb, len(kb), ib, len(ib), 0, 0)
            if r > 0:
                signal.generation += 1
                if signal.waiting:
                    signal.wake()
            return r

        self.save_one = save_one
        self.delete_one = delete_one

    # -- one record ---------------------------------------------------------

    def save(
        self, store: Store, kind: object, id: object, msg: object, create: bool,
        if_revision: int | None,
    ) -> int | None:
        """A conditional save (``create`` or ``if_revision``): the revision
        committed, or None: take the general path."""
        entry = self._plans.get(type(msg)) or self._stripper.fw_entry(type(msg))
        if (
            entry is None
            or type(kind) is not str
            or type(id) is not str
            or self._known.get(kind) is not entry[0]
        ):
            return _GENERAL
        try:
            kb = kind.encode()
            ib = id.encode()
            data = msg.SerializeToString()  # type: ignore[attr-defined]
        except (UnicodeEncodeError, EncodeError):
            return _GENERAL  # the general path raises the error
        if if_revision is None:
            flags, expected = (_CREATE if create else 0), 0
        else:
            flags, expected = _IF_REV, if_revision
        rev: int = _save(self._env, kb, len(kb), ib, len(ib), data, len(data), entry[1],
                         flags, expected)
        if rev >= 0:
            self._signal.notify()  # this process's watchers wake at once
            return rev
        self.save_failed(store, rev, kind, id, if_revision)
        return _GENERAL

    def save_failed(self, store: Store, rev: int, kind: str, id: str,
                    if_revision: int | None) -> None:
        """Raise the error of a failed ``ps_fw_save`` (result ``rev`` < 0),
        or return: take the general path."""
        info = _failure(rev)
        if info is None:
            return
        rc = info.rc
        if info.stage == _STRIP or rc == _UNIQUE:
            return  # strips the slow way / names the unique value's holder
        if rc == _TOO_LARGE:
            raise ValueTooLargeError(
                f"serialized message is {info.len} bytes; a record holds at most {MAX_PAYLOAD}"
            )
        if rc == _KEYEXIST:
            raise AlreadyExistsError(f"resource already exists: {kind}/{id}")
        if rc == _CONFLICT and if_revision is not None:
            raise ConflictError(kind, id, if_revision, int(info.actual))
        raise _general_error(store, info, f"{kind}/{id}")

    def delete(self, store: Store, kind: object, id: object, if_revision: object) -> bool | None:
        """A conditional delete: whether kind/id existed, or None: take the
        general path."""
        if type(kind) is not str or type(id) is not str:
            return _GENERAL
        try:
            kb = kind.encode()
            ib = id.encode()
        except UnicodeEncodeError:
            return _GENERAL
        # after the key, as in the general path (no call for the usual None)
        expected = None if if_revision is None else check_revision(if_revision)
        r: int = _del(self._env, kb, len(kb), ib, len(ib), 0 if expected is None else _IF_REV,
                      expected or 0)
        if r > 0:
            self._signal.notify()
            return True
        if r == 0:
            return False
        self.delete_failed(store, r, kind, id, expected)
        return _GENERAL

    def delete_failed(self, store: Store, r: int, kind: str, id: str,
                      expected: int | None) -> None:
        """Raise the error of a failed ``ps_fw_del``, or return: take the
        general path."""
        info = _failure(r)
        if info is None:
            return
        if info.rc == _CONFLICT and expected is not None:
            raise ConflictError(kind, id, expected, int(info.actual))
        raise _general_error(store, info, f"{kind}/{id}")

    # -- a kind -------------------------------------------------------------

    def delete_kind(self, store: Store, kind: object) -> int | None:
        """The number of records deleted, or None: take the general path."""
        if type(kind) is not str:
            return _GENERAL
        try:
            kb = kind.encode()
        except UnicodeEncodeError:
            return _GENERAL
        n: int = _del_kind(self._env, kb, len(kb))
        if n < 0:
            info = _failure(n)
            if info is None:
                return _GENERAL
            raise _general_error(store, info, key_context(kb, None))
        if n:  # deleted something: a revision was committed
            self._signal.notify()
        return n

    def save_many(self, store: Store, kind: object, items: Iterable[Any]) -> tuple[int | None, Any]:
        """(the number saved, items) or (None, items): take the general path
        (see ``pack_pairs`` for what is taken here)."""
        known = self._known
        packed = pack_pairs(self._stripper, kind, items, lambda k, d: known.get(k) is d)
        if packed is None:
            return _GENERAL, items
        kb, ibs, parts, plan = packed
        n = len(ibs)
        try:
            joined = Joined(parts)
        except EncodeError:
            return _GENERAL, items  # the general path raises the error
        try:
            r: int = _save_many(self._env, kb, len(kb), joined.data, joined.size,
                                ffi.from_buffer("uint32_t[]", joined.lens), n, plan)
        finally:
            joined.close()
        if r >= 0:
            if r:  # saved something: a revision was committed
                self._signal.notify()
            return r, items
        info = _failure(r)
        if info is None:
            return _GENERAL, items
        rc = info.rc
        if info.stage == _STRIP or rc in (_UNIQUE, _TOO_LARGE):
            return _GENERAL, items  # strips the slow way / names the holder / the size
        raise _general_error(store, info, key_context(kb, ibs[min(info.index, n - 1)]))
