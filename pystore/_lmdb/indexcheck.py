"""Index verification: every index against a full scan of its kind.

For each index the expected entries are computed from the stored records
with the core's own extractor (``ps_index_extract``, the function the
upkeep uses), and compared with the entries in the index database; every
difference is named.  Used by ``pystore verify`` and the tests.
"""

from __future__ import annotations

from ..errors import StoreError
from . import index as _ix
from .core import CTxn, encode_kind
from .violation import decode_raw

__all__ = ["check_indexes", "describe_value"]


def describe_value(d: _ix.IndexDef, enc: bytes) -> str:
    """A readable form of an encoded value (digests stay digests)."""
    if enc[:1] == b"\x00":
        return repr(decode_raw(d.mode, enc[1:]))
    return f"<sha256 {enc[1:].hex()[:16]}…>"


def check_indexes(txn: CTxn, kind: str | None = None) -> list[str]:
    """Problems found in the indexes (of ``kind``, or all); [] when consistent."""
    problems: list[str] = []
    kb = None if kind is None else encode_kind(kind)
    for d, count in _ix.list_defs(txn, kb):
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
        actual = _ix.entries(txn, k, d.name.encode("utf-8"))
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
    return problems
