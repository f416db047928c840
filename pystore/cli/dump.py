"""Records as JSON: decoding with the stored schemas, dump and load.

The dump format (JSON Lines, documented in docs/format.md):

- first line ``{"pystore_dump": 1, "format_version": 2}``;
- per kind, before its records, if the store holds its schema:
  ``{"schema": {"kind": K, "type": NAME, "descriptor_set": BASE64}}``;
- per kind with a history keep count: ``{"history_keep": {"kind": K, "keep": N}}``,
  then its kept versions, oldest first per id:
  ``{"history": {"kind", "id", "revision", "updated_at", "updated_ns", "data"}}``;
- one line per resource: ``{"kind", "id", "updated_at", "updated_ns",
  "message", "data"}`` where ``message`` is the record decoded to JSON (null
  if it cannot be) and ``data`` the stored protobuf bytes in base64;
- after the records, one ``{"index": {...,"definition": BASE64}}`` line per
  index definition of the dumped kinds, and (for a whole dump) per stream
  ``{"stream": {"name", "forgotten"}}`` when some events were deleted, then
  ``{"event": {"stream", "seq", "recorded_ns", "recorded_at", "data"}}``
  per event.

``load`` writes ``data`` and ``updated_ns`` back unchanged, so a round trip
reproduces every record byte for byte.  A line without ``data`` is encoded
from its ``message`` with the kind's schema.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import functools
import json
import re
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message

from .._lmdb import revs
from .._lmdb._native import lib
from .._lmdb.core import CTxn, check_key, encode_id, encode_kind
from .._lmdb.events import encode_stream
from .._lmdb.hygiene import is_repeated
from .._lmdb.index import check_kind, encode_name, parse_def
from .._lmdb.schema import message_class, read_schema, write_schema
from .._lmdb.wirestrip import WirePlan
from .._seam import op_for
from ..errors import CorruptionError, InvalidKeyError, NotFoundError
from .progress import Progress

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["Decoder", "dump", "format_ns", "load", "record_json"]

DUMP_VERSION = 1
_PAGE = 512
PS_ERR_INDEX_DEF: int = lib.PS_ERR_INDEX_DEF  # a plan the core refuses
_CHUNK_RECORDS = 1000
_CHUNK_BYTES = 8 << 20


def format_ns(ns: int) -> str:
    """RFC 3339 UTC time with nanoseconds, e.g. ``2026-11-26T05:10:00.123456789Z``."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = _second(secs)
    return str(ns) if base is None else f"{base}.{frac:09d}Z"


@functools.lru_cache(maxsize=64)
def _second(secs: int) -> str | None:
    try:
        return _dt.datetime.fromtimestamp(secs, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return None


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$")


def parse_time(text: str) -> int:
    """The inverse of :func:`format_ns`; ValueError if not that shape."""
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"updated_at {text!r} is not an RFC 3339 UTC time")
    base = _dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.UTC)
    frac = int((m.group(2) or "0").ljust(9, "0"))
    return int(base.timestamp()) * 1_000_000_000 + frac


class Decoder:
    """Decodes the records of a store with the schemas recorded in it."""

    def __init__(self) -> None:
        self.schemas: dict[str, tuple[str, bytes] | None] = {}
        self._classes: dict[str, type[Message] | None] = {}
        self.errors: dict[str, str] = {}

    def load(self, txn: CTxn, kind: str) -> tuple[str, bytes] | None:
        if kind not in self.schemas:
            self.schemas[kind] = read_schema(txn, encode_kind(kind))
        return self.schemas[kind]

    def cls(self, txn: CTxn, kind: str) -> type[Message] | None:
        """The message class of ``kind`` (None without a usable schema)."""
        if kind in self._classes:
            return self._classes[kind]
        schema = self.load(txn, kind)
        cls = None
        if schema is not None:
            try:
                cls = message_class(*schema)
            except CorruptionError as exc:
                self.errors[kind] = str(exc)
        self._classes[kind] = cls
        return cls


