"""``pystore verify`` of an etcd store's indexes: the etcd versions of the
calls ``pystore._lmdb.indexcheck.check_indexes`` makes (mapped in
``EtcdTxn.OPS``), all at the verify's pinned revision.

Beyond the entries (checked against a scan by the shared code) an etcd index
has unique-value keys (``…u<len><value>`` = holder id) and may be left
"being built" by an interrupted ``create_index`` (see backfill.py).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .._lmdb import index as lix
from .._lmdb.indexcheck import describe_value
from ..errors import NotFoundError
from . import _common as c
from .index import def_key, prefix

if TYPE_CHECKING:
    from .txn import EtcdTxn

__all__ = ["entries", "store_problems", "unique_problems"]

_LEN = struct.Struct(">H")


def _keys(txn: EtcdTxn, start: bytes, keys_only: bool) -> list[tuple[bytes, bytes]]:
    """(key tail after ``start``, value) of every key under ``start``, at the pin."""
    out: list[tuple[bytes, bytes]] = []
    key, end = start, c.prefix_end(start)
    while True:
        resp = txn.range(key, end, limit=1000, keys_only=keys_only)
        out += [(kv.key[len(start) :], kv.value) for kv in resp.kvs]
        if not resp.more or not resp.kvs:
            return out
        key = resp.kvs[-1].key + b"\0"


def _split(tail: bytes) -> tuple[bytes, bytes]:
    (n,) = _LEN.unpack_from(tail, 0)
    return tail[2 : 2 + n], tail[2 + n :]


def entries(txn: EtcdTxn, kind: bytes, name: bytes) -> list[tuple[bytes, bytes]]:
    """Every (encoded value, id) entry of an index, in key order."""
    if txn.meta_get(def_key(txn, kind, name)) is None:
        raise NotFoundError(f"no index {kind.decode('utf-8', 'replace')}."
                            f"{name.decode('utf-8', 'replace')}")
    return [_split(t) for t, _ in _keys(txn, prefix(txn, kind, name) + b"e", True)]


def store_problems(txn: EtcdTxn, kind: bytes | None) -> list[str]:
    """An index left "being built" (a create_index running, or interrupted)."""
    mp = txn.lay.meta_key(b"index.building/" + (kind + b"/" if kind is not None else b""))
    start = txn.lay.meta_key(b"index.building/")
    out = []
    for kv in txn.range(mp, c.prefix_end(mp), keys_only=True).kvs:
        where = kv.key[len(start) :].decode("utf-8", "replace").replace("/", ".", 1)
        out.append(f"index {where}: being built (a create_index is running or was "
                   "interrupted: create_index again finishes it, drop_index removes it)")
    return out


def unique_problems(txn: EtcdTxn, d: lix.IndexDef, expected: set[tuple[bytes, bytes]]
                    ) -> list[str]:
    """Each value a record carries has its unique key naming that record;
    no unique key names a value no record carries."""
    where = f"index {d.kind}.{d.name}"
    p = prefix(txn, d.kind.encode("utf-8"), d.name.encode("utf-8")) + b"u"
    held = {_split(t)[0]: holder for t, holder in _keys(txn, p, False)}
    out = []
    carriers: dict[bytes, list[bytes]] = {}
    for enc, id in sorted(expected):
        carriers.setdefault(enc, []).append(id)
    for enc, ids in carriers.items():
        holder = held.get(enc)
        if holder is None:
            out.append(f"{where}: missing unique key {describe_value(d, enc)} -> "
                       f"{d.kind}/{ids[0].decode('utf-8', 'replace')}")
        elif holder not in ids:
            out.append(f"{where}: unique key {describe_value(d, enc)} names "
                       f"{d.kind}/{holder.decode('utf-8', 'replace')}, which does not carry it")
    for enc in sorted(set(held) - set(carriers)):
        out.append(f"{where}: stale unique key {describe_value(d, enc)} -> "
                   f"{d.kind}/{held[enc].decode('utf-8', 'replace')}")
    return out
