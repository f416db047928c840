"""Event streams on etcd: ``R e/<stream>\\0<seq:016x>`` and the marks
``R m/events/<stream>`` = ``"<highest seq>,<forgotten up to>"``.

An append reads the marks (a compare on them is recorded, so two writers
appending to one stream cannot both take the same seq: the second one's
commit fails and the Store call is tried again); an append with an explicit
seq that is present or forgotten is skipped, as on LMDB.  Functions take an
``EtcdTxn`` first, like their ``pystore._lmdb.events`` counterparts, and are
mapped to them in ``EtcdTxn.OPS``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lmdb._native import lib
from .._lmdb.events import _ctx
from ..errors import StoreError, error_for
from . import _common as c
from .layout import decode_record, encode_record

if TYPE_CHECKING:
    from .txn import EtcdTxn

__all__ = ["append", "delete", "last", "marks", "read", "streams"]


def marks(txn: EtcdTxn, stream: bytes) -> tuple[int, int]:
    """(highest seq appended, seq up to which events are forgotten)."""
    key = txn.lay.marks_key(stream)
    value = txn.pending_marks.get(key)
    if value is None:
        kv = txn.read_key(key)
        value = kv.value if kv is not None else b"0,0"
    try:
        hwm, forgot = (int(x) for x in value.split(b","))
    except ValueError:
        raise StoreError(f"etcd: marks of stream {stream!r} are not pystore's: {value!r}") from None
    return hwm, forgot


def _set_marks(txn: EtcdTxn, stream: bytes, hwm: int, forgot: int) -> None:
    key = txn.lay.marks_key(stream)
    value = b"%d,%d" % (hwm, forgot)
    txn.pending_marks[key] = value
    txn.writes[key] = value


def append(txn: EtcdTxn, stream: bytes, seq: int, payload: bytes, ns: int) -> tuple[int, bool]:
    """Append (seq 0: the next); (the seq, whether it was new)."""
    txn._writable()
    hwm, forgot = marks(txn, stream)
    if seq == 0:
        seq = hwm + 1
        if seq > lib.PS_MAX_SEQ:  # a stream forgotten up to the last seq there is
            raise error_for(lib.PS_ERR_SEQ, _ctx(stream))
    else:
        key = txn.lay.event_key(stream, seq)
        if seq <= forgot or key in txn.writes or txn.read_key(key) is not None:
            return seq, False
    txn.writes[txn.lay.event_key(stream, seq)] = encode_record(payload, ns)
    _set_marks(txn, stream, max(hwm, seq), forgot)
    return seq, True


def read(txn: EtcdTxn, stream: bytes, after: int, limit: int) -> list[tuple[int, int, bytes]]:
    """(seq, recorded_ns, payload) of the events after ``after``, in seq order."""
    lay = txn.lay
    prefix = lay.stream_prefix(stream)
    start, end = lay.event_key(stream, after + 1), c.prefix_end(prefix)
    out: list[tuple[int, int, bytes]] = []
    while True:
        want = 1000 if not limit else min(1000, limit - len(out))
        resp = txn.range(start, end, limit=want)
        for kv in resp.kvs:
            payload, ns = decode_record(kv.value, kv.key)
            out.append((int(kv.key[len(prefix) :], 16), ns, payload))
        if not resp.more or not resp.kvs or (limit and len(out) >= limit):
            return out
        start = resp.kvs[-1].key + b"\0"


def last(txn: EtcdTxn, stream: bytes) -> int:
    return marks(txn, stream)[0]


def delete(txn: EtcdTxn, stream: bytes, upto: int | None) -> int:
    """Delete the events (all, or seq <= upto); later appends at or below are skipped."""
    txn._writable()
    lay = txn.lay
    hwm, forgot = marks(txn, stream)
    prefix = lay.stream_prefix(stream)
    top = hwm if upto is None else upto
    end = lay.event_key(stream, top + 1) if top < 2**63 - 1 else c.prefix_end(prefix)
    resp = txn.range(prefix, end, keys_only=True)
    for kv in resp.kvs:
        txn.writes[kv.key] = None
    # a forgotten seq is never appended again, one not appended yet included
    # (the high-water mark moves up to it, as LMDB's)
    _set_marks(txn, stream, max(hwm, top), max(forgot, top))
    return len(resp.kvs)


def streams(txn: EtcdTxn, all_: bool = False) -> list[str]:
    """Streams holding an event (``all_``: or marks)."""
    lay = txn.lay
    names: set[bytes] = set()
    start, end = lay.events, c.prefix_end(lay.events)
    while True:
        resp = txn.range(start, end, limit=1, keys_only=True)
        if not resp.kvs:
            break
        stream = resp.kvs[0].key[len(lay.events) :].split(b"\0", 1)[0]
        names.add(stream)
        start = lay.events + stream + b"\x01"  # past every "<stream>\0..."
    if all_:
        mp = lay.meta + b"events/"
        for kv in txn.range(mp, c.prefix_end(mp), keys_only=True).kvs:
            names.add(kv.key[len(mp) :])
    return sorted(n.decode("utf-8", "replace") for n in names)
