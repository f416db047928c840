"""Version history on etcd: kept versions under ``R h/<Kind>/<ID>/<rev:016x>``.

A kind's keep count is the meta value ``history.keep/<Kind>`` (decimal).
Every write Txn that touches a kind compares the keep key's
``mod_revision`` with the one this Store has cached, so a ``set_history``
of another process is never missed: the compare fails, the cache is read
again and the write is prepared again.  For a kind with a keep count, the
commit first reads (one read-only Txn) the live version of each written key
and its kept versions, then puts the superseded version and drops the
oldest beyond the keep count in the same Txn as the write, comparing the
live version's ``mod_revision`` so nothing is lost in between.
``delete_resources_by_kind`` drops the kind's kept versions too (as LMDB).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from .._lmdb import index as lix
from .._lmdb.core import check_key
from ..errors import NotFoundError
from ..records import Resource, ns_to_datetime
from . import _common as c
from . import etcd_api_pb2 as pb
from . import index as ix
from .layout import decode_record, encode_record

if TYPE_CHECKING:
    from .txn import EtcdTxn

__all__ = ["KindConfig", "config_of", "get_at", "history", "history_delete", "history_ids",
           "history_keep", "history_load", "history_set", "prepare", "reserve"]

_KEEP_PREFIX = b"history.keep/"


class KindConfig(NamedTuple):
    """What a write of a kind must know: its keep count and index definitions,
    with the mod_revisions of the keys they live under (compared by the write)."""

    keep: int
    keep_mod: int
    defs: list[Any]
    defs_mod: int


def config_of(txn: EtcdTxn, kind: bytes, fresh: bool) -> KindConfig:
    """``kind``'s KindConfig from the Store's cache (read in one Txn when
    missing or ``fresh``)."""
    cache = txn.store._kind_config
    hit = None if fresh else cache.get(kind)
    if hit is None:
        lay = txn.lay
        dp = lay.meta_key(b"index/" + kind + b"/")
        resp = txn.client.txn((), [
            c.op_range(lay.keep_key(kind)),
            c.op_range(lay.meta_key(ix.set_key(kind))),
            c.op_range(dp, c.prefix_end(dp)),
        ], retry=True)
        keep_kv = resp.responses[0].response_range.kvs
        set_kv = resp.responses[1].response_range.kvs
        defs = [lix.parse_def(kv.value) for kv in resp.responses[2].response_range.kvs]
        hit = KindConfig(
            int(keep_kv[0].value) if keep_kv and keep_kv[0].value else 0,
            keep_kv[0].mod_revision if keep_kv else 0,
            defs,
            set_kv[0].mod_revision if set_kv else 0,
        )
        cache[kind] = hit
    return hit


def _versions(kvs: list[pb.KeyValue], prefix: bytes) -> list[tuple[int, pb.KeyValue]]:
    """(revision, kv) of the kept versions among ``kvs`` (exactly one id), oldest first."""
    out = []
    for kv in kvs:
        tail = kv.key[len(prefix) :]
        if len(tail) == 16 and b"/" not in tail:
            try:
                out.append((int(tail, 16), kv))
            except ValueError:
                continue
    out.sort(key=lambda p: p[0])
    return out


def prepare(
    txn: EtcdTxn, fresh: bool
) -> tuple[list[tuple[bytes, int]], list[pb.RequestOp]]:
    """The compares and ops that keep history and index entries for ``txn``'s
    writes (``fresh``: read the kinds' config again, the cached one proved
    stale).  Unique-index compares go to ``txn.unique_cmps``."""
    lay = txn.lay
    txn.unique_cmps = []
    txn.unique_keys = {}
    txn.unique_takes = {}
    txn.unique_gives = {}
    txn.range_cmps = []
    kinds: dict[bytes, list[tuple[bytes, bytes]]] = {}
    for key in txn.writes:
        split = lay.split(key)
        if split is not None:
            kinds.setdefault(split[0], []).append((key, split[1]))
    cmps: list[tuple[bytes, int]] = []
    ops: list[pb.RequestOp] = []
    for kind in txn.dropped:
        for pre in (lay.history_prefix(kind), ix.kind_prefix(txn, kind)):
            ops.append(c.op_delete(pre, c.prefix_end(pre)))
    for kind, pre in txn.prefixes:  # the kept versions of the ids under it (as LMDB)
        hp = lay.history_prefix(kind) + pre
        ops.append(c.op_delete(hp, c.prefix_end(hp)))
    # kinds given a keep count by this transaction: the count it set
    keeps = {key[len(_KEEP_PREFIX) :]: int(value) for key, value in txn.meta.items()
             if key.startswith(_KEEP_PREFIX)}
    for key in txn.meta:
        for pre in (_KEEP_PREFIX, b"indexes/"):
            if key.startswith(pre):
                txn.store._kind_config.pop(key[len(pre) :], None)
    reads: list[tuple[bytes, bytes, bytes, KindConfig]] = []
    for kind, keys in kinds.items():
        cfg = config_of(txn, kind, fresh)
        cmps.append((lay.keep_key(kind), cfg.keep_mod))
        cmps.append((lay.meta_key(ix.set_key(kind)), cfg.defs_mod))
        if kind in keeps:  # its writes keep versions by the count set here (as LMDB)
            cfg = cfg._replace(keep=keeps[kind])
        if cfg.keep or cfg.defs or kind in keeps:
            reads.extend((key, kind, id, cfg) for key, id in keys)
    written = {(kind, id) for kind, keys in kinds.items() for _, id in keys}
    for kind, keep in keeps.items():
        if kind not in txn.dropped:
            ops.extend(_trim(txn, kind, keep, written))
    for (kind, pre), _ in txn.prefixes.items():  # entries of the ids a prefix delete drops
        cfg = config_of(txn, kind, fresh)
        cmps.append((lay.meta_key(ix.set_key(kind)), cfg.defs_mod))
        if cfg.defs:
            scope = lay.kind_prefix(kind) + pre
            got = txn.client.range(scope, c.prefix_end(scope))
            # The entries dropped are those of the records as read here: the
            # Txn goes through only if no record under the prefix was written
            # (or created) since, else it is prepared again (_Stale).
            txn.range_cmps.append(c.cmp_range_unchanged(
                scope, c.prefix_end(scope), int(got.header.revision)))
            for kv in got.kvs:
                old, _ = decode_record(kv.value, kv.key)
                more_cmps, more_ops = ix.upkeep(txn, cfg.defs, kind,
                                                kv.key[len(lay.kind_prefix(kind)) :], old, None)
                txn.unique_cmps.extend(more_cmps)
                ops.extend(more_ops)
    if not reads:
        return _with_unique(txn, cmps, ops)
    req = []
    for key, kind, id, _ in reads:
        hp = lay.history_prefix(kind, id)
        req.append(c.op_range(key))
        req.append(c.op_range(hp, c.prefix_end(hp), keys_only=True))
    resp = txn.client.txn((), req, retry=True)
    for i, (key, kind, id, cfg) in enumerate(reads):
        live = resp.responses[2 * i].response_range.kvs
        if key not in txn.conds:
            cmps.append((key, live[0].mod_revision if live else 0))
        if cfg.defs:
            was = decode_record(live[0].value, key)[0] if live else None
            value = txn.writes[key]
            new = decode_record(value, key)[0] if value is not None else None
            more_cmps, more_ops = ix.upkeep(txn, cfg.defs, kind, id, was, new)
            txn.unique_cmps.extend(more_cmps)
            ops.extend(more_ops)
        kept = _versions(list(resp.responses[2 * i + 1].response_range.kvs),
                         lay.history_prefix(kind, id))
        if not live or not cfg.keep:
            if kind in keeps:  # set here: the newest cfg.keep stay (none for 0)
                ops.extend(c.op_delete(kv.key) for _, kv in kept[: max(0, len(kept) - cfg.keep)])
            continue
        prev = live[0]
        ops.append(c.op_put(lay.history_key(kind, id, prev.mod_revision), prev.value))
        for _, kv in kept[: max(0, len(kept) + 1 - cfg.keep)]:
            ops.append(c.op_delete(kv.key))
    return _with_unique(txn, cmps, ops)


def _trim(txn: EtcdTxn, kind: bytes, keep: int, written: set[tuple[bytes, bytes]]
          ) -> list[pb.RequestOp]:
    """The deletes that leave each resource of ``kind`` its newest ``keep``
    kept versions (set_history in this transaction: a lower count applies to
    the versions kept already, as on LMDB); the ids this transaction writes
    are trimmed with their write.  Read now, compared at the commit: a
    version kept meanwhile by another writer makes it prepare again."""
    hp = txn.lay.history_prefix(kind)
    end = c.prefix_end(hp)
    # a prefix delete of this transaction drops its ids' versions itself
    # (one Txn cannot delete a key twice)
    gone = tuple(hp + pre for k, pre in txn.prefixes if k == kind)
    if keep == 0 and not gone and not any(k == kind for k, _ in written):
        return [c.op_delete(hp, end)]  # one range delete
    rev = 0

    def read(start: bytes) -> pb.RangeResponse:  # the pages at the first one's revision
        nonlocal rev
        resp = txn.client.range(start, end, keys_only=True, limit=1000, revision=rev)
        rev = rev or int(resp.header.revision)
        return resp

    by_id: dict[bytes, list[tuple[int, bytes]]] = {}
    for id, label, key in _version_keys(read, hp):
        if (kind, id) not in written and not key.startswith(gone):
            by_id.setdefault(id, []).append((int(label, 16), key))
    txn.range_cmps.append(c.cmp_range_unchanged(hp, end, rev))
    ops: list[pb.RequestOp] = []
    for versions in by_id.values():
        versions.sort()
        ops.extend(c.op_delete(key) for _, key in versions[: max(0, len(versions) - keep)])
    return ops


def _version_keys(
    read: Callable[[bytes], pb.RangeResponse], hp: bytes
) -> Iterator[tuple[bytes, bytes, bytes]]:
    """(id, 16-hex revision label, key) of every kept version under ``hp``
    (``history_prefix(kind)``), read a page at a time by ``read(start)``."""
    start = hp
    while True:
        resp = read(start)
        for kv in resp.kvs:
            id, sep, label = kv.key[len(hp) :].rpartition(b"/")
            if sep and len(label) == 16:
                yield id, label, kv.key
        if not resp.more or not resp.kvs:
            return
        start = resp.kvs[-1].key + b"\0"


def _with_unique(
    txn: EtcdTxn, cmps: list[tuple[bytes, int]], ops: list[pb.RequestOp]
) -> tuple[list[tuple[bytes, int]], list[pb.RequestOp]]:
    """``cmps`` and ``ops`` with those of the unique keys every write moves."""
    more_cmps, more_ops = ix.unique_upkeep(txn)
    return cmps + more_cmps, ops + more_ops


# -- the history calls of ResourceOps (``_run`` maps revs.* to these) -----------


def history(txn: EtcdTxn, kind: str, kb: bytes, id: str, ib: bytes, limit: int) -> list[Resource]:
    check_key(kb, ib)  # the C core's checks of the same call on LMDB
    lay = txn.lay
    key = lay.key(kb, ib)
    out = []
    resp = txn.range(key)
    if resp.kvs:
        payload, ns = decode_record(resp.kvs[0].value, key)
        out.append(Resource(id, kind, payload, ns_to_datetime(ns), ns, resp.kvs[0].mod_revision))
    hp = lay.history_prefix(kb, ib)
    kept = _versions(list(txn.range(hp, c.prefix_end(hp)).kvs), hp)
    for rev, kv in reversed(kept):
        payload, ns = decode_record(kv.value, kv.key)
        out.append(Resource(id, kind, payload, ns_to_datetime(ns), ns, rev))
    return out[:limit] if limit else out


def get_at(txn: EtcdTxn, kind: str, kb: bytes, id: str, ib: bytes, revision: int) -> Resource:
    check_key(kb, ib)
    lay = txn.lay
    key = lay.key(kb, ib)
    resp = txn.range(key)
    if resp.kvs and resp.kvs[0].mod_revision == revision:
        kv = resp.kvs[0]
    else:
        hk = lay.history_key(kb, ib, revision)
        got = txn.range(hk).kvs
        if not got:
            raise NotFoundError(
                f"no version of {kind}/{id} at revision {revision} is kept"
            )
        kv = got[0]
    payload, ns = decode_record(kv.value, kv.key)
    return Resource(id, kind, payload, ns_to_datetime(ns), ns, revision)


def history_set(txn: EtcdTxn, kb: bytes, keep: int) -> None:
    check_key(kb, b"_")
    txn.meta_put(_KEEP_PREFIX + kb, str(keep).encode("ascii"))


def history_keep(txn: EtcdTxn, kb: bytes) -> int:
    check_key(kb, b"_")
    value = txn.meta_get(_KEEP_PREFIX + kb)
    return int(value) if value else 0


def history_delete(txn: EtcdTxn, kb: bytes, ib: bytes) -> int:
    txn._writable()
    check_key(kb, ib)
    hp = txn.lay.history_prefix(kb, ib)
    kept = _versions(list(txn.range(hp, c.prefix_end(hp), keys_only=True).kvs), hp)
    for _, kv in kept:
        txn.writes[kv.key] = None
    return len(kept)


def history_ids(txn: EtcdTxn, kb: bytes, after: bytes | None, limit: int) -> list[bytes]:
    """Ids of a kind with kept versions, in id order (as LMDB's), after
    ``after``.  A version's key is ``<ID>/<rev>``, so the keys' order is not
    the ids' (``a-1/...`` sorts before ``a/...``, and ``a/b/...`` after
    ``a/...``): the ids are read whole, once per read transaction (a dump
    pages through them in one)."""
    cache = txn.history_ids_cache
    ids = None if txn.write else cache.get(kb)
    if ids is None:
        hp = txn.lay.history_prefix(kb)
        end = c.prefix_end(hp)
        ids = sorted({id for id, _, _ in _version_keys(
            lambda start: txn.range(start, end, keys_only=True, limit=1000), hp)})
        if not txn.write:
            cache[kb] = ids
    first = 0 if after is None else bisect.bisect_right(ids, after)
    return ids[first : first + limit] if limit else ids[first:]


def reserve(txn: EtcdTxn, n: int) -> int:
    """Labels for ``n`` loaded versions (``pystore load``): etcd cannot hand out
    revisions, so they are the n numbers up to the revision read at, below any
    revision the load's own commit takes."""
    return max(1, txn.revision() - n + 1)


def history_load(
    txn: EtcdTxn, kb: bytes, ib: bytes, data: bytes, ns: int, revision: int
) -> None:
    txn._writable()
    check_key(kb, ib)
    txn.writes[txn.lay.history_key(kb, ib, revision)] = encode_record(data, ns)
