"""Secondary indexes: definitions compiled from a message type, and the
glue over the core's index functions (``csrc/ps_index.c``, ``ps_find.c``).

An index definition is compiled here, once, from the message descriptor
and the dotted ``field`` path into a *plan* (``csrc/ps_extract.c``): per
step the field number and whether it is a singular or repeated message,
and for the last step the scalar kind and whether it is repeated or a
``map<string, scalar>``.  The core then keeps the entries from the wire
bytes of every write; Python never parses a record to index it.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ..errors import InvalidKeyError, NotFoundError, StoreError, check, error_for
from ._native import ffi, lib
from .core import CTxn, encode_kind
from .violation import unique_error

__all__ = [
    "IndexDef",
    "compile_plan",
    "encode_name",
    "find_first_env",
    "make_def",
    "parse_def",
    "query_args",
]

_HEAD = struct.Struct("<BBHIIHHHH")

_SCALARS = {
    FieldDescriptor.TYPE_STRING: lib.PS_IDX_STRING,
    FieldDescriptor.TYPE_BYTES: lib.PS_IDX_BYTES,
    FieldDescriptor.TYPE_BOOL: lib.PS_IDX_BOOL,
    FieldDescriptor.TYPE_INT32: lib.PS_IDX_INT32,
    FieldDescriptor.TYPE_INT64: lib.PS_IDX_INT64,
    FieldDescriptor.TYPE_UINT32: lib.PS_IDX_UINT32,
    FieldDescriptor.TYPE_UINT64: lib.PS_IDX_UINT64,
    FieldDescriptor.TYPE_SINT32: lib.PS_IDX_SINT32,
    FieldDescriptor.TYPE_SINT64: lib.PS_IDX_SINT64,
    FieldDescriptor.TYPE_FIXED32: lib.PS_IDX_FIXED32,
    FieldDescriptor.TYPE_FIXED64: lib.PS_IDX_FIXED64,
    FieldDescriptor.TYPE_SFIXED32: lib.PS_IDX_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64: lib.PS_IDX_SFIXED64,
    FieldDescriptor.TYPE_ENUM: lib.PS_IDX_ENUM,
}
_NAMES = {
    lib.PS_IDX_STRING: "string", lib.PS_IDX_BYTES: "bytes", lib.PS_IDX_BOOL: "bool",
    lib.PS_IDX_INT32: "int32", lib.PS_IDX_INT64: "int64", lib.PS_IDX_UINT32: "uint32",
    lib.PS_IDX_UINT64: "uint64", lib.PS_IDX_SINT32: "sint32", lib.PS_IDX_SINT64: "sint64",
    lib.PS_IDX_FIXED32: "fixed32", lib.PS_IDX_FIXED64: "fixed64",
    lib.PS_IDX_SFIXED32: "sfixed32", lib.PS_IDX_SFIXED64: "sfixed64", lib.PS_IDX_ENUM: "enum",
}


def _is_map(fd: FieldDescriptor) -> bool:
    mt = fd.message_type
    return mt is not None and bool(mt.GetOptions().map_entry)


def _scalar(fd: FieldDescriptor, path: str, what: str) -> int:
    kind = _SCALARS.get(fd.type)
    if kind is None:
        reason = {
            FieldDescriptor.TYPE_FLOAT: "a float",
            FieldDescriptor.TYPE_DOUBLE: "a double",
            FieldDescriptor.TYPE_MESSAGE: "a message",
            FieldDescriptor.TYPE_GROUP: "a group",
        }.get(fd.type, "of an unsupported type")
        raise ValueError(f"cannot index field {path!r}: {what} {fd.full_name} is {reason}")
    return int(kind)


def compile_plan(desc: Descriptor, path: str) -> list[int]:
    """The plan (see csrc/ps_extract.c) of dotted ``path`` in ``desc``;
    ValueError naming the field for anything that cannot be indexed."""
    if not isinstance(path, str):
        raise TypeError(f"field must be str, not {type(path).__name__}")
    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise ValueError(f"cannot index field {path!r}: not a dotted field path")
    if len(parts) > lib.PS_IDX_MAX_STEPS:
        raise ValueError(f"cannot index field {path!r}: deeper than {lib.PS_IDX_MAX_STEPS}")
    plan = [len(parts)]
    d = desc
    for i, part in enumerate(parts):
        fd = d.fields_by_name.get(part)
        if fd is None:
            raise ValueError(f"cannot index field {path!r}: {d.full_name} has no field {part!r}")
        last = i == len(parts) - 1
        if fd.type == FieldDescriptor.TYPE_GROUP:
            raise ValueError(f"cannot index field {path!r}: {fd.full_name} is a group")
        if not last:
            if fd.type != FieldDescriptor.TYPE_MESSAGE or _is_map(fd):
                raise ValueError(
                    f"cannot index field {path!r}: {fd.full_name} is not a message field "
                    "(only message fields can be passed through)"
                )
            plan += [fd.number, lib.PS_IDX_MSG_REPEATED if fd.is_repeated else lib.PS_IDX_MSG]
            d = cast(Descriptor, fd.message_type)
            continue
        if _is_map(fd):
            entry = cast(Descriptor, fd.message_type)
            key = entry.fields_by_name["key"]
            value = entry.fields_by_name["value"]
            if key.type != FieldDescriptor.TYPE_STRING:
                raise ValueError(
                    f"cannot index field {path!r}: only maps with string keys are indexed"
                )
            plan += [fd.number, _scalar(value, path, "map value of") | lib.PS_IDX_MAP]
        else:
            mode = _scalar(fd, path, "field")
            plan += [fd.number, mode | (lib.PS_IDX_REPEATED if fd.is_repeated else 0)]
    return plan


def encode_name(name: object) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"index name must be str, not {type(name).__name__}")
    b = name.encode("utf-8", "surrogatepass")
    if not b or b"\0" in b:
        raise InvalidKeyError(f"index name {name!r}: must be non-empty and hold no NUL")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKeyError(f"index name {name!r} is not encodable as UTF-8") from None
    return b


@dataclass(frozen=True, slots=True)
class IndexDef:
    """A parsed definition blob (see csrc/ps_index.c)."""

    id: int
    unique: bool
    plan: tuple[int, ...]
    kind: str
    name: str
    field: str
    type: str
    blob: bytes

    @property
    def mode(self) -> int:
        return self.plan[-1]

    @property
    def value_kind(self) -> str:
        """'string', 'int64', ...: the final field's kind; 'map<string, K>' for maps."""
        name = _NAMES.get(self.mode & lib.PS_IDX_SCALAR_MASK, "?")
        if self.mode & lib.PS_IDX_MAP:
            return f"map<string, {name}>"
        if self.mode & lib.PS_IDX_REPEATED:
            return f"repeated {name}"
        return name


