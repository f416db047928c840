"""Secondary indexes on etcd, kept in the same Txn as every write.

Entries are computed by the C core's own extraction from the wire bytes
(``ps_index_extract``, csrc/ps_extract.c) and queries are encoded by
``ps_index_encode`` -- the same functions the LMDB core uses; Python never
parses a record to index it.

Keys, under the store root ``R`` (``P`` = ``R i/<Kind>/<name>\\0``):

* ``P e <u16 BE len><encoded value><id>`` = b"": one entry (ids sort within
  a value, so a find is one Range in id order);
* ``P u <u16 BE len><encoded value>`` = id: the holder of a value of a
  unique index; a write that adds a value compares its ``create_revision``
  with 0, so two writers can never both take it;
* ``R m/index/<Kind>/<name>`` = the definition blob (as LMDB's meta), and
  ``R m/indexes/<Kind>``, rewritten whenever the kind's set of indexes
  changes: every write Txn of the kind compares its ``mod_revision`` with
  the one the Store has cached (see history.py's ``prepare``).

* ``R m/index.building/<Kind>/<name>`` = b"": present while the index is
  being built (backfill.py): writers maintain its entries, readers treat
  it as absent (``NotFoundError``).

``create_index`` and ``rebuild_index`` work on a kind of any size: the
definition is stored first (with the building marker), then the entries are
written in chunks of Txns that each stay within etcd's ``--max-txn-ops``,
guarded by compares on the records they index (backfill.py tells why this
stays exact against concurrent writers); a unique collision removes the
definition, the marker and every entry in one Txn before it is raised.
Each write of an indexed resource adds its changed entries to its own Txn;
a unique key is deleted only by its holder (a nested Txn comparing its
value), so a collision among old records never frees another's key.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .._lmdb import index as lix
from .._lmdb._native import ffi, lib
from .._lmdb.core import check_key
from ..errors import NotFoundError, StoreError, UniqueViolationError, error_for
from . import _common as c
from . import etcd_api_pb2 as pb
from .backfill import Build, violation_of
from .layout import decode_record

if TYPE_CHECKING:
    from .txn import EtcdTxn

__all__ = ["count", "create", "drop", "find", "index_exists", "list_defs", "rebuild"]

_LEN = struct.Struct(">H")
_REC = struct.Struct("<IIqQ")
_U32 = struct.Struct("<I")


def prefix(txn: EtcdTxn, kind: bytes, name: bytes) -> bytes:
    return txn.lay.root + b"i/" + kind + b"/" + name + b"\0"


def kind_prefix(txn: EtcdTxn, kind: bytes) -> bytes:
    return txn.lay.root + b"i/" + kind + b"/"


def entry_key(p: bytes, enc: bytes, id: bytes) -> bytes:
    return p + b"e" + _LEN.pack(len(enc)) + enc + id


def unique_key(p: bytes, enc: bytes) -> bytes:
    return p + b"u" + _LEN.pack(len(enc)) + enc


def def_key(txn: EtcdTxn, kind: bytes, name: bytes) -> bytes:
    return b"index/" + kind + b"/" + name


def set_key(kind: bytes) -> bytes:
    return b"indexes/" + kind


def building_key(kind: bytes, name: bytes) -> bytes:
    return b"index.building/" + kind + b"/" + name


def _where(d: lix.IndexDef) -> str:
    return f"index {d.kind}.{d.name}"


# -- upkeep -------------------------------------------------------------------


def defs_of(txn: EtcdTxn, kind: bytes) -> list[lix.IndexDef]:
    """The index definitions of ``kind``, at the transaction's revision."""
    mp = txn.lay.meta_key(b"index/" + kind + b"/")
    return [lix.parse_def(kv.value) for kv in txn.range(mp, c.prefix_end(mp)).kvs]


