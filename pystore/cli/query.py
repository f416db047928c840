"""``pystore find``, ``indexes``, ``events`` and ``reindex``.

``find`` turns its VALUE argument into the index field's type, read from
the stored index definition: text for string fields, UTF-8 bytes for bytes
fields, ``true``/``false`` for bool, an integer (any base Python's
``int(x, 0)`` takes) for integer fields, an integer or a value name (from
the kind's recorded schema) for enums, and ``KEY=VALUE`` for maps.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from google.protobuf.descriptor import FieldDescriptor

from .._lmdb import events as _ev
from .._lmdb import index as _ix
from .._lmdb._native import lib
from .._lmdb.core import records_of
from .._seam import op_for
from ..errors import NotFoundError
from ..records import ns_to_datetime
from . import dump as _dump

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["COMMANDS", "add_commands", "bind"]


def add_commands(cmd: Any) -> None:
    c = cmd("find", "resources of a kind whose index holds VALUE (ids, or --json records)")
    c.add_argument("path", metavar="PATH")
    c.add_argument("kind", metavar="KIND")
    c.add_argument("index", metavar="INDEX")
    c.add_argument("value", metavar="VALUE", help="for a map index: KEY=VALUE")
    c.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="one JSON object per resource")
    c = cmd("indexes", "the store's indexes: kind, name, field, unique, entries")
    c.add_argument("path", metavar="PATH")
    c.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="as JSON")
    c = cmd("events", "the events of a stream in seq order")
    c.add_argument("path", metavar="PATH")
    c.add_argument("stream", metavar="STREAM")
    c.add_argument("--after", type=_seq, default=0, metavar="N", help="only seqs above N")
    c.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="one JSON object per event (data in base64)")
    c = cmd("reindex", "rebuild one index from the records")
    c.add_argument("path", metavar="PATH")
    c.add_argument("kind", metavar="KIND")
    c.add_argument("name", metavar="NAME")


def _seq(text: str) -> int:
    """``events --after``: out of range is a usage error (exit 2), as other bad values."""
    try:
        return _ev.check_seq(int(text), "--after", 0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


_INTS = {lib.PS_IDX_INT32, lib.PS_IDX_INT64, lib.PS_IDX_UINT32, lib.PS_IDX_UINT64,
         lib.PS_IDX_SINT32, lib.PS_IDX_SINT64, lib.PS_IDX_FIXED32, lib.PS_IDX_FIXED64,
         lib.PS_IDX_SFIXED32, lib.PS_IDX_SFIXED64}


def _enum_number(s: Store, d: _ix.IndexDef, text: str) -> int:
    """An enum value name resolved with the kind's recorded schema."""
    schema = s._schema_of(d.kind)
    if schema is None:
        raise ValueError(f"enum value {text!r}: give its number (no schema recorded for {d.kind})")
    from .._lmdb.schema import message_class

    desc: Any = message_class(*schema).DESCRIPTOR
    for part in d.field.split("."):
        fd = desc.fields_by_name.get(part) if desc is not None else None
        if fd is None:
            break
        if fd.type == FieldDescriptor.TYPE_ENUM:
            value = fd.enum_type.values_by_name.get(text)
            if value is None:
                raise ValueError(f"{fd.enum_type.full_name} has no value {text!r}")
            return int(value.number)
        desc = fd.message_type
        if desc is not None and desc.GetOptions().map_entry:
            desc = desc.fields_by_name["value"].enum_type
            if desc is not None and text in desc.values_by_name:
                return int(desc.values_by_name[text].number)
            break
    raise ValueError(f"enum value {text!r}: give its number")


def _scalar(s: Store, d: _ix.IndexDef, kind: int, text: str) -> Any:
    if kind == lib.PS_IDX_STRING:
        return text
    if kind == lib.PS_IDX_BYTES:
        return text.encode("utf-8")
    if kind == lib.PS_IDX_BOOL:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"not a bool: {text!r} (true or false)")
    try:
        return int(text, 0)
    except ValueError:
        if kind in _INTS:
            raise ValueError(f"not an integer: {text!r}") from None
    return _enum_number(s, d, text)


def query_value(s: Store, d: _ix.IndexDef, text: str) -> Any:
    """The VALUE argument as the index field's type."""
    kind = d.mode & lib.PS_IDX_SCALAR_MASK
    if d.mode & lib.PS_IDX_MAP:
        key, sep, value = text.partition("=")
        if not sep:
            raise ValueError(f"index {d.kind}.{d.name} is a map: give KEY=VALUE")
        return key, _scalar(s, d, kind, value)
    return _scalar(s, d, kind, text)


def _def(s: Store, kind: str, name: str) -> _ix.IndexDef:
    with s._reading() as t:
        d = _ix.get_def(t, _ix.check_kind(kind), _ix.encode_name(name))
    if d is None:
        raise NotFoundError(f"no index {kind}.{name}")
    return d