def make_def(kind: bytes, name: bytes, field: str, type_name: str, unique: bool,
             plan: list[int]) -> bytes:
    f, t = field.encode("utf-8"), type_name.encode("utf-8")
    for what, b in (("kind", kind), ("name", name), ("field", f), ("type", t)):
        if len(b) > 0xFFFF:
            raise ValueError(f"index {what} is too long")
    head = _HEAD.pack(lib.PS_IDX_DEF_VERSION, int(unique), 0, 0, len(plan), len(kind),
                      len(name), len(f), len(t))
    return head + struct.pack(f"<{len(plan)}I", *plan) + kind + name + f + t


def parse_def(blob: bytes) -> IndexDef:
    _ver, unique, _, id_, pl, kl, nl, fl, tl = _HEAD.unpack_from(blob, 0)
    off = _HEAD.size
    plan = struct.unpack_from(f"<{pl}I", blob, off)
    off += 4 * pl
    parts = []
    for n in (kl, nl, fl, tl):
        parts.append(blob[off : off + n].decode("utf-8", "replace"))
        off += n
    kind, name, field, type_name = parts
    return IndexDef(id_, bool(unique), tuple(plan), kind, name, field, type_name, blob)


# -- queries -------------------------------------------------------------------

Query = tuple[int, bytes, int, Any]  # qtype, s, num, map key (bytes or NULL)


def query_args(value: object) -> Query | None:
    """C arguments for a query value; None if no stored value can equal it."""
    mkey: Any = ffi.NULL
    if isinstance(value, tuple):
        if len(value) != 2 or not isinstance(value[0], str):
            raise TypeError("a map index is queried with a (str key, value) tuple")
        mkey = value[0].encode("utf-8")
        value = value[1]
    if isinstance(value, bool):
        return lib.PS_Q_BOOL, b"", int(value), mkey
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return lib.PS_Q_INT, b"", value, mkey
        if 2**63 <= value < 2**64:
            return lib.PS_Q_BIGUINT, b"", value - 2**64, mkey
        return None
    if isinstance(value, str):
        try:
            return lib.PS_Q_TEXT, value.encode("utf-8"), 0, mkey
        except UnicodeEncodeError:
            return None  # never stored: protobuf strings are valid UTF-8
    if isinstance(value, bytes):
        return lib.PS_Q_BYTES, value, 0, mkey
    raise TypeError(
        "an index value is a str, bytes, bool, int or (str, value) tuple, "
        f"not {type(value).__name__}"
    )