def upkeep(
    txn: EtcdTxn, defs: list[lix.IndexDef], kind: bytes, id: bytes,
    old: bytes | None, new: bytes | None,
) -> tuple[list[pb.Compare], list[pb.RequestOp]]:
    """Compares and ops that move ``kind/id``'s entries from payload ``old``
    to ``new`` (None: absent)."""
    cmps: list[pb.Compare] = []
    ops: list[pb.RequestOp] = []
    for d in defs:
        p = prefix(txn, kind, d.name.encode("utf-8"))
        before = set(lix.extract(d.plan, old)) if old is not None else set()
        after = set(lix.extract(d.plan, new)) if new is not None else set()
        for enc in sorted(before - after):
            ops.append(c.op_delete(entry_key(p, enc, id)))
            if d.unique:  # its key: unique_upkeep, once every write is known
                uk = unique_key(p, enc)
                txn.unique_keys[uk] = (d, enc)
                txn.unique_gives.setdefault(uk, []).append(id)
        for enc in sorted(after - before):
            ops.append(c.op_put(entry_key(p, enc, id), b""))
            if d.unique:
                uk = unique_key(p, enc)
                txn.unique_keys[uk] = (d, enc)
                txn.unique_takes.setdefault(uk, []).append(id)
    return cmps, ops


def unique_upkeep(txn: EtcdTxn) -> tuple[list[tuple[bytes, int]], list[pb.RequestOp]]:
    """The ops on the unique keys that ``upkeep`` noted for every write of
    ``txn``, and compares of keys read here (``(key, mod_revision)``: a
    change is a stale read, prepared again).

    A value only let go: a delete of its key by its holder only (a nested
    Txn comparing the key's value, see backfill.py).  A value only taken:
    ``CREATE == 0`` and a put (a failed compare reads the holder back).  A
    value taken by several records of one commit, or let go by one and
    taken by another (a handover), is decided from its key's holder read
    now, because etcd refuses a Txn writing one key twice: held by a record
    outside these, or taken twice, it is ``UniqueViolationError`` (naming
    that holder, else the first taker, as LMDB does); else one put of the
    new holder, guarded by the key's ``mod_revision``.  The commit's end
    state is what counts: within one Txn the order of the writes does not."""
    cmps: list[tuple[bytes, int]] = []
    ops: list[pb.RequestOp] = []
    for uk, (d, enc) in txn.unique_keys.items():
        takers = txn.unique_takes.get(uk, [])
        gives = txn.unique_gives.get(uk, [])
        if not takers:
            ops += [pb.RequestOp(request_txn=pb.TxnRequest(
                compare=[c.cmp_value(uk, "==", id)], success=[c.op_delete(uk)]))
                for id in gives]
        elif len(takers) == 1 and not gives:
            txn.unique_cmps.append(c.cmp_create(uk, "==", 0))
            ops.append(c.op_put(uk, takers[0]))
        else:
            kv = txn.client.get(uk)
            if kv is not None and kv.value not in gives and kv.value not in takers:
                raise violation_of(d, enc, kv.value)
            if len(takers) > 1:
                raise violation_of(d, enc, takers[0])
            cmps.append((uk, kv.mod_revision if kv is not None else 0))
            ops.append(c.op_put(uk, takers[0]))
    return cmps, ops


def violation(txn: EtcdTxn, key: bytes, holder: bytes) -> UniqueViolationError:
    d, enc = txn.unique_keys[key]
    return violation_of(d, enc, holder)


# -- the index calls of QueryOps / IndexAdminOps (``EtcdTxn.OPS``) ------------


def _check_name(kind: bytes, name: bytes, where: str) -> None:
    """InvalidKeyError for a definition key LMDB could not hold (ps_idx_meta_key)."""
    if len(b"index/") + len(kind) + 1 + len(name) > lib.PS_MAX_KEY:
        raise error_for(lib.PS_ERR_KEY_TOO_LONG, where)


def _def(txn: EtcdTxn, kind: bytes, name: bytes, ready: bool = True) -> lix.IndexDef:
    """The definition; NotFoundError when absent, or (``ready``) still being built."""
    where = f"{kind.decode('utf-8', 'replace')}.{name.decode('utf-8', 'replace')}"
    _check_name(kind, name, f"index {where}")
    blob = txn.meta_get(def_key(txn, kind, name))
    if blob is None:
        raise NotFoundError(f"no index {where}")
    if ready and txn.meta_get(building_key(kind, name)) is not None:
        raise NotFoundError(
            f"no index {where} yet: it is being built (a create_index is running, or "
            "was interrupted: create_index again finishes it, drop_index removes it)")
    return lix.parse_def(blob)


def index_exists(txn: EtcdTxn, kind: bytes, name: bytes) -> None:
    _def(txn, kind, name)


