"""``Store``'s reads in one C call each, through a per-thread read context.

Each thread that reads a Store gets its own ``ps_rctx`` (``csrc/ps_fastread.c``):
the handle, a payload buffer and scan buffers, kept between calls in the
Store's thread state.  A get is ``ps_rget(ctx, b"Kind/id")``: the payload
length comes back as the return value, the bytes are sliced from the
thread's buffer (or parsed from a view of it).  ``list_resources`` raw and
``iter_resources`` slice the payloads straight from the map while the scan's
read transaction is held (it is ended in a ``finally`` before anything else
runs); ``list_resources`` parsed parses the kind's records as one wrapper
message from the thread's kept wire buffer.

Every unusual case -- a bad key, a missing or damaged record, a closed or
forked store, this thread inside ``transaction()`` -- leaves the fast path
for the general one (the next class in ``Store``'s MRO, ``ResourceOps``: reached
through ``super()``, never imported here), which raises the
same typed errors as always (answering again from a new read transaction).
Closed and forked stores are caught by the C call itself (``PS_ERR_CLOSED``,
``PS_ERR_FORKED``), so the fast path checks only this thread's transaction.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message

from .._messages import check_type, decode_error, parse_into
from ..errors import NotFoundError, TransactionError
from ..records import Resource, ns_to_datetime
from . import index as _ix
from ._native import ffi, lib
from .core import check_key, encode_kind, holds_txn
from .schema import SchemaRecorder
from .wire import ITEMS_FIELD, MAX_WIRE, list_class

if TYPE_CHECKING:
    from .._ops import ResourceOps as _General
    from ..store import _ThreadState
else:
    _General = object  # at run time a plain mixin: super() finds ResourceOps in Store's MRO

__all__ = ["FastReads"]

M = TypeVar("M", bound=Message)

assert ITEMS_FIELD == lib.PS_RSCAN_FIELD

BUF = 1 << 16  # a thread's payload buffer
KEEP = 1 << 20  # payload buffers grown up to this are kept; larger reads go the general way
SCAN_KEEP = 16 << 20  # scan buffers (wire bytes, offsets) kept between calls
PAGE = 512  # iter_resources: records per page, each page in its own read txn

_rget = lib.ps_rget
_rget1 = lib.ps_rget1
_rscan = lib.ps_rscan
_rend = lib.ps_rscan_end
_rwire = lib.ps_rscan_wire
_trim = lib.ps_rctx_trim
_from_buffer = ffi.from_buffer
_release = ffi.release
_buffer = ffi.buffer
_unpack = ffi.unpack
_I64P = ffi.typeof("int64_t *")
_rfind = lib.ps_rfind
_NONE: int = lib.PS_RNONE
_BIG: int = lib.PS_RBIG
_Q_TEXT: int = lib.PS_Q_TEXT
_NULL = ffi.NULL
_META = type(descriptor_pb2.FileDescriptorProto)  # the class of generated message classes
_TYPES: set[type] = set()  # message classes find_one has checked
_PAYLOADS: int = lib.PS_RSCAN_PAYLOADS
_RECORDS: int = lib.PS_RSCAN_RECORDS

# Resource is a frozen slotted dataclass: its __init__ sets each field via
# object.__setattr__ (~0.9 us).  A plain class with the same slots is filled
# by ordinary attribute stores, then becomes a Resource (the layouts are the
# same, so CPython allows the __class__ assignment): ~0.4 us.
_new = object.__new__
_UTC = _dt.UTC
_DT = _dt.datetime


class _Twin:
    # Resource's fields, in its order (if they ever differ, _TWIN is False).
    __slots__ = ("id", "kind", "data", "updated_at", "updated_ns", "revision", "message")  # noqa: RUF023
    id: str
    kind: str
    data: bytes
    updated_at: Any
    updated_ns: int
    revision: int
    message: Any


def _twin_works() -> bool:
    if _Twin.__slots__ != Resource.__slots__:
        return False
    try:
        r = _new(_Twin)
        r.__class__ = Resource  # type: ignore[assignment]
    except TypeError:
        return False
    return True


_TWIN = _twin_works()


class _Stamps:
    """``ns_to_datetime`` for a run of stamps: the date and time of each
    second met are kept (up to KEEP seconds), so a stamp costs one datetime
    constructor (~0.15 us) instead of timedelta arithmetic (~0.55 us), also
    when the records of a page alternate between a few seconds (records
    saved in one transaction, listed in key order)."""

    __slots__ = ("fields", "known", "sec")
    KEEP = 4096

    def __init__(self) -> None:
        self.sec: int | None = None
        self.fields: tuple[int, int, int, int, int, int] = (1970, 1, 1, 0, 0, 0)
        self.known: dict[int, tuple[int, int, int, int, int, int]] = {}

    def second(self, sec: int) -> tuple[int, int, int, int, int, int]:
        """The (year, month, day, hour, minute, second) of ``sec``, made current."""
        f = self.known.get(sec)
        if f is None:
            if len(self.known) >= self.KEEP:
                self.known.clear()
            b = ns_to_datetime(sec * 1_000_000_000)
            f = self.known[sec] = (b.year, b.month, b.day, b.hour, b.minute, b.second)
        self.sec, self.fields = sec, f
        return f

    def at(self, ns: int) -> _dt.datetime:
        sec, us = divmod(ns // 1000, 1_000_000)  # floors, as ns_to_datetime
        if sec != self.sec:
            self.second(sec)
        return _DT(*self.fields, us, _UTC)


class Reader:
    """One thread's read context on one Store (kept in the Store's thread state)."""

    __slots__ = ("busy", "cap", "ctx", "env", "held", "kp", "ok", "okc", "slot", "tag", "view",
                 "wire")

    def __init__(self, env: Any, schemas: SchemaRecorder) -> None:
        out = ffi.new("ps_rctx **")
        rc = lib.ps_rctx_new(env, BUF, SCAN_KEEP, out)
        if rc:
            raise MemoryError("cannot allocate a read context")
        self.env = env  # the context reads it: it must outlive the context
        self.ctx: Any = ffi.gc(out[0], lib.ps_rctx_free)
        # The context's reads fail (the general path answers) while a kind's
        # type changed since the store's checks (ps_epoch.c): the slot is the
        # epoch they were made at, kept alive here as long as the context.
        self.slot = schemas.slot
        lib.ps_rctx_watch_epoch(self.ctx, self.slot)
        ok, okc = schemas.read_ok, schemas.read_ok_cls
        tag = ffi.new("char[]", lib.PS_RCTX_TAG)
        lib.ps_rctx_tag(self.ctx, tag)
        # The context's tag (it names the context to ps_rget1) + b"Kind/",
        # for kinds already checked; alive as long as this Reader (and ctx).
        self.tag: bytes = _unpack(tag, lib.PS_RCTX_TAG)
        self.kp: dict[str, bytes] = {}
        # The store's SchemaRecorder.read_ok (the same dict): kind -> the
        # descriptor readers may parse it as without checking again.
        self.ok = ok
        self.okc = okc  # its read_ok_cls: kind -> a message class checked as above
        # True while an offset scan holds its read txn (see Store.close).
        self.held = False
        # True from a get's C call until its bytes are sliced from the
        # buffer: a get that runs in between (a signal handler's, in this
        # thread) goes the general way instead of overwriting them.
        self.busy = False
        # list_resources parsed: the wire bytes of the last list, kept (up
        # to SCAN_KEEP) for the next one
        self.wire = bytearray()
        self.cap: int = 0
        self.view: Any = None
        self._views()

    def _views(self) -> None:
        """The views of the payload buffer as it is now; ``cap`` is stored
        last, with them and after no check point, so ``cap != ctx.cap``
        tells views left behind by an interrupt (see ``grow``)."""
        c = self.ctx
        cap = -1
        while cap != c.cap:  # again if it grew meanwhile (a handler's read)
            cap = c.cap
            view = _buffer(c.buf, cap)
        self.view, self.cap = view, cap

    def grow(self, n: int) -> bool:
        """Make the payload buffer hold ``n`` bytes; False if over KEEP.
        The buffer is reallocated, so the caller takes this Reader off the
        thread's fast path until this returns: an interrupt after the C
        call leaves views of the freed buffer, which ``_reader`` renews."""
        if n > KEEP:
            return False
        rc = lib.ps_rctx_reserve(self.ctx, n)
        self._views()
        return not rc


def _decode(parser: Message, data: Any) -> bool:
    try:
        parser.ParseFromString(data)
    except (DecodeError, RecursionError):
        return False
    return True


def _parses_bytearray() -> bool:
    """Whether this protobuf runtime parses a bytearray as it is (upb in
    recent releases); older ones accept only bytes (a copy, then)."""
    try:
        descriptor_pb2.FileDescriptorProto().ParseFromString(bytearray())  # type: ignore[arg-type]
    except TypeError:
        return False
    return True


_BYTEARRAY_OK = _parses_bytearray()


class FastReads(_General):
    """The fast read methods of an LMDB ``Store``: a mixin placed before
    ``ResourceOps`` in ``Store``'s bases, whose methods each fall back to
    the general one with ``super()``.

    Needs ``self._env`` and ``self._tls`` (a ``threading.local`` with class
    defaults ``txn = None``, ``rd = None`` and ``fast = None``).  A subclass
    for another backend (``EtcdStore``) names the general methods again.
    """

    _env: Any
    _tls: _ThreadState
    _kp: dict[str, bytes]  # kind -> b"Kind/", for kinds already checked

    _qs: dict[tuple[str, str], tuple[bytes, bytes]]  # (kind, index) -> encoded, checked

    _FAST = ("get_bytes", "get_resource", "get_record", "list_resources", "_iter", "find_one")

    def _reader(self) -> Reader | None:
        """This thread's Reader; None when the general path must answer
        (this thread holds a transaction, or it raises the store's error)."""
        tls = self._tls
        if tls.txn is not None and holds_txn(tls):
            return None
        rd: Reader | None = tls.rd
        if rd is None:
            if self.__dict__.get("_kp") is None:
                self._kp, self._qs = {}, {}
            try:
                self._check_usable()  # type: ignore[attr-defined]
            except Exception:
                return None  # the general path raises it
            rd = tls.rd = Reader(self._env, self._schemas)
        elif rd.cap != rd.ctx.cap:
            rd._views()  # an interrupt in grow() left them on the freed buffer
        tls.fast = rd  # txn is None (checked above): the fast gets may use it
        return rd

    def _prefix(self, kind: object) -> bytes | None:
        """b"Kind/" for a valid kind (remembered), else None."""
        try:
            kb = encode_kind(kind)
            check_key(kb, b"_")
        except Exception:
            return None
        prefix = kb + b"/"
        self._kp[cast(str, kind)] = prefix
        rd: Reader | None = self._tls.rd
        if rd is not None:
            rd.kp[cast(str, kind)] = rd.tag + prefix
        return prefix

    def _key(self, kind: str, id: str) -> bytes | None:
        try:
            prefix = self._kp[kind]
            rd: Reader = self._tls.rd
            if kind not in rd.kp:
                rd.kp[kind] = rd.tag + prefix
        except (KeyError, TypeError):
            prefix = self._prefix(kind)  # type: ignore[assignment]
            if prefix is None:
                return None
        if id.__class__ is not str or "\0" in id:
            return None
        try:
            return prefix + id.encode()
        except UnicodeEncodeError:
            return None

    # -- gets ---------------------------------------------------------------

    def _get_n(self, kind: str, id: str) -> tuple[bytes, int, int] | None:
        """Read kind/id: (payload, updated_ns, revision), or None when the
        general path must answer.  They are taken from the thread's buffer
        and context right after the C call, before any allocation that may
        run the garbage collector: a finalizer reading this store in this
        thread would overwrite (or grow) them."""
        tls = self._tls
        rd: Reader | None = tls.fast
        if rd is None:
            rd = self._reader()
            if rd is None:
                return None
        if rd.busy:  # in the middle of another get of this thread
            return None
        key = self._key(kind, id)
        if key is None:
            return None
        c = rd.ctx
        rd.busy = True
        try:
            while True:
                n: int = _rget(c, key)
                if n >= 0:
                    return rd.view[:n], c.updated_ns, c.revision
                if n != _BIG:
                    return None
                tls.fast = None  # until grow() returns: see there
                if not rd.grow(c.len):
                    return None
                tls.fast = rd
        finally:
            rd.busy = False

    def get_bytes(self, kind: str, id: str) -> bytes:
        # The hot path: this thread's Reader while it holds no transaction
        # (tls.fast), a kind it has read before (rd.kp: its tagged prefix), a
        # str id without NUL (the C call reads up to the first NUL).  Any
        # other case -- and a missing, too-big or damaged record (n < 0) --
        # goes the general way, which raises the right error.
        rd: Reader | None = self._tls.fast
        if rd is not None and not rd.busy:
            rd.busy = True  # until the bytes are out of the buffer (see Reader)
            try:
                if "\0" not in id:
                    n: int = _rget1(rd.kp[kind] + id.encode())  # rd keeps the tagged context
                    if n >= 0:  # the whole payload is in the buffer
                        return rd.view[:n]  # type: ignore[no-any-return]
            except (KeyError, TypeError, AttributeError, UnicodeEncodeError):
                pass
            finally:
                rd.busy = False
        got = self._get_n(kind, id)
        if got is None:
            self._adopt_epoch()  # (a type change stops the fast reads until adopted)
            return super().get_bytes(kind, id)
        return got[0]

    @overload
    def get_resource(self, kind: str, id: str, msg_or_type: type[M]) -> M: ...
    @overload
    def get_resource(self, kind: str, id: str, msg_or_type: M) -> M: ...

    def get_resource(self, kind: str, id: str, msg_or_type: M | type[M]) -> M:
        rd: Reader | None = self._tls.fast
        if rd is None:
            rd = self._reader()  # this thread's first read (None: the general path)
            if rd is None:  # this thread holds a transaction, or the store fails
                return super().get_resource(kind, id, msg_or_type)
        if rd.busy:  # in the middle of another get of this thread (see Reader)
            return super().get_resource(kind, id, msg_or_type)
        msg: Any = msg_or_type
        parse: Any  # the class's ParseFromString, called as parse(msg, data)
        n = -1
        rd.busy = True
        try:
            if "\0" not in id:
                if rd.okc.get(kind) is msg:  # a class checked as below: one lookup
                    # The class's parse method, called as parse(msg, data): no
                    # bound method made per get (~0.1 us of a ~4 us get).
                    parse = msg_or_type.ParseFromString  # (msg is that class)
                    msg = msg()  # type: ignore[misc]  # (before the read: see below)
                    n = _rget1(rd.kp[kind] + id.encode())
                elif msg.__class__ is _META:  # a generated message class
                    # A type this store checked against the kind's schema.
                    if rd.ok.get(kind) is msg.DESCRIPTOR:
                        # Remembered by class, then checked again: a settle
                        # or forget in between (read_ok's entry changed,
                        # then read_ok_cls's dropped) is not overwritten.
                        rd.okc[kind] = msg
                        if rd.ok.get(kind) is not msg.DESCRIPTOR:
                            rd.okc.pop(kind, None)
                        # The message is made before the read: allocations
                        # may run the garbage collector, whose finalizers
                        # may read into the buffer.
                        parse = msg.ParseFromString
                        msg = msg()
                        n = _rget1(rd.kp[kind] + id.encode())
                elif isinstance(msg, Message) and rd.ok.get(kind) is msg.DESCRIPTOR:
                    parse = msg.__class__.ParseFromString
                    n = _rget1(rd.kp[kind] + id.encode())
            if n >= 0:
                data = rd.view[:n]
        except KeyError:
            n = _BIG  # a kind new to this thread: _get_n checks and adds it
        except (TypeError, AttributeError, UnicodeEncodeError):
            pass
        finally:
            rd.busy = False
        if n >= 0:
            try:
                parse(msg, data)  # bytes: upb parses them as they are
            except DecodeError as exc:
                raise decode_error(f"{kind}/{id}", msg, exc) from None
            return msg  # type: ignore[no-any-return]
        if n == _BIG:  # the type is checked; the record is big, or the kind new here
            if msg.__class__ is _META:
                msg = msg()
            got = self._get_n(kind, id)  # grows the buffer (or None: too big, or bad)
            if got is not None:
                return parse_into(msg, got[0], kind, id)  # type: ignore[no-any-return]
        return super().get_resource(kind, id, msg)  # type: ignore[no-any-return]

    def get_record(self, kind: str, id: str) -> Resource:
        got = self._get_n(kind, id)
        if got is None:
            self._adopt_epoch()
            return super().get_record(kind, id)
        data, ns, rev = got
        return Resource(id, kind, data, ns_to_datetime(ns), ns, rev)

    # -- index lookups -------------------------------------------------------

    def find_one(self, kind: str, index: str, value: object, msg_type: type[M]) -> M:
        rd: Reader | None = self._tls.fast
        if rd is None:
            rd = self._reader()  # this thread's first read (None: the general path)
            if rd is None:  # this thread holds a transaction, or the store fails
                return super().find_one(kind, index, value, msg_type)
        try:
            kb, nb = self._qs[kind, index]
        except (KeyError, TypeError):
            try:
                kb, nb = _ix.check_kind(kind), _ix.encode_name(index)
            except Exception:
                return super().find_one(kind, index, value, msg_type)
            self._qs[kind, index] = kb, nb
        mkey: Any = _NULL
        if value.__class__ is str:
            try:
                qtype, sv, num = _Q_TEXT, value.encode(), 0
            except UnicodeEncodeError:
                return super().find_one(kind, index, value, msg_type)
        else:
            q = _ix.query_args(value)
            if q is None:
                return super().find_one(kind, index, value, msg_type)
            qtype, sv, num, mkey = q
        try:
            known = msg_type in _TYPES
        except TypeError:  # unhashable: not a class
            known = False
        if not known:
            _TYPES.add(check_type(msg_type))
        if self._schemas.read_ok.get(kind) is not msg_type.DESCRIPTOR:
            return super().find_one(kind, index, value, msg_type)  # checks the type
        mlen = 0 if mkey is _NULL else len(mkey)
        msg = msg_type()  # before the read: it may run the collector (see get_resource)
        parse = msg_type.ParseFromString  # called as parse(msg, data): no bound method
        if rd.busy:  # in the middle of another get of this thread (see Reader)
            return super().find_one(kind, index, value, msg_type)
        rd.busy = True
        try:
            n: int = _rfind(rd.ctx, kb, len(kb), nb, len(nb), qtype, sv, len(sv), num, mkey, mlen)
            if n >= 0:
                data = rd.view[:n]
        finally:
            rd.busy = False
        if n == _NONE:
            raise NotFoundError(f"no {kind} with {index} = {value!r}")
        if n < 0:  # an error (raised there), or a record past the buffer (_BIG)
            return super().find_one(kind, index, value, msg_type)
        try:
            parse(msg, data)
        except DecodeError as exc:
            raise decode_error(f"{kind} by {index}", msg, exc) from None
        return msg

    # -- lists --------------------------------------------------------------

    @overload
    def list_resources(self, kind: str, msg_type: None = None) -> list[bytes]: ...
    @overload
    def list_resources(self, kind: str, msg_type: type[M]) -> list[M]: ...

    def list_resources(self, kind: str, msg_type: type[M] | None = None) -> list[bytes] | list[M]:
        out: Any
        rd = self._reader()
        prefix = None if rd is None else self._key_prefix(kind)
        if rd is None or prefix is None:
            return super().list_resources(kind, msg_type)
        if msg_type is None:
            out = _list_payloads(rd, prefix)
        else:
            cls = check_type(msg_type)
            desc = cast(Descriptor, cls.DESCRIPTOR)
            if self._schemas.read_ok.get(kind) is not desc:
                return super().list_resources(kind, msg_type)
            out = _list_parsed(rd, prefix, cls)
        if out is None:  # a damaged record or another oddity: named there
            self._adopt_epoch()  # (or a type change: see get_bytes)
            return super().list_resources(kind, msg_type)
        return cast("list[bytes] | list[M]", out)

    def _check_close(self) -> None:
        """Store.close() from code that runs in the middle of this thread's
        offset scan (a signal handler): close would wait for that scan's
        read txn, which cannot end before the handler returns."""
        rd = getattr(self._tls, "rd", None)
        if rd is not None and rd.held:
            raise TransactionError(
                "close() while this thread is reading the store (called from a signal "
                "handler or a finalizer?): close after the read returns"
            )

    def _key_prefix(self, kind: object) -> bytes | None:
        try:
            return self._kp[kind]  # type: ignore[index]
        except (KeyError, TypeError):
            return self._prefix(kind)

    def _iter(
        self,
        kind: str,
        kb: bytes,
        cursor: bytes | None,
        limit: int | None,
        cls: type[Message] | None = None,
    ) -> Iterator[Resource]:
        prefix = kb + b"/"
        plen = len(prefix)
        left = limit
        last_ns: int | None = None
        last_dt = ns_to_datetime(0)
        stamps = _Stamps()
        y, mo, d, h, mi, sc = stamps.fields  # of stamps.sec (None: no second yet)
        while left is None or left > 0:
            page = PAGE if left is None else min(PAGE, left)
            rd = self._reader()
            if rd is None:  # closed meanwhile, or inside a transaction: as before
                yield from super()._iter(kind, kb, cursor, left, cls)
                return
            start = prefix if cursor is None else prefix + cursor
            cols = _scan_records(rd, start, plen, page)
            if cols is None:  # a damaged record: the general path names it
                if cls is None:  # (or a type change: see get_bytes)
                    self._adopt_epoch()
                else:  # (the general _iter trusts the check made before it)
                    self._recheck_type(kind, kb, cls.DESCRIPTOR)  # type: ignore[arg-type]
                yield from super()._iter(kind, kb, cursor, left, cls)
                return
            ids = cols[0]
            for id, payload, ns, rev in zip(*cols, strict=True):
                if ns != last_ns:  # records saved together share a stamp
                    sec, us = divmod(ns // 1000, 1_000_000)  # as stamps.at(ns), inline
                    if sec != stamps.sec:
                        y, mo, d, h, mi, sc = stamps.second(sec)
                    last_ns, last_dt = ns, _DT(y, mo, d, h, mi, sc, us, _UTC)
                msg = None
                if cls is not None:
                    msg = cls()
                    try:
                        msg.ParseFromString(payload)
                    except DecodeError as exc:
                        raise decode_error(f"{kind}/{id}", msg, exc) from None
                if _TWIN:
                    r = _new(_Twin)
                    r.id = id
                    r.kind = kind
                    r.data = payload
                    r.updated_at = last_dt
                    r.updated_ns = ns
                    r.revision = rev
                    r.message = msg
                    r.__class__ = Resource  # type: ignore[assignment]
                    yield r  # type: ignore[misc]
                else:
                    yield Resource(id, kind, payload, last_dt, ns, rev, message=msg)
            if len(ids) < page:
                return
            cursor = ids[-1].encode()  # the next page starts after it
            if left is not None:
                left -= len(ids)


# _SCAN_NOTE: a scan holds its read txn (rd.held) while it copies out; code
# that runs meanwhile in this thread (a signal handler, a finalizer) and
# scans too takes the general path: the context's scan is the outer one's,
# and ending it (each scan's finally does) would pull the pages from under
# it.  Each finally marks the thread out of the scan BEFORE the C call
# that ends it: an interrupt at the check point after that call would
# otherwise leave the mark for good (and every close() in this thread
# refused); a read between the mark and the call cannot run (no check
# point), and one after it finds the scan ended.


def _as_i64(p: Any) -> Any:
    return ffi.cast(_I64P, p)


def _list_payloads(rd: Reader, prefix: bytes) -> list[bytes] | None:
    """The payloads of a kind, sliced from the map under one held read txn
    (None: take the general path)."""
    if rd.held:
        return None  # a read in the middle of this thread's scan (see _SCAN_NOTE)
    plen = len(prefix)
    ctx = rd.ctx
    rd.held = True
    try:
        n: int = _rscan(ctx, prefix, plen, plen, 0, _PAYLOADS)
        if n <= 0:
            return [] if n == 0 else None
        offs = _unpack(ctx.offs, 2 * n)
        get = _buffer(ctx.base, ctx.span).__getitem__
        return list(map(get, map(slice, offs[0::2], offs[1::2])))
    finally:
        rd.held = False  # first: the interrupt point is after the C call
        _rend(ctx)
        _trim(ctx)  # a huge kind's offsets are not kept


def _scan_records(
    rd: Reader, start: bytes, plen: int, limit: int
) -> tuple[list[str], list[bytes], list[int], list[int]] | None:
    """Up to ``limit`` records after ``start``, as columns: (ids, payloads,
    updated_ns, revisions); None for a damaged record or an undecodable id
    (or a read in the middle of this thread's scan: see _SCAN_NOTE)."""
    if rd.held:
        return None
    ctx = rd.ctx
    rd.held = True
    try:
        n: int = _rscan(ctx, start, len(start), plen, limit, _RECORDS)
        if n <= 0:
            return ([], [], [], []) if n == 0 else None
        o = _unpack(_as_i64(ctx.offs), 4 * n)  # stamps are signed
        get = _buffer(ctx.base, ctx.span).__getitem__
        payloads = list(map(get, map(slice, o[0::4], o[1::4])))
        idb = ctx.ids
        joined = _unpack(idb.data, idb.len)  # the ids, joined by NUL
    finally:
        rd.held = False
        _rend(ctx)
    try:
        ids = joined.decode().split("\0")  # UTF-8; one str each, no NUL in any
    except UnicodeDecodeError:
        return None  # the general path names it
    if len(ids) != n:
        return None
    return ids, payloads, o[2::4], o[3::4]


def _wire_into(ctx: Any, wire: bytearray) -> bytearray | None:
    """The payloads of the held offset scan as the wire bytes of the
    wrapper's repeated field, in ``wire`` (or a new bytearray when it is too
    small) sized to them exactly: upb parses a bytearray where it is, where
    bytes made from a buffer would be an 11 MB copy per 10,000 records."""
    p = _from_buffer(wire)
    try:
        need: int = _rwire(ctx, p, len(wire))
    finally:
        _release(p)
    if need < 0 or need > MAX_WIRE:
        return None
    if need != len(wire):
        if need < len(wire):
            del wire[need:]  # keeps the allocation unless it shrinks by half
        else:
            wire = bytearray(need)
        p = _from_buffer(wire)
        try:
            _rwire(ctx, p, need)
        finally:
            _release(p)
    return wire


def _list_parsed(rd: Reader, prefix: bytes, cls: type[Message]) -> list[Any] | None:
    """The records of a kind parsed as one wrapper message from the wire
    bytes gathered under one held read txn, in the Reader's kept bytearray
    (taken while in use: a signal handler's list gets a bytearray of its own)."""
    if rd.held:
        return None  # see _SCAN_NOTE
    plen = len(prefix)
    ctx = rd.ctx
    kept, rd.wire = rd.wire, bytearray()
    rd.held = True
    try:
        n: int = _rscan(ctx, prefix, plen, plen, 0, _PAYLOADS)
        if n <= 0:
            rd.wire = kept  # unused: kept for the next list
            return [] if n == 0 else None
        wire = _wire_into(ctx, kept)
    finally:
        rd.held = False
        _rend(ctx)
        _trim(ctx)
    if wire is None:
        rd.wire = kept
        return None
    wrapper = list_class(cast(Descriptor, cls.DESCRIPTOR))()
    ok = _decode(wrapper, wire if _BYTEARRAY_OK else bytes(wire))
    if len(wire) <= SCAN_KEEP:
        rd.wire = wire  # for the next list (a huge kind's is let go)
    if not ok:
        return None
    items = list(wrapper.items)  # type: ignore[attr-defined]
    if len(items) != n or type(items[0]) is not cls:
        return None
    return items
