"""Queries and event streams, shared by ``Store``, ``Transaction`` and
snapshots through ``ResourceOps`` (which derives from ``QueryOps``).

Everything here runs over the same ``_begin``/``_end`` hooks as the
resource methods, so on a Transaction the reads see its own writes and the
writes commit with it.  Index upkeep itself is not here: the C core keeps
the entries from the wire bytes inside every write (``csrc/ps_index.c``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from google.protobuf.message import Message

from ._lmdb import events as _ev
from ._lmdb import index as _ix
from ._lmdb.core import CTxn, check_key, encode_id, encode_kind, records_of
from ._lmdb.fast import parse_list
from ._messages import check_type, parse_into
from ._seam import nothing, op_for
from .errors import NotFoundError
from .records import Event, IndexInfo, ns_to_datetime

__all__ = ["IndexAdminOps", "QueryOps"]

M = TypeVar("M", bound=Message)


_check_type = check_type


def _limit(limit: object) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be int or None, not {type(limit).__name__}")
    if limit < 0:
        raise ValueError("limit must be >= 0")
    return limit


def _parse(cls: type[M], data: bytes, where: str) -> M:
    return parse_into(cls(), data, where)


class QueryOps:
    """Index lookups and event streams (see ``Store`` for the contract)."""

    def _run(self, write: bool, op: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    def _payload(self, msg: object, owned: bool = False) -> bytes:
        raise NotImplementedError

    def _read_type(self, kind: str, kb: bytes, msg_type: type[M]) -> type[M]:
        raise NotImplementedError  # KindOps's (before this class in ResourceOps)

    def _recheck_type(self, kind: str, kb: bytes, desc: Any) -> None:
        raise NotImplementedError  # KindOps's

    # -- index lookups ----------------------------------------------------

    def _query(self, kind: str, index: str, value: object) -> tuple[bytes, bytes, Any]:
        kb = _ix.check_kind(kind)
        nb = _ix.encode_name(index)
        return kb, nb, _ix.query_args(value)

    @overload
    def find(
        self, kind: str, index: str, value: object, msg_type: None = None, *,
        after: str | None = None, limit: int | None = None,
    ) -> list[bytes]: ...
    @overload
    def find(
        self, kind: str, index: str, value: object, msg_type: type[M], *,
        after: str | None = None, limit: int | None = None,
    ) -> list[M]: ...

    def find(
        self,
        kind: str,
        index: str,
        value: object,
        msg_type: type[M] | None = None,
        *,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[bytes] | list[M]:
        """Resources of ``kind`` whose ``index`` holds ``value``, in id order:
        raw bytes, or ``msg_type`` messages; ids strictly after ``after``."""
        kb, nb, q = self._query(kind, index, value)
        cls = None if msg_type is None else self._read_type(kind, kb, msg_type)
        ab = None if after is None or after == "" else encode_id(after)
        if ab is not None:
            check_key(kb, ab)
        n = _limit(limit)
        if q is None or n == 0:
            self._run(False, _ix.index_exists, kb, nb)
            return []
        wire, count = self._run(False, _ix.find, kb, nb, value, q, ab, n or 0, 2)
        if cls is not None:  # another process may have changed the kind's type
            self._recheck_type(kind, kb, cls.DESCRIPTOR)
        parsed = parse_list(wire, count, cls)
        if parsed is not None:
            return parsed
        out: list[Any] = []
        for id_, payload in self._find_records(kb, nb, value, q, ab, n or 0):
            out.append(payload if cls is None else _parse(cls, payload, f"{kind}/{id_}"))
        return out

    def _find_records(
        self, kb: bytes, nb: bytes, value: object, q: Any, after: bytes | None, limit: int
    ) -> list[tuple[str, bytes]]:
        raw, count = self._run(False, _ix.find, kb, nb, value, q, after, limit, 1)
        return [(i.decode("utf-8"), payload) for i, payload, *_ in records_of(raw, count)]

    def find_ids(self, kind: str, index: str, value: object) -> list[str]:
        """Ids of the resources whose ``index`` holds ``value``, in id order."""
        kb, nb, q = self._query(kind, index, value)
        if q is None:
            self._run(False, _ix.index_exists, kb, nb)
            return []
        raw, count = self._run(False, _ix.find, kb, nb, value, q, None, 0, 0)
        out, off = [], 0
        for _ in range(count):
            n = int.from_bytes(raw[off : off + 4], "little")
            out.append(raw[off + 4 : off + 4 + n].decode("utf-8"))
            off += 4 + n
        return out

    def find_one(self, kind: str, index: str, value: object, msg_type: type[M]) -> M:
        """The first resource (by id) whose ``index`` holds ``value``;
        NotFoundError if none."""
        kb, nb, q = self._query(kind, index, value)
        cls = self._read_type(kind, kb, msg_type)
        data = None if q is None else self._find_first(kb, nb, value, q)
        self._recheck_type(kind, kb, cls.DESCRIPTOR)  # (as after every typed read)
        if data is None:
            if q is None:
                self._run(False, _ix.index_exists, kb, nb)
            raise NotFoundError(f"no {kind} with {index} = {value!r}")
        return _parse(cls, data, f"{kind} by {index}")

    def _find_first(self, kb: bytes, nb: bytes, value: object, q: Any) -> bytes | None:
        wire, count = self._run(False, _ix.find, kb, nb, value, q, None, 1, 2)
        items = parse_list(wire, count, None)
        return items[0] if items else None

    def count_index(self, kind: str, index: str, value: object) -> int:
        """Number of resources whose ``index`` holds ``value``."""
        kb, nb, q = self._query(kind, index, value)
        if q is None:
            self._run(False, _ix.index_exists, kb, nb)
            return 0
        n: int = self._run(False, _ix.count, kb, nb, value, q)
        return n

    def indexes(self, kind: str | None = None) -> list[IndexInfo]:
        """Every index (of ``kind``, or of all kinds), sorted by (kind, name)."""
        kb = None if kind is None else _ix.check_kind(kind)
        defs = self._run(False, _ix.list_defs, kb)
        infos = [IndexInfo(d.kind, d.name, d.field, d.unique, n) for d, n in defs]
        return sorted(infos, key=lambda i: (i.kind, i.name))

    # -- resource writes ------------------------------------------------------

    def delete_resources_by_prefix(self, kind: str, id_prefix: str) -> int:
        """Delete the resources of ``kind`` whose id starts with ``id_prefix``
        ("" = the whole kind) in one write transaction, in C; the count."""
        kb = encode_kind(kind)
        if not isinstance(id_prefix, str):
            raise TypeError(f"id_prefix must be str, not {type(id_prefix).__name__}")
        pb = encode_id(id_prefix) if id_prefix else b""
        n: int = self._run(True, CTxn.delete_prefix, kb, pb)
        return n

    # -- event streams ----------------------------------------------------

    def append_events(self, stream: str, events: Iterable[tuple[int, Message]]) -> int:
        """Append ``(seq, msg)`` pairs (any order) in one transaction; a
        (stream, seq) already present or forgotten is skipped; how many were new."""
        sb = _ev.encode_stream(stream)
        batch = []
        for item in events:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError(f"events must be (seq, msg) pairs, got {item!r}")
            batch.append((_ev.check_seq(item[0]), self._payload(item[1])))
        if not batch:
            self._run(True, nothing)  # a closed or read-only store refuses it
            return 0
        n: int = self._run(True, self._append_all, sb, batch, time.time_ns())
        return n

    @staticmethod
    def _append_all(t: CTxn, sb: bytes, batch: list[tuple[int, bytes]], ns: int) -> int:
        return sum(op_for(t, _ev.append)(t, sb, seq, payload, ns)[1] for seq, payload in batch)

    def append_event(self, stream: str, msg: Message) -> int:
        """Append ``msg`` as the next event (last seq + 1, assigned atomically); its seq."""
        sb = _ev.encode_stream(stream)
        payload = self._payload(msg)
        seq: int = self._run(
            True, lambda t: op_for(t, _ev.append)(t, sb, 0, payload, time.time_ns())[0]
        )
        return seq

    def _append_raw(self, stream: str, seq: int, data: bytes, ns: int) -> bool:
        """Internal (``pystore load``): an event exactly as dumped."""
        sb = _ev.encode_stream(stream)
        added: bool = self._run(
            True, lambda t: op_for(t, _ev.append)(t, sb, _ev.check_seq(seq), data, ns)[1]
        )
        return added

    def read_events(
        self,
        stream: str,
        msg_type: type[M] | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
    ) -> list[Event]:
        """Events of ``stream`` with seq > ``after``, in seq order; ``data``
        is bytes, or a ``msg_type`` message."""
        sb = _ev.encode_stream(stream)
        cls = None if msg_type is None else _check_type(msg_type)
        a = _ev.check_seq(after, "after", 0)
        n = _limit(limit)
        if n == 0:
            self._run(False, nothing)  # a closed store refuses it all the same
            return []
        rows = self._run(False, _ev.read, sb, a, n or 0)
        out = []
        for seq, ns, payload in rows:
            data: Any = payload if cls is None else _parse(cls, payload, f"{stream}#{seq}")
            out.append(Event(stream, seq, data, ns_to_datetime(ns)))
        return out

    def last_seq(self, stream: str) -> int:
        """Highest seq ever appended to ``stream`` and not forgotten; 0 if none."""
        n: int = self._run(False, _ev.last, _ev.encode_stream(stream))
        return n

    def delete_events(self, stream: str, *, upto: int | None = None) -> int:
        """Delete all events of ``stream``, or those with seq <= ``upto``;
        appends at or below that seq are skipped from then on.  The count."""
        sb = _ev.encode_stream(stream)
        if upto is not None:
            _ev.check_seq(upto, "upto", 0)
        n: int = self._run(True, _ev.delete, sb, upto)
        return n

    def streams(self) -> list[str]:
        """Sorted streams holding at least one event."""
        out: list[str] = self._run(False, _ev.streams)
        return out


class IndexAdminOps:
    """Creating, dropping and rebuilding indexes (Store methods)."""

    if TYPE_CHECKING:  # provided by ResourceOps, after this class in Store's MRO

        def _run(self, write: bool, op: Callable[..., Any], *args: Any) -> Any: ...

        def _read_type(self, kind: str, kb: bytes, msg_type: type[M]) -> type[M]: ...

    def create_index(
        self, kind: str, name: str, *, field: str, msg_type: type[Message], unique: bool = False
    ) -> int:
        """Index ``field`` (a dotted path in ``msg_type``) of every resource of
        ``kind``; backfills in the same transaction and returns the number of
        entries.  The definition is stored: every process that writes the
        store maintains it from then on.  An identical index is a no-op;
        the same name with another definition raises StoreError."""
        kb = _ix.check_kind(kind)
        nb = _ix.encode_name(name)
        cls = self._read_type(kind, kb, msg_type)  # the kind's recorded type, if any
        if not isinstance(unique, bool):
            raise TypeError(f"unique must be bool, not {type(unique).__name__}")
        plan = _ix.compile_plan(cls.DESCRIPTOR, field)  # type: ignore[arg-type]
        blob = _ix.make_def(kb, nb, field, cls.DESCRIPTOR.full_name, unique, plan)
        entries, _created = self._run(True, _ix.create, blob, kb)
        return int(entries)

    def drop_index(self, kind: str, name: str) -> None:
        """Drop an index and its entries; NotFoundError if absent."""
        self._run(True, _ix.drop, _ix.check_kind(kind), _ix.encode_name(name))

    def rebuild_index(self, kind: str, name: str) -> int:
        """Rebuild an index's entries from the records; the entry count."""
        n: int = self._run(True, _ix.rebuild, _ix.check_kind(kind), _ix.encode_name(name))
        return n

    def _create_index_raw(self, blob: bytes) -> int:
        """Internal (``pystore load``): create from a stored definition blob."""
        d = _ix.parse_def(blob)
        kb = _ix.check_kind(d.kind)
        fresh = _ix.make_def(kb, _ix.encode_name(d.name), d.field, d.type, d.unique, list(d.plan))
        entries, _created = self._run(True, _ix.create, fresh, kb)
        return int(entries)