def _encode(d: lix.IndexDef, value: object, q: lix.Query) -> bytes | None:
    qtype, s, num, mkey = q
    out, n, match = ffi.new("char[]", 1024), ffi.new("size_t *"), ffi.new("int *")
    mlen = 0 if mkey == ffi.NULL else len(mkey)
    rc = lib.ps_index_encode(d.mode, qtype, s, len(s), num, mkey, mlen, out, n, match)
    if rc:
        raise lix.query_error(rc, d.kind.encode(), d.name.encode(), value)
    return ffi.unpack(out, n[0]) if match[0] else None


def _ids(txn: EtcdTxn, d: lix.IndexDef, enc: bytes, after: bytes | None,
         limit: int) -> list[bytes]:
    p = entry_key(prefix(txn, d.kind.encode(), d.name.encode()), enc, b"")
    start = p + after + b"\0" if after else p
    out: list[bytes] = []
    while True:
        want = 1000 if not limit else min(1000, limit - len(out))
        resp = txn.range(start, c.prefix_end(p), limit=want, keys_only=True)
        out.extend(kv.key[len(p) :] for kv in resp.kvs)
        if not resp.more or not resp.kvs or (limit and len(out) >= limit):
            return out
        start = resp.kvs[-1].key + b"\0"


def _ids_seen(txn: EtcdTxn, d: lix.IndexDef, kind: bytes, enc: bytes, after: bytes | None,
              limit: int) -> list[bytes]:
    """``_ids`` as this transaction sees them: its own saves, deletes, prefix
    and kind deletes merged (their entries are written only at its commit)."""
    if kind in txn.dropped:
        return []
    if not txn.overlaid(kind):
        return _ids(txn, d, enc, after, limit)
    pre = txn.lay.kind_prefix(kind)
    ids = {i for i in _ids(txn, d, enc, None, 0)
           if not txn._gone(kind, i) and pre + i not in txn.writes}
    for key, value in txn.writes.items():
        if key.startswith(pre) and value is not None and \
                enc in lix.extract(d.plan, decode_record(value, key)[0]):
            ids.add(key[len(pre) :])
    out = sorted(i for i in ids if after is None or i > after)
    return out[:limit] if limit else out


def find(txn: EtcdTxn, kind: bytes, name: bytes, value: object, q: lix.Query,
         after: bytes | None, limit: int, mode: int) -> tuple[bytes, int]:
    """As ``ps_find``: ids (mode 0), records (1) or a wire list (2), in id order."""
    d = _def(txn, kind, name)
    enc = _encode(d, value, q)
    if enc is None:
        return b"", 0
    parts: list[bytes] = []
    n = 0
    ids = _ids_seen(txn, d, kind, enc, after, limit)
    if mode == lib.PS_FIND_IDS:
        return b"".join(_U32.pack(len(i)) + i for i in ids), len(ids)
    for start in range(0, len(ids), 100):  # records at the same revision, 100 per Txn
        chunk = ids[start : start + 100]
        resp = txn.client.txn(
            (), [c.op_range(txn.lay.key(kind, i), revision=txn.pin) for i in chunk], retry=True
        )
        for i, r in zip(chunk, resp.responses, strict=True):
            own = txn.writes.get(txn.lay.key(kind, i))  # written here: revision 0
            kvs = r.response_range.kvs
            if own is not None:
                payload, ns = decode_record(own, txn.lay.key(kind, i))
                mod = 0
            elif kvs:
                payload, ns = decode_record(kvs[0].value, kvs[0].key)
                mod = kvs[0].mod_revision
            else:
                continue
            if mode == lib.PS_FIND_WIRE:
                parts.append(b"\x0a" + _varint(len(payload)) + payload)
            else:
                parts.append(_REC.pack(len(i), len(payload), ns, mod) + i + payload)
            n += 1
    return b"".join(parts), n


def _varint(v: int) -> bytes:
    out = bytearray()
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def count(txn: EtcdTxn, kind: bytes, name: bytes, value: object, q: lix.Query) -> int:
    d = _def(txn, kind, name)
    enc = _encode(d, value, q)
    if enc is None:
        return 0
    if kind in txn.dropped or txn.overlaid(kind):
        return len(_ids_seen(txn, d, kind, enc, None, 0))
    p = entry_key(prefix(txn, kind, name), enc, b"")
    return int(txn.range(p, c.prefix_end(p), count_only=True).count)