def _where(kind: bytes, name: bytes) -> str:
    return f"index {kind.decode('utf-8', 'replace')}.{name.decode('utf-8', 'replace')}"


def query_error(rc: int, kind: bytes, name: bytes, value: object) -> Exception:
    if rc == lib.PS_LMDB_NOTFOUND:
        return NotFoundError(f"no {_where(kind, name)}")
    if rc == lib.PS_ERR_INDEX_QUERY:
        return TypeError(f"{_where(kind, name)}: value {value!r} does not fit the field's type")
    return error_for(rc, _where(kind, name))


def find(txn: CTxn, kind: bytes, name: bytes, value: object, q: Query, after: bytes | None,
         limit: int, mode: int) -> tuple[bytes, int]:
    """The raw buffer (``mode`` layout) and entry count of a find."""
    buf = ffi.new("ps_buf *")
    try:
        qtype, s, num, mkey = q
        a = after if after is not None else ffi.NULL
        rc = lib.ps_find(
            txn.ptr, kind, len(kind), name, len(name), qtype, s, len(s), num, mkey,
            0 if mkey == ffi.NULL else len(mkey), a, 0 if after is None else len(after),
            limit, mode, buf,
        )
        if rc:
            raise query_error(rc, kind, name, value)
        return (ffi.unpack(buf.data, buf.len) if buf.len else b""), int(buf.count)
    finally:
        lib.ps_buf_free(buf)


def count(txn: CTxn, kind: bytes, name: bytes, value: object, q: Query) -> int:
    out = ffi.new("uint64_t *")
    qtype, s, num, mkey = q
    rc = lib.ps_find_count(txn.ptr, kind, len(kind), name, len(name), qtype, s, len(s), num,
                           mkey, 0 if mkey == ffi.NULL else len(mkey), out)
    if rc:
        raise query_error(rc, kind, name, value)
    return int(out[0])


def index_exists(txn: CTxn, kind: bytes, name: bytes) -> None:
    """NotFoundError unless the index exists (for queries that return early)."""
    if not get_def(txn, kind, name):
        raise NotFoundError(f"no {_where(kind, name)}")


def get_def(txn: CTxn, kind: bytes, name: bytes) -> IndexDef | None:
    key = b"index/" + kind + b"/" + name
    if len(key) > lib.PS_MAX_KEY:
        return None
    blob = txn.meta_get(key)
    return None if blob is None else parse_def(blob)


def create(txn: CTxn, blob: bytes, kind: bytes) -> tuple[int, bool]:
    entries, created = ffi.new("uint64_t *"), ffi.new("int *")
    rc = lib.ps_index_create(txn.ptr, blob, len(blob), entries, created)
    if rc == lib.PS_ERR_UNIQUE:
        raise unique_error(txn.ptr, kind, kind.decode("utf-8", "replace"))
    if rc == lib.PS_ERR_INDEX_EXISTS:
        d = parse_def(blob)
        raise StoreError(
            f"index {d.kind}.{d.name} exists with another definition "
            f"(field, msg_type or unique differ): drop it first"
        )
    check(rc, f"create index {parse_def(blob).kind}.{parse_def(blob).name}")
    return int(entries[0]), bool(created[0])


def drop(txn: CTxn, kind: bytes, name: bytes) -> None:
    rc = lib.ps_index_drop(txn.ptr, kind, len(kind), name, len(name))
    if rc == lib.PS_LMDB_NOTFOUND:
        raise NotFoundError(f"no {_where(kind, name)}")
    check(rc, _where(kind, name))


def rebuild(txn: CTxn, kind: bytes, name: bytes) -> int:
    out = ffi.new("uint64_t *")
    rc = lib.ps_index_rebuild(txn.ptr, kind, len(kind), name, len(name), out)
    if rc == lib.PS_LMDB_NOTFOUND:
        raise NotFoundError(f"no {_where(kind, name)}")
    if rc == lib.PS_ERR_UNIQUE:
        raise unique_error(txn.ptr, kind, _where(kind, name))
    check(rc, _where(kind, name))
    return int(out[0])


