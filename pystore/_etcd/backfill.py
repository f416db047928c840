"""Building an etcd index's entries in chunks (``create_index`` /
``rebuild_index`` on a kind of any size).

One etcd Txn takes at most ``--max-txn-ops`` compares and as many ops, so
the entries of a big kind cannot be written in the Txn that defines the
index.  The build runs while other processes keep writing the kind; it stays
exact because:

* the definition is stored FIRST (``create``, in index.py), with a
  "building" marker, and the kind's ``m/indexes/<Kind>`` key rewritten: from
  that revision on, every write of the kind maintains the index's entries
  and unique keys itself (history.py's ``prepare`` compares that key, so a
  writer with a stale cache prepares again), while readers treat the index
  as absent (``NotFoundError``) until the marker is gone;
* the build then reads the kind in id order, a chunk of records at a time,
  at the latest revision, and writes each chunk's entries in Txns that
  compare the ``mod_revision`` of every record they index (and of every
  unique key they take or rely on) with the one just read, plus the
  definition's own: a record a writer changed in between fails the compare,
  and the chunk is read and written again (its writer already maintained
  its entries; putting an entry twice is harmless);
* a unique key held by ANOTHER record is a collision only when a read at
  one revision shows the holder still carries the value (the holder keeps
  its key until it changes; writers delete a unique key only when they
  hold it, see ``index.upkeep``).  ``create`` then removes the definition,
  the marker and every entry in one Txn guarded by those same compares, and
  raises ``UniqueViolationError`` as LMDB does for the first collision in
  id order;
* a rebuild (the definition stays readable) adds what is missing, then
  sweeps: an entry or unique key its record no longer gives is deleted
  under a compare of that record's ``mod_revision``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

from .._lmdb import index as lix
from .._lmdb.violation import decode_raw
from ..errors import NotFoundError, UniqueViolationError
from . import _common as c
from . import etcd_api_pb2 as pb
from .client import EtcdClient
from .layout import Layout, decode_record

__all__ = ["Build", "violation_of"]

_CHUNK = 100  # records read per chunk (one read Txn: at most --max-txn-ops ranges)
_PAGE = 256  # entry keys per page of a sweep
_LEN = struct.Struct(">H")

Item = tuple[list[pb.RequestOp], dict[bytes, int]]  # ops, compares (key -> mod_revision)


def violation_of(d: lix.IndexDef, enc: bytes, holder: bytes) -> UniqueViolationError:
    value: Any = decode_raw(d.mode, enc[1:]) if enc[:1] == b"\x00" else enc
    return UniqueViolationError(d.kind, d.name, value, holder.decode("utf-8", "replace"))


class Build:
    """One chunked build of index ``d`` of ``kind`` (entries under ``p``).

    ``def_key``/``def_mod``: the definition's key and the ``mod_revision``
    every Txn of the build compares (a drop or a redefinition stops it).
    ``cleanup``: the ops that remove the index when a collision is found
    (``create``), or None (``rebuild``: the collision is only raised)."""

    def __init__(
        self, client: EtcdClient, lay: Layout, d: lix.IndexDef, kind: bytes, p: bytes,
        def_key: bytes, def_mod: int, cleanup: list[pb.RequestOp] | None,
    ) -> None:
        self.client, self.lay, self.d, self.kind, self.p = client, lay, d, kind, p
        self.def_key, self.def_mod, self.cleanup = def_key, def_mod, cleanup
        # one compare is the definition's; the write guard (once.py) adds a
        # put and nests the Txn, which etcd lets hold one op less
        self.budget = (client.max_txn_ops or 128) - 2

    # -- keys -----------------------------------------------------------------

    def entry(self, enc: bytes, id: bytes) -> bytes:
        return self.p + b"e" + _LEN.pack(len(enc)) + enc + id

    def unique(self, enc: bytes) -> bytes:
        return self.p + b"u" + _LEN.pack(len(enc)) + enc

    def encs(self, kv: pb.KeyValue | None) -> list[bytes]:
        if kv is None:
            return []
        return lix.extract(self.d.plan, decode_record(kv.value, kv.key)[0])

    # -- etcd -------------------------------------------------------------------

    def read(self, keys: list[bytes]) -> list[pb.KeyValue | None]:
        """The keys' current kvs (None: absent), all at one revision."""
        resp = self.client.txn((), [c.op_range(k) for k in keys], retry=True)
        return [r.response_range.kvs[0] if r.response_range.kvs else None
                for r in resp.responses]

    def send(self, cmps: dict[bytes, int], ops: list[pb.RequestOp]) -> bool:
        """One guarded Txn; False when a compare failed (NotFoundError if it
        was the definition's: the index was dropped meanwhile)."""
        compares = [c.cmp_mod(k, "==", m) for k, m in cmps.items()]
        compares.append(c.cmp_mod(self.def_key, "==", self.def_mod))
        resp = self.client.txn(compares, ops, [c.op_range(self.def_key, keys_only=True)],
                               retry=True)
        if resp.succeeded:
            return True
        kvs = resp.responses[0].response_range.kvs
        if not kvs or kvs[0].mod_revision != self.def_mod:
            raise NotFoundError(f"index {self.d.kind}.{self.d.name} was dropped or redefined "
                          "while it was being built")
        return False

    def flush(self, items: list[Item]) -> bool:
        """Send ``items`` in as few Txns as the limits allow, in order."""
        ops: list[pb.RequestOp] = []
        cmps: dict[bytes, int] = {}
        for item_ops, item_cmps in items:
            more = sum(1 for k in item_cmps if k not in cmps)
            if ops and (len(ops) + len(item_ops) > self.budget
                        or len(cmps) + more > self.budget):
                if not self.send(cmps, ops):
                    return False
                ops, cmps = [], {}
            ops.extend(item_ops)
            cmps.update(item_cmps)
        return not ops or self.send(cmps, ops)

    # -- the fill: every record's entries ------------------------------------

    def ids(self) -> Iterator[list[bytes]]:
        """The kind's ids in pages of ``_CHUNK``, read at the latest revision
        page by page (a record created meanwhile is its writer's to index)."""
        base = self.lay.kind_prefix(self.kind)
        start, end = base, c.prefix_end(base)
        while True:
            resp = self.client.range(start, end, limit=min(_CHUNK, self.budget),
                                     keys_only=True)
            if not resp.kvs:
                return
            yield [kv.key[len(base) :] for kv in resp.kvs]
            if not resp.more:
                return
            start = resp.kvs[-1].key + b"\0"

    def fill(self) -> int:
        """Write every record's entries; the number of entries the records give."""
        n = 0
        for ids in self.ids():
            n += self.chunk(ids)
        return n

    def chunk(self, ids: list[bytes]) -> int:
        todo = ids
        n = 0
        while todo:
            keys = [self.lay.key(self.kind, i) for i in todo]
            kvs = self.read(keys)
            encs = [self.encs(kv) for kv in kvs]
            held: dict[bytes, pb.KeyValue | None] = {}
            if self.d.unique:
                uks = sorted({self.unique(e) for es in encs for e in es})
                for at in range(0, len(uks), self.budget):
                    part = uks[at : at + self.budget]
                    held.update(zip(part, self.read(part), strict=True))
            items: list[Item] = []
            claimed: dict[bytes, bytes] = {}
            done, clash = 0, None
            for id, key, kv, es in zip(todo, keys, kvs, encs, strict=True):
                if kv is None:
                    done += 1
                    continue  # deleted meanwhile: its writer dropped its entries
                mine: list[Item] = []
                for enc in es:
                    cmps = {key: kv.mod_revision}
                    ops = [c.op_put(self.entry(enc, id), b"")]
                    if self.d.unique:
                        uk = self.unique(enc)
                        h = held[uk]
                        holder = claimed.get(uk, h.value if h is not None else None)
                        if holder is not None and holder != id:
                            clash = (id, kv, enc, uk)
                            break
                        if holder is None:
                            cmps[uk] = 0
                            ops.append(c.op_put(uk, id))
                            claimed[uk] = id
                        else:
                            assert h is not None
                            cmps[uk] = h.mod_revision
                    mine.append((ops, cmps))
                if clash is not None:
                    break
                items.extend(mine)
                done += 1
            if not self.flush(items):
                continue  # something moved: read the same records again
            n += sum(len(es) for kv, es in zip(kvs[:done], encs[:done], strict=True) if kv)
            todo = todo[done:]
            if clash is not None:
                self.collide(*clash)
        return n

    def collide(self, id: bytes, kv: pb.KeyValue, enc: bytes, uk: bytes) -> None:
        """``id`` gives ``enc``, whose unique key another record holds: raise
        if one read shows both carrying it (``create`` removes the index in
        the same guarded Txn), else return (the chunk is read again; a stale
        key, of a damaged index, is taken over)."""
        first = self.read([uk])[0]
        if first is None:
            return
        holder = first.value
        hkey = self.lay.key(self.kind, holder)
        ukv, xkv, owner = self.read([uk, kv.key, hkey])  # one revision
        if ukv is None or ukv.value != holder or enc not in self.encs(xkv):
            return
        assert xkv is not None
        cmps = {uk: ukv.mod_revision, xkv.key: xkv.mod_revision,
                hkey: owner.mod_revision if owner else 0}
        if enc in self.encs(owner):
            # the read above proves it; create removes the index under its compares
            if self.cleanup is None or self.send(cmps, self.cleanup):
                raise violation_of(self.d, enc, holder)
            return
        self.send(cmps, [c.op_put(uk, id)])  # the holder no longer carries it

    # -- the sweep (rebuild): entries no record gives any more -----------------

    def parse(self, key: bytes) -> tuple[bytes, bytes]:
        """(encoded value, id) of an entry key, or of a unique key (id b"")."""
        tail = key[len(self.p) + 1 :]
        (n,) = _LEN.unpack_from(tail, 0)
        return tail[2 : 2 + n], tail[2 + n :]

    def sweep(self) -> None:
        for tag in (b"e", b"u") if self.d.unique else (b"e",):
            pre = self.p + tag
            start, end = pre, c.prefix_end(pre)
            while True:
                resp = self.client.range(start, end, limit=_PAGE, keys_only=tag == b"e")
                if not resp.kvs:
                    break
                if not self.sweep_page(list(resp.kvs), tag):
                    continue  # something moved: read the same page again
                if not resp.more:
                    break
                start = resp.kvs[-1].key + b"\0"

    def sweep_page(self, kvs: list[pb.KeyValue], tag: bytes) -> bool:
        """Delete the page's stray keys (``tag`` b"e": entries, b"u": unique
        keys, whose value is the holder); False when a compare failed."""
        owners = sorted({self.parse(kv.key)[1] if tag == b"e" else kv.value for kv in kvs})
        recs: dict[bytes, pb.KeyValue | None] = {}
        for at in range(0, len(owners), self.budget):
            part = owners[at : at + self.budget]
            got = self.read([self.lay.key(self.kind, i) for i in part])
            recs.update(zip(part, got, strict=True))
        items: list[Item] = []
        for kv in kvs:
            enc, id = self.parse(kv.key)
            owner = id if tag == b"e" else kv.value
            rec = recs[owner]
            if enc in self.encs(rec):
                continue
            cmps = {self.lay.key(self.kind, owner): rec.mod_revision if rec else 0}
            if tag == b"u":
                cmps[kv.key] = kv.mod_revision
            items.append(([c.op_delete(kv.key)], cmps))
        return self.flush(items)
