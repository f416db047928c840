"""One C call per write inside a ``Transaction`` (``ps_fw_txn_*`` in ps_fastwrite.c).

``Transaction.save_resource`` / ``create_resource`` / ``delete_resource`` /
``save_resources`` hand the core the slot of the transaction's live
``ps_txn`` (``CTxn.pp``) with the encoded key and the serialized message;
the core checks that the transaction is live and this thread's, strips the
tenancy fields with the type's compiled plan, checks the key, writes with
every hook (revision, change log, indexes, history) and stamps the time.
The txn's log (what a map-growth replay writes again) copies each payload
into chunks the Store's handle keeps between write transactions (up to
32 MiB, ``PS_LOG_KEEP``), so the serialized bytes are freed as soon as the
call returns and a big transaction copies into memory already mapped
(keeping 20,000 ~1.1 KB bytes objects alive instead faulted in ~5,500
fresh pages per transaction).  The result is the return value.

Anything unusual is left to the general path (``ResourceOps``), which then
raises or does exactly what it always did: a transaction not entered,
finished or of another thread, a message type whose schema is neither
recorded in the store nor in this transaction (the general path records
it), arguments of unexpected types, a message the C strip declines, a
payload too large.  Failures of the write itself are raised here exactly
as ``CTxn.put`` / ``CTxn.delete`` / ``put_many`` raise them (the
transaction is then in the same state as after those).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import EncodeError

from ..errors import AlreadyExistsError, ConflictError, StoreError, error_for
from ._native import ffi, lib
from .batchbuf import Joined
from .fastwrite import key_context, last_info, pack_pairs
from .hygiene import Stripper
from .violation import unique_error

__all__ = ["delete_failed", "save_failed", "save_many_in", "txn_del", "txn_save"]

# Bound once: attribute lookups on the cffi lib cost as much as a small call.
txn_save = lib.ps_fw_txn_save
txn_del = lib.ps_fw_txn_del
_save_many = lib.ps_fw_txn_save_many
_txn_last = lib.ps_fw_txn_last
_WRITE: int = lib.PS_FW_STAGE_WRITE
_UNIQUE: int = lib.PS_ERR_UNIQUE
_KEYEXIST: int = lib.PS_LMDB_KEYEXIST
_CONFLICT: int = lib.PS_ERR_CONFLICT


def _details(result: int, slot: Any) -> Any | None:
    """The details of the failed ps_fw_txn_* call that returned ``result``:
    the thread's (``last_info``) or, when a failing call of a signal
    handler or finalizer replaced those, the copy kept in the transaction
    (the failed write may have spoiled it: writing again would then raise
    another error); None when a failed write in the same transaction
    replaced those too."""
    info = last_info(result)
    if info is None:
        info = ffi.new("ps_fw_info *")
        _txn_last(slot, info)
        if info.ticket != -result:
            return None
    return info


def save_failed(result: int, slot: Any, kb: bytes, ib: bytes, if_revision: int | None) -> None:
    """After ps_fw_txn_save returned ``result`` < 0: raise what ``CTxn.put``
    raises for a failed write; return (nothing done) to take the general
    path (see ``_details``)."""
    info = _details(result, slot)
    if info is None or info.stage != _WRITE:
        return  # not live / other thread / strip declined / too large / details gone
    rc = info.rc
    if rc == _KEYEXIST:
        raise AlreadyExistsError(f"resource already exists: {key_context(kb, ib)}")
    if rc == _UNIQUE:
        raise unique_error(slot[0], kb, key_context(kb, ib))
    raise _write_error(rc, kb, ib, if_revision, info)


def delete_failed(result: int, slot: Any, kb: bytes, ib: bytes,
                  if_revision: int | None) -> None:
    """After ps_fw_txn_del returned ``result`` < 0: as ``save_failed`` for
    ``CTxn.delete``."""
    info = _details(result, slot)
    if info is None or info.stage != _WRITE:
        return
    raise _write_error(info.rc, kb, ib, if_revision, info)


def _write_error(rc: int, kb: bytes, ib: bytes, if_revision: int | None,
                 info: Any) -> StoreError:
    if rc == _CONFLICT and if_revision is not None:
        return ConflictError(kb.decode("utf-8", "replace"), ib.decode("utf-8", "replace"),
                             if_revision, int(info.actual))
    return error_for(rc, key_context(kb, ib))


def save_many_in(
    slot: Any, ptr: Any, stripper: Stripper, known: dict[str, Any],
    pending: dict[str, Any] | None, kind: object, items: object,
) -> int | None:
    """``save_resources`` in the transaction of ``slot`` (see ``pack_pairs``
    for what is taken; a kind's schema may be recorded in the store or
    pending in this transaction): the number saved, or None: take the
    general path (nothing was done)."""
    packed = pack_pairs(
        stripper, kind, items,
        lambda k, d: known.get(k) is d or (pending is not None and pending.get(k) is d),
    )
    if packed is None:
        return None
    kb, ibs, parts, plan = packed
    n = len(ibs)
    try:
        joined = Joined(parts)
    except EncodeError:
        return None  # the general path raises the error
    try:  # (the txn's log copies what it keeps: the buffer is free after the call)
        r: int = _save_many(slot, kb, len(kb), joined.data, joined.size,
                            ffi.from_buffer("uint32_t[]", joined.lens), n, plan)
    finally:
        joined.close()
    if r >= 0:
        return r
    info = _details(r, slot)
    if info is None or info.stage != _WRITE:
        return None  # strips another way / names the size / details gone
    where = key_context(kb, ibs[min(info.index, n - 1)])
    if info.rc == _UNIQUE:
        raise unique_error(ptr, kb, where)
    raise error_for(info.rc, where)