def cmd_find(a: argparse.Namespace, open_store: Any) -> int:
    with open_store(a.path) as s:
        d = _def(s, a.kind, a.index)
        value = query_value(s, d, a.value)
        if not getattr(a, "json", False):
            for id_ in s.find_ids(a.kind, a.index, value):
                _out(id_)
            return 0
        dec = _dump.Decoder()
        with s._reading() as t:
            cls = dec.cls(t, a.kind)
        q = _ix.query_args(value)
        if q is None:
            return 0
        with s._reading() as t:
            raw, count = op_for(t, _ix.find)(t, d.kind.encode(), d.name.encode(), value, q, None, 0,
                                  lib.PS_FIND_RECORDS)
        for ib, data, ns, *_ in records_of(raw, count):
            id_ = ib.decode("utf-8", "replace")
            _out(_line(_dump.record_json(a.kind, id_, data, ns, cls, with_data=False)))
    return 0


def cmd_indexes(a: argparse.Namespace, open_store: Any) -> int:
    with open_store(a.path) as s:
        infos = s.indexes()
        with s._reading() as t:
            kinds = {(d.kind, d.name): d for d, _ in op_for(t, _ix.list_defs)(t, None)}
    if getattr(a, "json", False):
        _out(json.dumps([
            {"kind": i.kind, "name": i.name, "field": i.field, "unique": i.unique,
             "entries": i.entries, "type": kinds[(i.kind, i.name)].type,
             "value": kinds[(i.kind, i.name)].value_kind}
            for i in infos
        ], indent=2, ensure_ascii=False))
        return 0
    if not infos:
        return 0
    rows = [("KIND", "NAME", "FIELD", "VALUE", "UNIQUE", "ENTRIES")] + [
        (i.kind, i.name, i.field, kinds[(i.kind, i.name)].value_kind,
         "yes" if i.unique else "no", str(i.entries)) for i in infos
    ]
    widths = [max(len(r[c]) for r in rows) for c in range(6)]
    for r in rows:
        _out("  ".join(v.ljust(w) if c < 5 else v.rjust(w)
                       for c, (v, w) in enumerate(zip(r, widths, strict=True))).rstrip())
    return 0


def cmd_events(a: argparse.Namespace, open_store: Any) -> int:
    with open_store(a.path) as s:
        events = s.read_events(a.stream, after=a.after)
    for e in events:
        if getattr(a, "json", False):
            _out(_line({"stream": e.stream, "seq": e.seq,
                        "recorded_at": e.recorded_at.isoformat(),
                        "data": base64.b64encode(e.data).decode("ascii")}))
        else:
            _out(f"{e.seq}\t{e.recorded_at.isoformat()}\t{len(e.data)} bytes")
    return 0


def cmd_reindex(a: argparse.Namespace, open_store: Any) -> int:
    with open_store(a.path, readonly=False) as s:
        n = s.rebuild_index(a.kind, a.name)
    if getattr(a, "json", False):
        _out(json.dumps({"kind": a.kind, "name": a.name, "entries": n}, indent=2))
    else:
        _out(f"rebuilt index {a.kind}.{a.name}: {n} entries")
    return 0


def bind(fn: Any, open_store: Any) -> Callable[[argparse.Namespace], int]:
    """``fn`` with the CLI's store opener (main.py passes its own)."""
    return lambda a: int(fn(a, open_store))


COMMANDS = {"find": cmd_find, "indexes": cmd_indexes, "events": cmd_events,
            "reindex": cmd_reindex}


def dump_extras(store: Store, t: Any, out: Any, kinds: list[str] | None) -> None:
    """Index definitions (of ``kinds``, or all) and, for a whole dump, every
    stream's marks and events; written after the records."""
    for d, _ in op_for(t, _ix.list_defs)(t, None):
        if kinds is not None and d.kind not in kinds:
            continue
        out.write(_line({"index": {
            "kind": d.kind, "name": d.name, "field": d.field, "type": d.type,
            "unique": d.unique,
            # the index id is the store's own: a load assigns a new one
            "definition": base64.b64encode(d.blob[:4] + bytes(4) + d.blob[8:]).decode("ascii"),
        }}) + "\n")
    if kinds is not None:
        return
    for stream in op_for(t, _ev.streams)(t, True):
        sb = stream.encode("utf-8")
        _, forgot = op_for(t, _ev.marks)(t, sb)
        if forgot:
            out.write(_line({"stream": {"name": stream, "forgotten": forgot}}) + "\n")
        for seq, ns, payload in op_for(t, _ev.read)(t, sb, 0, 0):
            out.write(_line({"event": {
                "stream": stream, "seq": seq, "recorded_ns": ns,
                "recorded_at": ns_to_datetime(ns).isoformat(),
                "data": base64.b64encode(payload).decode("ascii"),
            }}) + "\n")