def decode(cls: type[Message] | None, data: bytes) -> tuple[Message | None, str]:
    """(message, "") or (None, why not)."""
    if cls is None:
        return None, "no schema recorded for this kind"
    try:
        return cls.FromString(data), ""
    except DecodeError as exc:
        return None, f"payload does not parse as {cls.DESCRIPTOR.full_name}: {exc}"


def to_json(msg: Message) -> dict[str, Any]:
    """Proto3 JSON with proto field names; map entries sorted by key, so the
    same record always gives the same text."""
    out = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    _sort_maps(out, cast(Descriptor, msg.DESCRIPTOR))
    return out


_MAP, _LIST, _ONE = 0, 1, 2
# descriptor -> [(field name, how, descriptor to recurse into or None)]
_map_plans: dict[Descriptor, list[tuple[str, int, Descriptor | None]]] = {}


def _may_hold_maps(desc: Descriptor, seen: set[str]) -> bool:
    if desc.full_name.startswith("google.protobuf."):
        return False  # well-known types have their own JSON forms
    if desc.full_name in seen:
        return True  # recursive type: assume so
    seen.add(desc.full_name)
    return bool(_plan(desc, seen))


def _plan(
    desc: Descriptor, seen: set[str] | None = None
) -> list[tuple[str, int, Descriptor | None]]:
    plan = _map_plans.get(desc)
    if plan is not None:
        return plan
    seen = {desc.full_name} if seen is None else seen
    plan = []
    for f in desc.fields:
        sub = f.message_type
        if sub is None or sub.full_name.startswith("google.protobuf."):
            continue
        if sub.GetOptions().map_entry:
            value = sub.fields_by_name["value"].message_type
            keep = value if value is not None and _may_hold_maps(value, set(seen)) else None
            plan.append((f.name, _MAP, keep))
        elif _may_hold_maps(sub, set(seen)):
            plan.append((f.name, _LIST if is_repeated(f) else _ONE, sub))
    _map_plans[desc] = plan
    return plan


def _sort_maps(obj: dict[str, Any], desc: Descriptor) -> None:
    for name, how, sub in _plan(desc):
        value = obj.get(name)
        if value is None:
            continue
        if how == _MAP:
            items = sorted(value.items())
            value.clear()
            value.update(items)
            if sub is not None:
                for v in value.values():
                    _sort_maps(v, sub)
        elif sub is None:
            continue
        elif how == _LIST:
            for v in value:
                _sort_maps(v, sub)
        else:
            _sort_maps(value, sub)


def record_json(
    kind: str, id: str, data: bytes, ns: int, cls: type[Message] | None, *, with_data: bool
) -> dict[str, Any]:
    """The JSON object of one record (the shape of ``get``, ``list`` and ``dump``)."""
    out: dict[str, Any] = {"kind": kind, "id": id, "updated_at": format_ns(ns), "updated_ns": ns}
    msg, why = decode(cls, data)
    out["message"] = None if msg is None else to_json(msg)
    if msg is None:
        out["error"] = why
    if with_data or msg is None:
        out["data"] = base64.b64encode(data).decode("ascii")
    return out


def _records(txn: CTxn, kind: str) -> Iterator[tuple[str, bytes, int]]:
    """Every record of ``kind`` in ``txn``, read a page at a time."""
    kb = encode_kind(kind)
    after: bytes | None = None
    while True:
        page = txn.list(kb, after, _PAGE)
        for ib, data, ns, _ in page:
            yield ib.decode("utf-8", "surrogateescape"), data, ns
        if len(page) < _PAGE:
            return
        after = page[-1][0]


