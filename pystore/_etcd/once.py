"""Write Txns that are safe to send again: each applies at most once.

etcd may fail a write with ``UNAVAILABLE`` ("request timed out", a leader
change) although its proposal still commits, now or a little later.  Sent
again as it is, such a write could apply twice (two revisions, two changes,
a delete that then finds nothing and answers "did not exist").  So a store
that writes sends every write Txn wrapped in a guard:

    If   value(S) == T                      -- an attempt of this call applied
    Then range(S)                           -- its revision: S's mod_revision
    Else Txn(the write's compares,
             the write's success ops + put(S, T),
             the write's failure ops)

``S`` is a *slot* key under ``R w/<writer>/`` that only this call uses while
it runs, ``T`` 16 random bytes of the call.  Every attempt (and an attempt
the server still commits late) carries the same guard, so whichever lands
first applies and every other finds ``S == T`` and changes nothing.  The
inner Txn is the write exactly as it would have been sent, so its compares
(a conditional write, an append's marks) are decided by the attempt that
applies.

A slot is given back for the next write only when its call sent one attempt
and had its answer; after a retry or a failure it is retired (an attempt may
still be in flight).  ``close()`` stops handing out slots and deletes the
free ones only: a retired slot must keep its token, or an attempt that
commits after the close would find it gone and apply again; a slot still in
use by a call of another thread stays too.  Those, and the slots of a
process that dies, are left (a few ~60-byte keys); they are not data.

When the guard finds an earlier attempt applied, the write's answer is
rebuilt (``replay``): its revision is the slot's ``mod_revision``; a delete's
count, when the caller reads it (``counts``), is that of the keys its range
held at the revision before (etcd's history), an error if that revision was
compacted meanwhile (else 0: a write that only needs its revision, a save
whose Txn also drops index entries or kept versions, never fails on the
history it does not need); a range of the success branch is read at the
write's revision; a nested Txn's answer is not rebuilt (empty: none of the
store's callers reads it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

from ..errors import StoreClosedError, StoreUnavailableError
from . import _common as c
from . import etcd_api_pb2 as pb

__all__ = ["WriteSlots", "guard", "replay", "unwrap"]


class WriteSlots:
    """The slot keys of one writer (one open store): ``<prefix><n>``."""

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix
        self._free: list[bytes] = []
        self._next = 0
        self._closed = False
        self._lock = threading.Lock()

    @classmethod
    def under(cls, root: bytes) -> WriteSlots:
        """A new writer's slots under a store root (``R w/<16 hex>/``)."""
        return cls(root + b"w/" + os.urandom(8).hex().encode() + b"/")

    def take(self) -> bytes:
        """A slot for one call; StoreClosedError once ``close`` ran."""
        with self._lock:
            if self._closed:
                raise StoreClosedError("etcd client is closed")
            if self._free:
                return self._free.pop()
            self._next += 1
            return self.prefix + b"%d" % (self._next - 1)

    def give(self, slot: bytes, reuse: bool) -> None:
        """Return ``slot``; ``reuse`` False retires it (see the module doc)."""
        if reuse:
            with self._lock:
                if not self._closed:  # else its key stays, as a retired one
                    self._free.append(slot)

    def close(self) -> list[bytes] | None:
        """Hand out no more slots; the keys that may be deleted now: the
        free slots (None: every slot made is free, delete the prefix)."""
        with self._lock:
            if self._closed:
                return []
            self._closed = True
            free, self._free = self._free, []
            return None if len(free) == self._next and free else free


def guard(
    compare: Sequence[pb.Compare],
    success: Sequence[pb.RequestOp],
    failure: Sequence[pb.RequestOp],
    slot: bytes,
    token: bytes,
) -> tuple[pb.TxnRequest, pb.TxnRequest]:
    """(the guarded request to send, the inner Txn it runs unless an
    attempt already applied), built in place: each op is copied once."""
    outer = pb.TxnRequest()
    cmp = outer.compare.add()
    cmp.key = slot
    cmp.target = pb.Compare.VALUE
    cmp.result = pb.Compare.EQUAL
    cmp.value = token
    look = outer.success.add().request_range
    look.key = slot
    look.keys_only = True
    inner = outer.failure.add().request_txn
    inner.compare.extend(compare)
    inner.success.extend(success)
    put = inner.success.add().request_put
    put.key = slot
    put.value = token
    inner.failure.extend(failure)
    return outer, inner


def unwrap(resp: pb.TxnResponse) -> pb.TxnResponse:
    """The inner Txn's answer of a guarded request that ran it, with the
    outer header (its revision is the write's); the slot's put response is
    dropped when the write's success branch ran."""
    inner = resp.responses[0].response_txn
    inner.header.CopyFrom(resp.header)
    if inner.succeeded:
        del inner.responses[-1]
    return inner


RangeFn = Callable[..., pb.RangeResponse]


def replay(
    success: Sequence[pb.RequestOp], resp: pb.TxnResponse, range_fn: RangeFn,
    counts: bool = False,
) -> pb.TxnResponse:
    """The answer of a write (its success ops ``success``) that an earlier
    attempt applied, rebuilt from the guard's ``resp`` and etcd's history
    (``range_fn``: the client's ``range``); the deletes' counts only with
    ``counts`` (0 otherwise)."""
    kvs = resp.responses[0].response_range.kvs
    rev = kvs[0].mod_revision
    out = pb.TxnResponse(succeeded=True)
    out.header.CopyFrom(resp.header)
    out.header.revision = rev
    gone: set[bytes] = set()  # keys an earlier delete of the Txn took
    for op in success:
        which = op.WhichOneof("request")
        if which == "request_put":
            out.responses.add().response_put.header.CopyFrom(out.header)
        elif which == "request_delete_range" and not counts:
            out.responses.add().response_delete_range.header.CopyFrom(out.header)
        elif which == "request_delete_range":
            d = op.request_delete_range
            try:
                before = range_fn(d.key, d.range_end, revision=rev - 1, keys_only=True)
            except c.EtcdCompactedError:
                raise StoreUnavailableError(
                    f"etcd: this write was applied at revision {rev} by an attempt whose "
                    "answer was lost, and the revision before it is compacted: how many "
                    "keys its delete removed is unknown"
                ) from None
            keys = {kv.key for kv in before.kvs} - gone
            gone |= keys
            r = out.responses.add().response_delete_range
            r.header.CopyFrom(out.header)
            r.deleted = len(keys)
        elif which == "request_range":
            q = op.request_range
            got = range_fn(q.key, q.range_end, revision=rev, limit=q.limit,
                           keys_only=q.keys_only, count_only=q.count_only)
            out.responses.add().response_range.CopyFrom(got)
        else:  # a nested Txn: not rebuilt (see the module doc)
            out.responses.add().response_txn.header.CopyFrom(out.header)
    return out