def list_defs(txn: CTxn, kind: bytes | None) -> list[tuple[IndexDef, int]]:
    buf = ffi.new("ps_buf *")
    try:
        k = kind if kind is not None else ffi.NULL
        check(lib.ps_index_list(txn.ptr, k, 0 if kind is None else len(kind), buf), "indexes")
        raw = ffi.unpack(buf.data, buf.len) if buf.len else b""
        out, off = [], 0
        for _ in range(buf.count):
            (n,) = struct.unpack_from("<I", raw, off)
            d = parse_def(raw[off + 4 : off + 4 + n])
            (entries,) = struct.unpack_from("<Q", raw, off + 4 + n)
            out.append((d, entries))
            off += 12 + n
        return out
    finally:
        lib.ps_buf_free(buf)


def entries(txn: CTxn, kind: bytes, name: bytes) -> list[tuple[bytes, bytes]]:
    """Every (encoded value, id) entry of an index, in key order."""
    buf = ffi.new("ps_buf *")
    try:
        rc = lib.ps_index_entries(txn.ptr, kind, len(kind), name, len(name), buf)
        if rc == lib.PS_LMDB_NOTFOUND:
            raise NotFoundError(f"no {_where(kind, name)}")
        check(rc, _where(kind, name))
        raw = ffi.unpack(buf.data, buf.len) if buf.len else b""
        out, off = [], 0
        for _ in range(buf.count):
            (n,) = struct.unpack_from("<I", raw, off)
            value = raw[off + 4 : off + 4 + n]
            off += 4 + n
            (m,) = struct.unpack_from("<I", raw, off)
            out.append((value, raw[off + 4 : off + 4 + m]))
            off += 4 + m
        return out
    finally:
        lib.ps_buf_free(buf)


def extract(plan: tuple[int, ...], payload: bytes) -> list[bytes]:
    """The sorted distinct encoded values ``plan`` takes from ``payload``."""
    buf = ffi.new("ps_buf *")
    try:
        arr = ffi.new("uint32_t[]", list(plan))
        check(lib.ps_index_extract(arr, len(plan), payload, len(payload), buf), "extract")
        raw = ffi.unpack(buf.data, buf.len) if buf.len else b""
        out, off = [], 0
        for _ in range(buf.count):
            (n,) = struct.unpack_from("<I", raw, off)
            out.append(raw[off + 4 : off + 4 + n])
            off += 4 + n
        return out
    finally:
        lib.ps_buf_free(buf)


def check_kind(kind: object) -> bytes:
    kb = encode_kind(kind)
    check(lib.ps_check_key(kb, len(kb), b"_", 1), kb.decode("utf-8", "replace"))
    return kb


class _Tls(threading.local):
    def __init__(self) -> None:
        # [buffer, its size, size, found, busy]: busy from the C call to the
        # copy of its results (see find_first_env).
        self.first: list[Any] = _first_space(1 << 16)


def _first_space(n: int) -> list[Any]:
    return [ffi.new("char[]", n), n, ffi.new("size_t *"), ffi.new("int *"), False]


_tls = _Tls()
_first_into = lib.ps_find_first_into


def find_first_env(env: Any, kind: bytes, name: bytes, value: object, q: Query) -> bytes | None:
    """Payload of the first match in one C call (reused read txn); None if none."""
    qtype, s, num, mkey = q
    mlen = 0 if mkey == ffi.NULL else len(mkey)
    o = _tls.first
    if o[4]:
        # Run between another lookup's C call and its copy, in this thread
        # (a signal handler's or a finalizer's): its results are in the
        # thread's buffer, so this lookup takes its own.
        o = _first_space(o[1])
    o[4] = True
    try:
        while True:
            buf, cap, size, found = o[0], o[1], o[2], o[3]
            rc = _first_into(env, kind, len(kind), name, len(name), qtype, s, len(s), num,
                             mkey, mlen, buf, cap, size, found)
            if rc:
                raise query_error(rc, kind, name, value)
            if not found[0]:
                return None
            n = size[0]
            if n <= cap:
                return ffi.unpack(buf, n) if n else b""
            # larger than the buffer: read again into a bigger one (kept
            # for the thread when modest)
            o[4] = False
            o = _first_space(n)
            o[4] = True
            if n <= 1 << 20:
                _tls.first = o
    finally:
        o[4] = False