def _history_lines(txn: CTxn, kind: str) -> Iterator[dict[str, Any]]:
    """The history lines of ``kind``: its keep count, then every kept version
    (of live and deleted resources), oldest first per id."""
    kb = encode_kind(kind)
    keep = op_for(txn, revs.history_keep)(txn, kb)
    if keep:
        yield {"history_keep": {"kind": kind, "keep": keep}}
    after: bytes | None = None
    while True:
        ids = op_for(txn, revs.history_ids)(txn, kb, after, _PAGE)
        for ib in ids:
            id = ib.decode("utf-8", "surrogateescape")
            versions = op_for(txn, revs.history)(txn, kind, kb, id, ib, 0)
            try:
                live = txn.get(kb, ib)[2]
            except NotFoundError:
                live = None
            for r in reversed(versions):
                if r.revision == live:
                    continue
                yield {"history": {
                    "kind": kind, "id": id, "revision": r.revision,
                    "updated_at": format_ns(r.updated_ns), "updated_ns": r.updated_ns,
                    "data": base64.b64encode(r.data).decode("ascii"),
                }}
        if len(ids) < _PAGE:
            return
        after = ids[-1]


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def dump(
    store: Store, out: IO[str], kinds: Iterable[str] | None = None, progress: bool = True
) -> int:
    """Write the dump of ``store`` (or of ``kinds``) to ``out``; the record count.

    One read transaction: the dump is a consistent snapshot even while other
    processes write.
    """
    dec = Decoder()
    n = 0
    with store._reading() as t:
        if kinds is not None:
            names = sorted(set(kinds))
        else:  # and the kinds with a keep count, kept versions or a schema
            names = sorted(set(t.kinds()) | set(t.kinds_with_state()))
        total = sum(t.count(encode_kind(k)) for k in names)
        out.write(_line({"pystore_dump": DUMP_VERSION, "format_version": 2}))
        with Progress("dump", total, show=progress) as bar:
            for kind in names:
                schema = dec.load(t, kind)
                if schema is not None:
                    out.write(_line({"schema": {
                        "kind": kind, "type": schema[0],
                        "descriptor_set": base64.b64encode(schema[1]).decode("ascii"),
                    }}))
                for obj in _history_lines(t, kind):
                    out.write(_line(obj))
                cls = dec.cls(t, kind)
                for id, data, ns in _records(t, kind):
                    out.write(_line(record_json(kind, id, data, ns, cls, with_data=True)))
                    n += 1
                    bar.update(n)
        from .query import dump_extras  # (query imports this module)

        dump_extras(store, t, out, names if kinds is not None else None)
    return n


def _holds(txn: CTxn, kind: str, id: str, data: bytes, ns: int) -> bool:
    """Whether ``kind/id`` is stored with exactly these bytes and stamp: a
    load writes it again only if not (which would make a revision and, for a
    kind keeping history, keep the same version twice)."""
    try:
        got = txn.get(encode_kind(kind), encode_id(id))
    except NotFoundError:
        return False
    return got[0] == data and got[1] == ns


class _LoadError(ValueError):
    pass


def _strip_data(
    store: Any, kind: str, data: bytes, schemas: dict[str, tuple[str, bytes]]
) -> bytes:
    """A loaded record's ``data`` without the store's strip fields, when the
    kind's schema (from the file, else the store) says where they are.  The
    wire strip copies everything else byte for byte, so a pystore dump (its
    records already stripped) loads back unchanged.  Bytes that do not parse
    as the kind's type are kept as they are (nothing can be located in them)."""
    schema = schemas.get(kind)
    if schema is None:
        schema = store._schema_of(kind)
        if schema is None:
            return data
        schemas[kind] = schema
    try:
        cls = message_class(*schema)
    except Exception:  # a schema that does not build: the load reports it elsewhere
        return data
    wire: WirePlan | None = store._stripper.wire_plan(cls.DESCRIPTOR)
    if wire is None:
        return data
    out = wire.strip(data)
    if out is not None:
        return out
    msg = cls()
    try:  # the C strip declined (groups, malformed bytes): the slow way
        msg.ParseFromString(data)
    except Exception:
        return data
    stripped: bytes = store._payload(msg, owned=True)
    return stripped


