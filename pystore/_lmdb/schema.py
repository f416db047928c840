"""The self-describing store: each kind's message schema kept in the meta table.

When a message type is first saved under a kind, or the kind is saved with a
different type or a changed schema, the write transaction also records two
meta values (see docs/format.md, "Schemas"):

- ``kind.type/<kind>``: the message type's full name, UTF-8
  (e.g. ``pystore.samples.Agent``);
- ``kind.schema/<kind>``: a serialized ``google.protobuf.FileDescriptorSet``
  holding the type's ``.proto`` file and every file it imports, dependencies
  first.

Any tool can then decode the records of a kind without the application's
generated code (:func:`message_class`), e.g. ``protoc
--descriptor_set_in=FILE --decode=TYPE``.

Cost: a ``SchemaRecorder`` remembers, per kind, the descriptor it last saw
committed, so the steady state of a write is one dict lookup.  The cache is
filled only after the transaction that recorded (or checked) the schema
commits, so a rolled-back transaction never leaves it wrong.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.protobuf.message import DecodeError, Message

from ..errors import CorruptionError
from ._native import ffi
from .core import CTxn

__all__ = [
    "SchemaRecorder",
    "descriptor_set",
    "message_class",
    "read_schema",
    "read_type_name",
    "schema_epoch",
    "schema_keys",
    "write_schema",
]

TYPE_PREFIX = b"kind.type/"
# Raised (u64 LE) by every write that replaces a kind's recorded type with
# another (a first record, or the same type's new schema, does not), so
# that processes trusting an earlier check know to check again (ps_epoch.c;
# kind.type/ keys are never deleted).
EPOCH_KEY = b"schema.epoch"
SCHEMA_PREFIX = b"kind.schema/"
_MAX_META_KEY = 511

# Descriptor -> (type name, FileDescriptorSet bytes).  Descriptors live as
# long as their pool, so a plain dict bounded by the number of types is fine.
_encoded: dict[Descriptor, tuple[bytes, bytes]] = {}
_encoded_lock = threading.Lock()


def schema_keys(kind: bytes) -> tuple[bytes, bytes]:
    """The meta keys holding ``kind``'s type name and descriptor set.

    A kind too long for ``<prefix><kind>`` to fit a 511-byte meta key is
    named by ``#`` and the SHA-256 hex digest of its UTF-8 bytes instead.
    """
    name = kind
    if len(SCHEMA_PREFIX) + len(kind) > _MAX_META_KEY:
        name = b"#" + hashlib.sha256(kind).hexdigest().encode("ascii")
    return TYPE_PREFIX + name, SCHEMA_PREFIX + name


def _files_in_order(file: FileDescriptor) -> list[FileDescriptor]:
    """``file`` and its transitive imports, each after the files it imports."""
    out: list[FileDescriptor] = []
    seen: set[str] = set()
    stack: list[tuple[FileDescriptor, bool]] = [(file, False)]
    while stack:
        f, expanded = stack.pop()
        if f.name in seen:
            continue
        if expanded:
            seen.add(f.name)
            out.append(f)
            continue
        stack.append((f, True))
        for dep in reversed(list(f.dependencies)):
            if dep.name not in seen:
                stack.append((dep, False))
    return out


def descriptor_set(desc: Descriptor) -> bytes:
    """The serialized FileDescriptorSet of ``desc``'s file and its imports."""
    return encoded(desc)[1]


def encoded(desc: Descriptor) -> tuple[bytes, bytes]:
    """(full name as UTF-8, FileDescriptorSet bytes) of a message type; cached."""
    hit = _encoded.get(desc)
    if hit is not None:
        return hit
    fds = descriptor_pb2.FileDescriptorSet()
    for f in _files_in_order(desc.file):
        proto = fds.file.add()
        raw = getattr(f, "serialized_pb", None)
        if raw:
            proto.ParseFromString(raw)
        else:
            f.CopyToProto(proto)
    value = (desc.full_name.encode("utf-8"), fds.SerializeToString(deterministic=True))
    with _encoded_lock:
        _encoded.setdefault(desc, value)
    return value


def write_schema(txn: CTxn, kind: bytes, type_name: bytes, fds: bytes) -> bool:
    """Store a kind's schema in ``txn`` unless the same is stored; True if written."""
    tkey, skey = schema_keys(kind)
    old = txn.meta_get(tkey)
    if old == type_name and txn.meta_get(skey) == fds:
        return False
    if old is not None and old != type_name:  # readers that checked it: check again
        txn.meta_put(EPOCH_KEY, (schema_epoch(txn) + 1).to_bytes(8, "little"))
    txn.meta_put(tkey, type_name)
    txn.meta_put(skey, fds)
    return True


