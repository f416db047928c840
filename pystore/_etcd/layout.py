"""Where the etcd backend keeps things under its key root, and the record value.

Let ``R`` be the key root of the URL (``/pystore/prod/``):

* ``R r/<Kind>/<ID>``: a resource; the value is the record of LMDB format 2
  (20-byte header + protobuf payload, docs/format.md), with the header's
  ``revision`` field 0: the revision of a record is etcd's ``mod_revision``,
  filled in when it is read.
* ``R m/<meta key>``: meta values (kind schemas, history keep counts).
* ``R h/<Kind>/<ID>/<revision:016x>``: a kept version (history), the record
  value of that version.
* ``R c/kind/<Kind>``: the marker a ``delete_resources_by_kind`` writes in
  its own Txn, so watchers see one ``delete_kind`` change instead of N
  deletes.  The value is the 8-byte little-endian ``updated_ns``.

* ``R w/<writer>/<n>``: the write slots of one open store (once.py): the
  16-byte token of the last write Txn sent through each; not data.

``Kind`` never holds ``/``, so ``R r/<Kind>/`` is an exact prefix.
"""

from __future__ import annotations

import struct

from ..errors import CorruptionError

__all__ = ["HEADER", "Layout", "decode_record", "encode_record"]

HEADER = struct.Struct("<BBHqQ")  # version, flags, reserved, updated_ns, revision
_NS = struct.Struct("<q")
RECORD_VERSION = 2


def encode_record(payload: bytes, ns: int, revision: int = 0) -> bytes:
    return HEADER.pack(RECORD_VERSION, 0, 0, ns, revision) + payload


def decode_record(value: bytes, where: bytes) -> tuple[bytes, int]:
    """(payload, updated_ns) of a stored record; CorruptionError if it is not one."""
    if len(value) < HEADER.size or value[0] != RECORD_VERSION:
        raise CorruptionError(
            f"etcd key {where.decode('utf-8', 'replace')!r} does not hold a pystore record "
            f"({len(value)} bytes, version byte {value[0] if value else None})"
        )
    return value[HEADER.size :], _NS.unpack_from(value, 4)[0]


def encode_ns(ns: int) -> bytes:
    return _NS.pack(ns)


def decode_ns(value: bytes) -> int:
    return _NS.unpack_from(value)[0] if len(value) >= 8 else 0


class Layout:
    """The keys of one store root."""

    __slots__ = ("changes", "events", "history", "last", "meta", "prefixes", "res", "root")

    def __init__(self, root: bytes) -> None:
        self.root = root
        self.res = root + b"r/"
        self.meta = root + b"m/"
        self.history = root + b"h/"
        self.changes = root + b"c/kind/"
        self.last = root + b"c/last"
        self.prefixes = root + b"c/prefix/"
        self.events = root + b"e/"

    def key(self, kind: bytes, id: bytes) -> bytes:
        return self.res + kind + b"/" + id

    def kind_prefix(self, kind: bytes) -> bytes:
        return self.res + kind + b"/"

    def meta_key(self, key: bytes) -> bytes:
        return self.meta + key

    def keep_key(self, kind: bytes) -> bytes:
        return self.meta + b"history.keep/" + kind

    def history_prefix(self, kind: bytes, id: bytes | None = None) -> bytes:
        base = self.history + kind + b"/"
        return base if id is None else base + id + b"/"

    def history_key(self, kind: bytes, id: bytes, revision: int) -> bytes:
        return self.history_prefix(kind, id) + b"%016x" % revision

    def marker(self, kind: bytes) -> bytes:
        return self.changes + kind

    def prefix_marker(self, kind: bytes, prefix: bytes) -> bytes:
        return self.prefixes + kind + b"/" + prefix

    def stream_prefix(self, stream: bytes) -> bytes:
        return self.events + stream + b"\0"

    def event_key(self, stream: bytes, seq: int) -> bytes:
        return self.stream_prefix(stream) + b"%016x" % seq

    def marks_key(self, stream: bytes) -> bytes:
        return self.meta + b"events/" + stream

    def split_event(self, key: bytes) -> tuple[bytes, int] | None:
        """(stream, seq) of an event key, None for any other key."""
        stream, sep, seq = key[len(self.events) :].partition(b"\0")
        if not sep or len(seq) != 16:
            return None
        return stream, int(seq, 16)

    def split(self, key: bytes) -> tuple[bytes, bytes] | None:
        """(kind, id) of a resource key, None for any other key."""
        if not key.startswith(self.res):
            return None
        kind, sep, id = key[len(self.res) :].partition(b"/")
        return (kind, id) if sep else None