def list_defs(txn: EtcdTxn, kind: bytes | None) -> list[tuple[lix.IndexDef, int]]:
    """The ready indexes (of ``kind``) with their entry counts."""
    tail = kind + b"/" if kind is not None else b""
    mp = txn.lay.meta_key(b"index/" + tail)
    bp = txn.lay.meta_key(b"index.building/" + tail)
    busy = {kv.key[len(bp) - len(tail) :] for kv in txn.range(bp, c.prefix_end(bp),
                                                             keys_only=True).kvs}
    out = []
    for kv in txn.range(mp, c.prefix_end(mp)).kvs:
        d = lix.parse_def(kv.value)
        if kv.key[len(mp) - len(tail) :] in busy:
            continue
        p = prefix(txn, d.kind.encode(), d.name.encode()) + b"e"
        out.append((d, int(txn.range(p, c.prefix_end(p), count_only=True).count)))
    return out


def _touch(txn: EtcdTxn, kind: bytes) -> None:
    txn.meta_put(set_key(kind), b"%d" % txn.revision())


def _build(txn: EtcdTxn, d: lix.IndexDef, kind: bytes, def_mod: int, create: bool) -> int:
    """Fill (and, for a rebuild, sweep) ``d``'s entries in chunks (backfill.py)."""
    name = d.name.encode("utf-8")
    p = prefix(txn, kind, name)
    lay = txn.lay
    dk = lay.meta_key(def_key(txn, kind, name))
    cleanup = [
        c.op_delete(dk), c.op_delete(lay.meta_key(building_key(kind, name))),
        c.op_delete(p, c.prefix_end(p)), c.op_put(lay.meta_key(set_key(kind)), b"0"),
    ]
    b = Build(txn.client, lay, d, kind, p, dk, def_mod, cleanup if create else None)
    n = b.fill()
    if create:  # ready: readers may use it from now on
        b.send({}, [c.op_delete(lay.meta_key(building_key(kind, name)))])
    else:
        b.sweep()
    return n


def create(txn: EtcdTxn, blob: bytes, kind: bytes) -> tuple[int, bool]:
    d = lix.parse_def(blob)
    check_key(kind, b"_")
    name = d.name.encode("utf-8")
    _check_name(kind, name, f"create index {d.kind}.{d.name}")
    lay = txn.lay
    dk = lay.meta_key(def_key(txn, kind, name))
    resp = txn.client.range(dk)
    if resp.kvs:
        o = lix.parse_def(resp.kvs[0].value)
        if (o.field, o.type, o.unique, o.plan) != (d.field, d.type, d.unique, d.plan):
            raise StoreError(
                f"index {d.kind}.{d.name} exists with another definition "
                f"(field, msg_type or unique differ): drop it first"
            )
        if txn.client.range(lay.meta_key(building_key(kind, name))).kvs:  # finish it
            return _build(txn, o, kind, resp.kvs[0].mod_revision, True), True
        return count_entries(txn, kind, name), False
    p = prefix(txn, kind, name)
    published = txn.client.txn(
        [c.cmp_create(dk, "==", 0)],
        [c.op_put(dk, blob), c.op_put(lay.meta_key(building_key(kind, name)), b""),
         c.op_delete(p, c.prefix_end(p)),  # nothing of an index without a definition
         c.op_put(lay.meta_key(set_key(kind)), b"0")],
        retry=True,
    )
    if not published.succeeded:  # another process defined it meanwhile: look again
        from .txn import ReadConflict  # txn.py imports this module

        raise ReadConflict(d.kind, d.name, 0, 0)
    return _build(txn, d, kind, int(published.header.revision), True), True


def count_entries(txn: EtcdTxn, kind: bytes, name: bytes) -> int:
    p = prefix(txn, kind, name) + b"e"
    return int(txn.range(p, c.prefix_end(p), count_only=True).count)


def drop(txn: EtcdTxn, kind: bytes, name: bytes) -> None:
    _def(txn, kind, name, ready=False)
    p = prefix(txn, kind, name)
    txn.range_deletes.append((p, c.prefix_end(p)))
    txn.meta_deletes.add(def_key(txn, kind, name))
    txn.meta_deletes.add(building_key(kind, name))
    _touch(txn, kind)


def rebuild(txn: EtcdTxn, kind: bytes, name: bytes) -> int:
    d = _def(txn, kind, name)
    dk = txn.lay.meta_key(def_key(txn, kind, name))
    kvs = txn.client.range(dk, keys_only=True).kvs
    if not kvs:
        raise NotFoundError(f"no index {d.kind}.{d.name}")
    return _build(txn, d, kind, kvs[0].mod_revision, False)