def schema_epoch(txn: CTxn) -> int:
    """Meta ``schema.epoch`` as ``txn`` sees it (0: no type ever changed)."""
    raw = txn.meta_get(EPOCH_KEY)
    return 0 if raw is None else int.from_bytes(raw, "little")


def read_type_name(txn: CTxn, kind: bytes) -> str | None:
    """The message type's full name recorded for ``kind``, or None."""
    name = txn.meta_get(schema_keys(kind)[0])
    return None if name is None else name.decode("utf-8", "replace")


def read_schema(txn: CTxn, kind: bytes) -> tuple[str, bytes] | None:
    """(type full name, FileDescriptorSet bytes) recorded for ``kind``, or None."""
    tkey, skey = schema_keys(kind)
    name = txn.meta_get(tkey)
    fds = txn.meta_get(skey)
    if name is None or fds is None:
        return None
    try:
        return name.decode("utf-8"), fds
    except UnicodeDecodeError:
        raise CorruptionError(
            f"schema of kind {kind.decode('utf-8', 'replace')!r}: type name is not UTF-8"
        ) from None


_classes: dict[tuple[str, bytes], type[Message]] = {}


def message_class(type_name: str, fds: bytes) -> type[Message]:
    """A message class for ``type_name`` built from a stored FileDescriptorSet.

    The files go into a fresh descriptor pool, so they never clash with
    generated code loaded in this process.  CorruptionError if the set does
    not parse or does not define the type.
    """
    key = (type_name, fds)
    cls = _classes.get(key)
    if cls is not None:
        return cls
    fdset = descriptor_pb2.FileDescriptorSet()
    try:
        fdset.ParseFromString(fds)
        pool = descriptor_pool.DescriptorPool()
        for f in fdset.file:
            pool.Add(f)
        desc = pool.FindMessageTypeByName(type_name)
    except (DecodeError, KeyError, TypeError, ValueError) as exc:
        raise CorruptionError(
            f"stored schema for {type_name!r} cannot be loaded: {exc}"
        ) from None
    cls = message_factory.GetMessageClass(desc)
    _classes[key] = cls
    return cls


class SchemaRecorder:
    """Per-Store cache of the schema committed for each kind.

    ``known[kind]`` is the descriptor whose schema is known to be stored for
    that kind; writers compare it by identity and call :meth:`record` only
    on a miss.  ``read_ok[kind]`` is a descriptor that readers checked
    against the type recorded for the kind (or that this process recorded):
    reading the kind as that type costs one dict lookup.  ``read_ok_cls[kind]``
    is a message class whose descriptor readers found in ``read_ok[kind]``
    (the fast get's check, by class: dropped with ``read_ok``'s entry).
    """

    __slots__ = ("epoch", "known", "read_ok", "read_ok_cls", "slot")

    def __init__(self) -> None:
        self.known: dict[str, Descriptor] = {}
        self.read_ok: dict[str, Descriptor] = {}
        self.read_ok_cls: dict[str, type] = {}
        # The schema epoch (meta ``schema.epoch``) the entries were checked
        # at: another process that records another type for a kind raises
        # it, and then every entry is dropped (:meth:`adopt`).
        self.epoch = 0
        # The same, for the C core: the fast readers' contexts refuse to read
        # while the store's epoch differs from it (ps_rctx_watch_epoch).
        self.slot: Any = ffi.new("uint64_t *")

    def adopt(self, epoch: int) -> None:
        """A txn saw schema epoch ``epoch``: past ours, forget every check.
        The dicts are cleared in place (the fast readers hold them), then
        the slot lets the fast readers read again."""
        if epoch > self.epoch:
            self.epoch = epoch
            self.read_ok_cls.clear()
            self.read_ok.clear()
            self.known.clear()
            self.slot[0] = epoch

    def record(self, txn: CTxn, kind: str, kb: bytes, desc: Descriptor) -> None:
        """Check / store ``kind``'s schema in ``txn``; publish it when ``txn`` commits."""
        pending: dict[str, Any] | None = txn.schemas
        if pending is not None and pending.get(kind) is desc:
            return
        name, fds = encoded(desc)
        write_schema(txn, kb, name, fds)
        if pending is None:
            txn.schemas = pending = {}
        pending[kind] = desc

    def settle(self, txn: CTxn) -> None:
        """Call after ``txn`` committed: its schemas are now known."""
        if txn.schemas:
            self.known.update(txn.schemas)
            self.read_ok.update(txn.schemas)
            for kind in txn.schemas:
                self.read_ok_cls.pop(kind, None)
            txn.schemas = None

    def forget(self, kind: str) -> None:
        """The stored schema of ``kind`` was replaced behind the cache."""
        self.known.pop(kind, None)
        self.read_ok.pop(kind, None)
        self.read_ok_cls.pop(kind, None)
