"""The resource operations shared by ``Store`` and ``Transaction``.

``ResourceOps`` implements every data method once, in terms of two hooks:
``_begin(write)`` hands out a live core transaction and ``_end(txn, ok)``
finishes it.  A Store begins and commits one transaction per call; a
Transaction hands out its own open transaction and commits at exit.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, cast, overload

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import EncodeError, Message

from ._kindops import KindOps, check_limit
from ._lmdb.core import MAX_PAYLOAD, NO_SLOT, CTxn, check_key, encode_id, encode_kind
from ._lmdb.fast import list_wire, parse_list, put_many
from ._lmdb.fastwrite import FastWriter, check_revision
from ._lmdb.group import GroupCommit, Op
from ._lmdb.hygiene import Stripper
from ._lmdb.schema import SchemaRecorder
from ._lmdb.wirestrip import WirePlan
from ._messages import check_message, check_type, parse_into
from ._query import QueryOps
from ._seam import nothing, op_for
from .errors import InvalidMessageError, NotFoundError, ValueTooLargeError
from .history import HistoryOps
from .records import Resource, ns_to_datetime

__all__ = ["ResourceOps"]

M = TypeVar("M", bound=Message)
_PAGE = 512


_check_message = check_message
_check_type = check_type
_check_revision = check_revision
_parse = parse_into


def check_update_fn(fn: object) -> None:
    """``update`` functions are plain callables that mutate their argument."""
    if not callable(fn):
        raise TypeError("fn must be callable")
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        type(fn).__call__  # an object with an async __call__
    ):
        raise TypeError(
            "fn is a coroutine function: an update runs inside the write transaction "
            "and cannot await; pass a plain function that mutates the message"
        )


def check_update_result(result: object, msg: Message) -> None:
    """``fn`` may return None or its argument; anything else is refused."""
    if result is None or result is msg:
        return
    if inspect.iscoroutine(result):
        result.close()  # never awaited, on purpose
        raise TypeError("fn returned a coroutine: an update function cannot be async")
    what = "another message object" if isinstance(result, Message) else type(result).__name__
    raise TypeError(
        f"fn returned {what}; it must mutate the message it is given and return None "
        "(or that same message): nothing was written"
    )


class ResourceOps(KindOps, QueryOps, HistoryOps):
    """Data methods over ``<Kind>/<ID>`` resources (see ``Store`` for the contract)."""

    _stripper: Stripper
    _schemas: SchemaRecorder
    _group: GroupCommit | None = None  # set by a durable Store
    _fw: FastWriter | None = None  # set by a non-durable, writable Store

    def _group_write(self, op: Op) -> Any:
        raise NotImplementedError

    def _begin(self, write: bool) -> CTxn:
        raise NotImplementedError

    def _end(self, txn: CTxn, ok: bool) -> int:
        """Finish ``txn``; the revision its writes committed (or will commit) at."""
        raise NotImplementedError

    # The interrupt-safe shape of every call (see ``CTxn``):
    #
    #     t = self._prepare(write)      # no C call: nothing to leak yet
    #     ok = False
    #     try:
    #         self._start(t)            # the core records the txn in t.pp
    #         ...
    #         ok = True
    #     finally:
    #         t.commit_asked = ok       # no Python call before the C call
    #         t.finish(t.slot, ok, t.rc, t.revp)  # C: ends it, whatever was interrupted
    #     rev = self._after(t)          # a failed commit's error; the revision
    #
    # A Transaction hands out its own open txn (its slot is empty, so the
    # finally leaves it alone) and commits at its exit.

    # Defaults for views that hand out a txn of their own (a Snapshot): its
    # _begin refuses writes; the per-call finally leaves the txn alone.
    def _prepare(self, write: bool) -> CTxn:
        t = self._begin(write)
        t.slot = NO_SLOT
        return t

    def _start(self, txn: CTxn) -> None:
        pass

    def _after(self, txn: CTxn) -> int:
        return self._end(txn, True)

    def _callback(self) -> Callable[[], object]:
        """Mark this thread as inside update_resource()'s fn (see Store);
        returns what marks it out again, called with no argument once fn
        returned.  That must be a C callable (a builtin, a partial of one):
        the entry of a Python function is a check point where a SIGINT can
        raise before its first line, which left the thread marked inside."""
        raise NotImplementedError

    def _run(self, write: bool, op: Callable[..., Any], *args: Any) -> Any:
        """``op(txn, *args)`` in a transaction (the shape above)."""
        t = self._prepare(write)
        op = op_for(t, op)
        ok = False
        try:
            self._start(t)
            result = op(t, *args)
            ok = True
        finally:
            t.commit_asked = ok
            t.finish(t.slot, ok, t.rc, t.revp)
        self._after(t)
        return result

    # -- encoding ---------------------------------------------------------

    def _payload(self, msg: object, owned: bool = False) -> bytes:
        """Serialized, stripped bytes; ``owned`` messages are stripped in place."""
        message = _check_message(msg)
        try:
            if owned:
                self._stripper.strip_in_place(message)
                data = message.SerializeToString()
            else:
                data = self._stripper.serialize(message)
        except EncodeError as exc:
            raise InvalidMessageError(
                f"cannot serialize {message.DESCRIPTOR.full_name}: {exc}"
            ) from None
        if len(data) > MAX_PAYLOAD:
            raise ValueTooLargeError(
                f"serialized message is {len(data)} bytes; a record holds at most {MAX_PAYLOAD}"
            )
        return data

    def _payload_unstripped(self, msg: object) -> tuple[bytes, WirePlan | None]:
        """``_payload`` for a group commit: the bytes and the plan its leader
        strips them with (None: they are final).  No C call (see group.py)."""
        message = _check_message(msg)
        try:
            data, wire = self._stripper.serialize_unstripped(message)
        except EncodeError as exc:
            raise InvalidMessageError(
                f"cannot serialize {message.DESCRIPTOR.full_name}: {exc}"
            ) from None
        if len(data) > MAX_PAYLOAD:  # stripped, it may fit: decide as _payload does
            return self._payload(message), None
        return data, wire

    # -- writes -----------------------------------------------------------

    def _put(
        self, kind: str, id: str, msg: object, create: bool, if_revision: int | None = None
    ) -> int:
        kb, ib = encode_kind(kind), encode_id(id)
        if self._group is not None:  # durable Store: share the commit (see group.py)
            data, wire = self._payload_unstripped(msg)  # the leader strips
            rev: int = self._group_write(
                Op(kind, kb, ib, data, msg, create, if_revision, wire=wire)  # type: ignore[arg-type]
            )
            return rev
        payload = self._payload(msg)
        t = self._prepare(True)
        ok = False
        try:
            self._start(t)
            t.put(kb, ib, payload, time.time_ns(), create, if_revision)
            self._note_schema(t, kind, kb, msg)  # type: ignore[arg-type]
            ok = True
        finally:
            t.commit_asked = ok
            t.finish(t.slot, ok, t.rc, t.revp)
        return self._after(t)

    def save_resource(
        self, kind: str, id: str, msg: Message, *, if_revision: int | None = None
    ) -> int:
        """Upsert ``kind/id`` with ``msg`` (tenancy fields stripped); stamps updated_at.

        Returns the revision it committed at (inside ``transaction()``: the
        revision the transaction commits at).  ``if_revision=N`` writes only
        if the stored record's revision is N (0: only if absent), else
        ConflictError and nothing changes.
        """
        fw = self._fw
        if if_revision is None:
            if fw is not None:  # one C call (see _lmdb/fastwrite.py), None: not taken
                rev = fw.save_one(kind, id, msg)
                if rev is not None:
                    if rev >= 0:
                        return rev
                    fw.save_failed(self, rev, kind, id, None)  # type: ignore[arg-type]
            return self._put(kind, id, msg, False, None)
        expected = _check_revision(if_revision)
        if fw is not None:
            rev = fw.save(self, kind, id, msg, False, expected)  # type: ignore[arg-type]
            if rev is not None:
                return rev
        return self._put(kind, id, msg, False, expected)

    def create_resource(self, kind: str, id: str, msg: Message) -> int:
        """Like save_resource, but AlreadyExistsError if ``kind/id`` exists."""
        fw = self._fw
        if fw is not None:
            rev = fw.save(self, kind, id, msg, True, None)  # type: ignore[arg-type]
            if rev is not None:
                return rev
        return self._put(kind, id, msg, True)

    def save_resources(self, kind: str, items: Iterable[tuple[str, Message]]) -> int:
        """Upsert many resources of one kind, all or nothing, in one commit."""
        if self._fw is not None:
            n, items = self._fw.save_many(self, kind, items)  # type: ignore[arg-type]
            if n is not None:
                return n
        kb = encode_kind(kind)
        batch = []
        types: list[Message] = []  # one message per run of the same type
        for item in items:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError(f"items must be (id, msg) pairs, got {item!r}")
            ib = encode_id(item[0])
            batch.append((ib, self._payload(item[1])))
            if not types or types[-1].DESCRIPTOR is not item[1].DESCRIPTOR:
                types.append(item[1])
        t = self._prepare(True)
        ok = False
        try:
            self._start(t)
            # One C call; every key is checked before the first put (all or nothing).
            op_for(t, put_many)(t, kb, batch, time.time_ns())
            for m in types:
                self._note_schema(t, kind, kb, m)
            ok = True
        finally:
            t.commit_asked = ok
            t.finish(t.slot, ok, t.rc, t.revp)
        self._after(t)
        return len(batch)

    def update_resource(
        self,
        kind: str,
        id: str,
        msg_type: type[M],
        fn: Callable[[M], object],
        *,
        create: bool = False,
    ) -> M:
        """Atomic read-modify-write in one write transaction.

        Reads ``kind/id`` as ``msg_type``, calls ``fn(msg)`` to mutate it and
        saves it; returns the message as saved.  If ``fn`` raises, nothing
        changes and the exception propagates.  NotFoundError if absent, unless
        ``create=True``: then ``fn`` gets a new empty message.  ``fn`` must be a
        plain function returning None (or its argument): a coroutine function,
        or one returning another object, is refused with TypeError and
        nothing is written.  ``fn`` runs inside the write transaction, like
        the body of ``transaction()``: it must not use the store (that
        raises TransactionError, never waits).
        """
        kb, ib = encode_kind(kind), encode_id(id)
        cls = _check_type(msg_type)
        check_update_fn(fn)
        t = self._prepare(True)
        ok = False
        try:
            self._start(t)
            try:
                data = t.get(kb, ib)[0]
            except NotFoundError:
                if not create:
                    raise
                msg = cls()
            else:
                msg = _parse(cls(), data, f"{kind}/{id}")
            done = self._callback()  # fn is the body of a transaction: no store calls
            try:
                result = fn(msg)  # type: ignore[arg-type]
            finally:
                done()  # a C call: no check point before the thread is marked out
            check_update_result(result, msg)
            payload = self._payload(msg, owned=True)
            t.put(kb, ib, payload, time.time_ns(), False)
            self._note_schema(t, kind, kb, msg)
            ok = True
        finally:
            t.commit_asked = ok
            t.finish(t.slot, ok, t.rc, t.revp)
        self._after(t)
        return msg  # type: ignore[return-value]

    def _note_schema(self, t: CTxn, kind: str, kb: bytes, msg: Message) -> None:
        """Record ``kind``'s schema in ``t`` unless known (one dict lookup)."""
        desc = cast(Descriptor, msg.DESCRIPTOR)  # the upb class is this one at run time
        if self._schemas.known.get(kind) is not desc:
            self._schemas.record(t, kind, kb, desc)

    def _put_raw(self, kind: str, id: str, data: bytes, updated_ns: int) -> None:
        """Internal (``pystore load``): write a record exactly as given.

        No hygiene and no schema recording: ``data`` and ``updated_ns`` are
        stored byte for byte.
        """
        kb, ib = encode_kind(kind), encode_id(id)
        if not isinstance(data, bytes):
            raise TypeError(f"data must be bytes, not {type(data).__name__}")
        if isinstance(updated_ns, bool) or not isinstance(updated_ns, int):
            raise TypeError(f"updated_ns must be int, not {type(updated_ns).__name__}")
        if not -(2**63) <= updated_ns < 2**63:
            raise ValueError("updated_ns must fit a signed 64-bit integer")
        if len(data) > MAX_PAYLOAD:
            raise ValueTooLargeError(
                f"record is {len(data)} bytes; a record holds at most {MAX_PAYLOAD}"
            )
        self._run(True, CTxn.put, kb, ib, data, updated_ns, False)

    def delete_resource(self, kind: str, id: str, *, if_revision: int | None = None) -> bool:
        """Delete ``kind/id``; True if it existed.  ``if_revision=N`` deletes only
        if the stored record's revision is N, else ConflictError."""
        fw = self._fw
        if fw is not None:
            if if_revision is None:
                r = fw.delete_one(kind, id)
                if r is not None:
                    if r >= 0:
                        return r > 0
                    fw.delete_failed(self, r, kind, id, None)  # type: ignore[arg-type]
            else:
                found = fw.delete(self, kind, id, if_revision)  # type: ignore[arg-type]
                if found is not None:
                    return found
        kb, ib = encode_kind(kind), encode_id(id)
        expected = _check_revision(if_revision)
        if self._group is not None:
            return bool(self._group_write(Op(kind, kb, ib, None, if_revision=expected)))
        existed: bool = self._run(True, CTxn.delete, kb, ib, expected)
        return existed

    def delete_resources_by_kind(self, kind: str) -> int:
        """Delete every resource of a kind in one write transaction; the count."""
        if self._fw is not None:
            count = self._fw.delete_kind(self, kind)  # type: ignore[arg-type]
            if count is not None:
                return count
        kb = encode_kind(kind)
        n: int = self._run(True, CTxn.delete_kind, kb)
        return n

    # -- reads ------------------------------------------------------------

    @overload
    def get_resource(self, kind: str, id: str, msg_or_type: type[M]) -> M: ...
    @overload
    def get_resource(self, kind: str, id: str, msg_or_type: M) -> M: ...

    def get_resource(self, kind: str, id: str, msg_or_type: M | type[M]) -> M:
        """Read ``kind/id`` into a message.

        Given an instance, its content is replaced and it is returned; given
        a message class, a new instance is returned.  NotFoundError if absent.
        """
        kb, ib = encode_kind(kind), encode_id(id)
        if isinstance(msg_or_type, Message):
            msg = msg_or_type
        else:
            msg = _check_type(msg_or_type, "msg_or_type")()  # type: ignore[assignment]
        desc = msg.DESCRIPTOR
        if self._schemas.read_ok.get(kind) is not desc:  # the hot path: one lookup
            self._check_read_type(kind, kb, desc)  # type: ignore[arg-type]
        data = self._read_one(kb, ib)[0]
        self._recheck_type(kind, kb, desc)  # type: ignore[arg-type]
        return _parse(msg, data, kind, id)

    def get_record(self, kind: str, id: str) -> Resource:
        """The raw record of ``kind/id``: Resource(id, kind, data, updated_at, revision)."""
        kb, ib = encode_kind(kind), encode_id(id)
        data, ns, rev = self._read_one(kb, ib)
        return Resource(id, kind, data, ns_to_datetime(ns), ns, rev)

    def get_bytes(self, kind: str, id: str) -> bytes:
        """The raw protobuf bytes of ``kind/id``; NotFoundError if absent."""
        return self._read_one(encode_kind(kind), encode_id(id))[0]

    def _read_one(self, kb: bytes, ib: bytes) -> tuple[bytes, int, int]:
        result: tuple[bytes, int, int] = self._run(False, CTxn.get, kb, ib)
        return result

    @overload
    def list_resources(self, kind: str, msg_type: None = None) -> list[bytes]: ...
    @overload
    def list_resources(self, kind: str, msg_type: type[M]) -> list[M]: ...

    def list_resources(self, kind: str, msg_type: type[M] | None = None) -> list[bytes] | list[M]:
        """Every resource of a kind in key order: raw protobuf bytes, or parsed as ``msg_type``.

        InvalidMessageError if the store recorded another type for ``kind``.
        """
        kb = encode_kind(kind)
        cls = None if msg_type is None else self._read_type(kind, kb, msg_type)
        wire, count = self._run(False, list_wire, kb, None, 0)  # one buffer, parsed once
        if cls is not None:
            self._recheck_type(kind, kb, cls.DESCRIPTOR)  # type: ignore[arg-type]
        parsed = parse_list(wire, count, cls)
        if parsed is not None:
            return parsed
        # A record that does not parse (or a list too big for one message):
        # record by record, so the error names the record.
        records = self._run(False, CTxn.list, kb, None, 0)
        if cls is None:
            return [r[1] for r in records]
        return [
            _parse(cls(), payload, f"{kind}/{i.decode('utf-8', 'replace')}")
            for i, payload, _, _ in records
        ]

    def iter_resources(
        self,
        kind: str,
        msg_type: type[Message] | None = None,
        *,
        after: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Resource]:
        """Resources of a kind with ids strictly after ``after``, in key order.

        With ``msg_type`` each Resource's ``message`` is the parsed message
        (InvalidMessageError if the store recorded another type for the
        kind).  Reads in pages, each in its own short read transaction, so a
        slow consumer never pins old pages; a resource saved or deleted
        during the iteration may or may not be seen.
        """
        kb = encode_kind(kind)
        cursor = None if after is None else encode_id(after) if after != "" else None
        # Bad keys, types and limits fail here, at the call, not at the first next().
        check_key(kb, cursor if cursor is not None else b"_")
        limit = check_limit(limit)
        cls = None if msg_type is None else self._read_type(kind, kb, msg_type)
        if limit == 0:  # nothing to read: a closed store refuses it all the same
            self._run(False, nothing)
        return self._iter(kind, kb, cursor, limit, cls)

    def _iter(
        self,
        kind: str,
        kb: bytes,
        cursor: bytes | None,
        limit: int | None,
        cls: type[Message] | None = None,
    ) -> Iterator[Resource]:
        left = limit
        last_ns: int | None = None
        last_dt = ns_to_datetime(0)
        while left is None or left > 0:
            page = _PAGE if left is None else min(_PAGE, left)
            records = self._run(False, CTxn.list, kb, cursor, page)
            if cls is not None:
                self._recheck_type(kind, kb, cls.DESCRIPTOR)  # type: ignore[arg-type]
            for ib, payload, ns, rev in records:
                if ns != last_ns:  # records saved together share a stamp
                    last_ns, last_dt = ns, ns_to_datetime(ns)
                id = ib.decode("utf-8")
                yield Resource(
                    id, kind, payload, last_dt, ns, rev,
                    message=None if cls is None else _parse(cls(), payload, kind, id),
                )
            if len(records) < page:
                return
            cursor = records[-1][0]
            if left is not None:
                left -= len(records)

    def count(self, kind: str) -> int:
        """Number of resources of a kind."""
        kb = encode_kind(kind)
        n: int = self._run(False, CTxn.count, kb)
        return n

    def kinds(self) -> list[str]:
        """Sorted kinds that hold at least one resource."""
        out: list[str] = self._run(False, CTxn.kinds)
        return out