def _field(obj: dict[str, Any], name: str, typ: type, where: str) -> Any:
    value = obj.get(name)
    if not isinstance(value, typ) or isinstance(value, bool):
        raise _LoadError(f"{where}: {name!r} must be a {typ.__name__}")
    return value


def _b64(text: str, where: str, name: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise _LoadError(f"{where}: {name!r} is not valid base64") from None


def _parse_line(
    obj: Any,
    where: str,
    schemas: dict[str, tuple[str, bytes]],
    store_schema: Callable[[str], tuple[str, bytes] | None] | None = None,
    strip: Callable[[Message], bytes] | None = None,
    strip_data: Callable[[str, bytes, dict[str, tuple[str, bytes]]], bytes] | None = None,
) -> tuple[str, Any]:
    """("schema", (kind, name, fds)) | ("record", (kind, id, data, ns)) |
    ("history", (kind, id, data, ns)) | ("history_keep", (kind, keep)) | ("skip", None)."""
    if not isinstance(obj, dict):
        raise _LoadError(f"{where}: expected a JSON object")
    if "pystore_dump" in obj:
        if obj["pystore_dump"] != DUMP_VERSION:
            raise _LoadError(f"{where}: unsupported dump version {obj['pystore_dump']!r}")
        return "skip", None
    for extra in ("index", "stream", "event"):
        if extra in obj:
            return _parse_extra(extra, obj[extra], where)
    if "schema" in obj:
        s = obj["schema"]
        if not isinstance(s, dict):
            raise _LoadError(f"{where}: 'schema' must be an object")
        kind = _field(s, "kind", str, where)
        try:
            check_key(encode_kind(kind), b"_")  # a kind a record could have
        except InvalidKeyError as exc:
            raise _LoadError(f"{where}: schema: {exc}") from None
        name = _field(s, "type", str, where)
        fds = _b64(_field(s, "descriptor_set", str, where), where, "descriptor_set")
        try:
            message_class(name, fds)
        except CorruptionError as exc:
            raise _LoadError(f"{where}: {exc}") from None
        schemas[kind] = (name, fds)
        return "schema", (kind, name, fds)
    if "history_keep" in obj:
        h = obj["history_keep"]
        if not isinstance(h, dict):
            raise _LoadError(f"{where}: 'history_keep' must be an object")
        kind = _field(h, "kind", str, where)
        keep = _field(h, "keep", int, where)
        if not 0 <= keep < 2**64:
            raise _LoadError(f"{where}: 'keep' must be >= 0")
        try:
            check_key(encode_kind(kind), b"_")
        except InvalidKeyError as exc:
            raise _LoadError(f"{where}: {exc}") from None
        return "history_keep", (kind, keep)
    if "history" in obj:
        h = obj["history"]
        if not isinstance(h, dict) or not isinstance(h.get("data"), str):
            raise _LoadError(f"{where}: 'history' must be an object with 'data' (base64)")
        _, item = _parse_line(
            {k: v for k, v in h.items() if k != "revision"}, where, schemas, store_schema,
            strip, strip_data,
        )
        return "history", item
    kind = _field(obj, "kind", str, where)
    id = _field(obj, "id", str, where)
    try:
        check_key(encode_kind(kind), encode_id(id))
    except InvalidKeyError as exc:
        raise _LoadError(f"{where}: {exc}") from None
    if "updated_ns" in obj:
        ns = _field(obj, "updated_ns", int, where)
        if not -(2**63) <= ns < 2**63:
            raise _LoadError(f"{where}: 'updated_ns' must fit a signed 64-bit integer")
    elif "updated_at" in obj:
        try:
            ns = parse_time(_field(obj, "updated_at", str, where))
        except (ValueError, OverflowError) as exc:
            raise _LoadError(f"{where}: {exc}") from None
        if not -(2**63) <= ns < 2**63:
            raise _LoadError(f"{where}: 'updated_at' is outside the range of a record's time")
    else:
        ns = time.time_ns()
    if obj.get("data") is not None:
        data = _b64(_field(obj, "data", str, where), where, "data")
        if strip_data is not None:  # hygiene: a foreign dump may hold tenancy values
            data = strip_data(kind, data, schemas)
    elif isinstance(obj.get("message"), dict):
        if kind not in schemas and store_schema is not None:
            found = store_schema(kind)
            if found is not None:
                schemas[kind] = found
        if kind not in schemas:
            raise _LoadError(
                f"{where}: no 'data' and no schema for kind {kind!r} to encode 'message'"
            )
        msg = message_class(*schemas[kind])()
        try:
            json_format.ParseDict(obj["message"], msg)
        except json_format.ParseError as exc:
            raise _LoadError(f"{where}: 'message' does not fit {schemas[kind][0]}: {exc}") from None
        except RecursionError:
            raise _LoadError(f"{where}: 'message' is nested too deeply") from None
        data = strip(msg) if strip is not None else msg.SerializeToString()
    else:
        raise _LoadError(f"{where}: a record needs 'data' (base64) or 'message' (object)")
    return "record", (kind, id, data, ns)


def _parse_extra(what: str, obj: Any, where: str) -> tuple[str, Any]:
    """An index definition, a stream's forgotten mark or an event line."""
    if not isinstance(obj, dict):
        raise _LoadError(f"{where}: {what!r} must be an object")
    if what == "index":
        blob = _b64(_field(obj, "definition", str, where), where, "definition")
        try:
            d = parse_def(blob)
            check_kind(d.kind)
            encode_name(d.name)
        except (struct.error, ValueError, TypeError, InvalidKeyError) as exc:
            raise _LoadError(f"{where}: bad index definition: {exc}") from None
        return "index", blob
    if what == "stream":
        name = _field(obj, "name", str, where)
        _stream(name, where)
        forgotten = _field(obj, "forgotten", int, where)
        if not 0 <= forgotten < 2**63:
            raise _LoadError(f"{where}: 'forgotten' must be in 0..2**63-1")
        return "stream", (name, forgotten)
    stream = _field(obj, "stream", str, where)
    _stream(stream, where)
    seq = _field(obj, "seq", int, where)
    ns = _field(obj, "recorded_ns", int, where)
    if not 1 <= seq < 2**63 or not -(2**63) <= ns < 2**63:
        raise _LoadError(f"{where}: 'seq' or 'recorded_ns' out of range")
    data = _b64(_field(obj, "data", str, where), where, "data")
    return "event", (stream, seq, data, ns)


def _stream(name: str, where: str) -> None:
    try:
        encode_stream(name)
    except InvalidKeyError as exc:
        raise _LoadError(f"{where}: {exc}") from None


def read_start(src: IO[str], name: str) -> list[str]:
    """The lines of ``src`` up to its first non-blank one, which is checked
    to be JSON as ``load`` checks it (the same error): ``pystore load`` reads
    them before it opens the store, so a file that is no dump creates no
    store.  ``load`` gets them back first (``itertools.chain(head, src)``)."""
    head: list[str] = []
    for text in src:
        head.append(text)
        if text.strip():
            break
    else:  # an empty input (e.g. of a failed `pystore dump ... |`) is no dump
        raise _LoadError(f"{name}: empty: no dump to load")
    for _ in _lines(head, name):  # the same line numbers: head starts at line 1
        pass
    return head


def _lines(src: Iterable[str], name: str) -> Iterator[tuple[str, Any, int]]:
    """(where, parsed JSON, characters read so far) of each non-blank line."""
    read = 0
    for no, text in enumerate(src, 1):
        read += len(text)
        if not text.strip():
            continue
        where = f"{name}:{no}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _LoadError(f"{where}: not JSON: {exc.msg}") from None
        except RecursionError:
            raise _LoadError(f"{where}: JSON nested too deeply") from None
        yield where, obj, read


def load(
    store: Store, src: Iterable[str], name: str = "-", size: int = 0,
    extras: dict[str, int] | None = None,
) -> tuple[int, int]:
    """Load a dump into ``store``: (records, schemas) written.

    One write transaction per chunk of up to 1000 lines or 8 MiB, so a
    failure keeps every earlier chunk; loading is idempotent (upserts).
    Raises ValueError naming the file and line of bad input.
    """
    schemas: dict[str, tuple[str, bytes]] = {}
    records = nschemas = 0
    chunk: list[tuple[str, Any, str]] = []
    chunk_bytes = 0

    def flush() -> None:
        nonlocal chunk, chunk_bytes
        if not chunk:
            return
        with store.transaction() as tx:
            ctxn = tx._begin(True)
            # Kept versions get revisions of their own, below the chunk's.
            n_hist = sum(1 for what, _, _ in chunk if what == "history")
            label = op_for(ctxn, revs.reserve)(ctxn, n_hist) if n_hist else 0
            for what, item, where in chunk:
                if what == "schema":
                    kind, tname, fds = item
                    write_schema(ctxn, encode_kind(kind), tname.encode("utf-8"), fds)
                elif what == "index":
                    try:
                        tx._create_index_raw(item)
                    except CorruptionError as exc:
                        if exc.code != PS_ERR_INDEX_DEF:
                            raise
                        raise _LoadError(f"{where}: bad index definition: {exc}") from None
                elif what == "stream":
                    tx.delete_events(item[0], upto=item[1])
                elif what == "event":
                    tx._append_raw(*item)
                elif what == "history_keep":
                    op_for(ctxn, revs.history_set)(ctxn, encode_kind(item[0]), item[1])
                elif what == "history":
                    kind, id, data, ns = item
                    kb, ib = encode_kind(kind), encode_id(id)
                    held = op_for(ctxn, revs.history)(ctxn, kind, kb, id, ib, 0)
                    # loaded before (a load is idempotent): not kept twice
                    if not any(r.data == data and r.updated_ns == ns for r in held):
                        op_for(ctxn, revs.history_load)(ctxn, kb, ib, data, ns, label)
                    label += 1
                elif not _holds(ctxn, *item):
                    tx._put_raw(*item)
        for what, item, _ in chunk:
            if what == "schema":
                store._schemas.forget(item[0])
        chunk, chunk_bytes = [], 0

    # A networked backend commits smaller chunks (etcd: at most 128 operations
    # and 1.5 MiB per transaction).
    max_records, max_bytes = getattr(store, "_load_chunk", (_CHUNK_RECORDS, _CHUNK_BYTES))
    with Progress("load", size, " B" if size else "") as bar:
        for where, obj, read in _lines(src, name):
            # A record given as 'message' is encoded here: its tenancy
            # fields are stripped like those of every other write.
            what, item = _parse_line(
                obj, where, schemas, store._schema_of,
                lambda m: store._payload(m, owned=True),
                lambda kind, data, known: _strip_data(store, kind, data, known),
            )
            if what == "skip":
                continue
            chunk.append((what, item, where))
            if what == "schema":
                nschemas += 1
            elif what == "record":
                records += 1
                chunk_bytes += len(item[2])
            elif what == "history":
                chunk_bytes += len(item[2])
            elif what in ("index", "event", "stream"):
                if extras is not None and what != "stream":
                    extras[what] += 1
                chunk_bytes += len(item[2]) if what == "event" else 0
            if len(chunk) >= max_records or chunk_bytes >= max_bytes:
                flush()
            bar.update(read)
        flush()
    return records, nschemas
