"""Index verification: every index against a full scan of its kind.

For each index the expected entries are computed from the stored records
with the core's own extractor (``ps_index_extract``, the function the
upkeep uses), and compared with the entries in the index database; every
difference is named.  Used by ``pystore verify`` and the tests.
"""

from __future__ import annotations

from .._seam import op_for
from ..errors import StoreError
from . import index as _ix
from .core import CTxn, encode_kind
from .violation import decode_raw

__all__ = ["check_indexes", "describe_value", "store_problems", "unique_problems"]


def describe_value(d: _ix.IndexDef, enc: bytes) -> str:
    """A readable form of an encoded value (digests stay digests)."""
    if enc[:1] == b"\x00":
        return repr(decode_raw(d.mode, enc[1:]))
    return f"<sha256 {enc[1:].hex()[:16]}…>"


def store_problems(txn: CTxn, kind: bytes | None) -> list[str]:
    """Index problems a backend can have beyond its entries (the etcd backend:
    an unfinished build, see ``pystore._etcd.indexcheck``); none on LMDB."""
    return []


def unique_problems(txn: CTxn, d: _ix.IndexDef, expected: set[tuple[bytes, bytes]]) -> list[str]:
    """Problems of a unique index beyond its entries (the etcd backend: its
    unique-value keys); none on LMDB, where the entries are the whole index."""
    return []


def check_indexes(txn: CTxn, kind: str | None = None) -> list[str]:
    """Problems found in the indexes (of ``kind``, or all); [] when consistent.
    Runs on either backend's transaction (``op_for``)."""
    kb = None if kind is None else encode_kind(kind)
    problems: list[str] = list(op_for(txn, store_problems)(txn, kb))
    for d, count in op_for(txn, _ix.list_defs)(txn, kb):
        where = f"index {d.kind}.{d.name}"
        k = d.kind.encode("utf-8")
        expected: set[tuple[bytes, bytes]] = set()
        try:
            records = txn.list(k, None, 0)
        except StoreError as exc:
            problems.append(f"{where}: cannot list {d.kind}: {exc}")
            continue
        for id_, payload, *_ in records:
            for enc in _ix.extract(d.plan, payload):
                expected.add((enc, id_))
        actual = op_for(txn, _ix.entries)(txn, k, d.name.encode("utf-8"))
        have = set(actual)
        if len(actual) != count:
            problems.append(f"{where}: entry count {count} but {len(actual)} entries listed")
        for enc, id_ in sorted(expected - have):
            problems.append(
                f"{where}: missing entry {describe_value(d, enc)} -> "
                f"{d.kind}/{id_.decode('utf-8', 'replace')}"
            )
        for enc, id_ in sorted(have - expected):
            problems.append(
                f"{where}: stale entry {describe_value(d, enc)} -> "
                f"{d.kind}/{id_.decode('utf-8', 'replace')}"
            )
        if d.unique:
            holders: dict[bytes, list[bytes]] = {}
            for enc, id_ in actual:
                holders.setdefault(enc, []).append(id_)
            for enc, ids in holders.items():
                if len(ids) > 1:
                    problems.append(
                        f"{where}: unique value {describe_value(d, enc)} held by "
                        + ", ".join(i.decode("utf-8", "replace") for i in ids)
                    )
            problems += op_for(txn, unique_problems)(txn, d, expected)
    return problems
