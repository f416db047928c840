"""Lists parsed once: the repeated-field wrapper.

The C core can emit a kind's records as the wire format of a repeated
message field (``ps_list_wire``: tag, varint length, payload per record).
That buffer is exactly the serialization of a wrapper message

    message List_<Type> { repeated <Type> items = 1; }

so one ``ParseFromString`` of the wrapper decodes every record, into one
arena, in C.  Keeping 10,000 messages parsed one by one costs an arena and
a Python round trip each; the wrapper parse costs a fraction of that.  The
wrapper type is made once per resource type (in the resource type's own
descriptor pool) and cached.  Raw listing uses the same buffer with a
``repeated bytes`` wrapper.
"""

from __future__ import annotations

import threading

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

__all__ = ["ITEMS_FIELD", "MAX_WIRE", "bytes_list_class", "list_class"]

ITEMS_FIELD = 1
MAX_WIRE = 2**31 - 1  # protobuf cannot parse a larger message: list record by record
_PACKAGE = "pystore.wrap"
_FDP = descriptor_pb2.FieldDescriptorProto

_cache: dict[Descriptor, type[Message]] = {}
_lock = threading.Lock()
_bytes_pool = descriptor_pool.DescriptorPool()
_bytes_cls: type[Message] | None = None


def _wrapper_file(
    name: str, item: _FDP.Type.ValueType, type_name: str, dep: str | None
) -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto()
    fdp.name = f"pystore/wrap/{name}.proto"
    fdp.package = _PACKAGE
    fdp.syntax = "proto3"
    if dep is not None:
        fdp.dependency.append(dep)
    msg = fdp.message_type.add()
    msg.name = name
    field = msg.field.add()
    field.name = "items"
    field.number = ITEMS_FIELD
    field.label = _FDP.LABEL_REPEATED
    field.type = item
    if type_name:
        field.type_name = type_name
    return fdp


def list_class(desc: Descriptor) -> type[Message]:
    """The wrapper type whose field 1 is ``repeated <desc>``, made once."""
    cls = _cache.get(desc)
    if cls is not None:
        return cls
    with _lock:
        cls = _cache.get(desc)
        if cls is None:
            name = "List_" + desc.full_name.replace(".", "_")
            fdp = _wrapper_file(name, _FDP.TYPE_MESSAGE, "." + desc.full_name, desc.file.name)
            pool = desc.file.pool
            try:
                wdesc = pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")
            except KeyError:
                pool.AddSerializedFile(fdp.SerializeToString())
                wdesc = pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")
            cls = _cache[desc] = message_factory.GetMessageClass(wdesc)
    return cls


def bytes_list_class() -> type[Message]:
    """The wrapper type whose field 1 is ``repeated bytes``."""
    global _bytes_cls
    if _bytes_cls is None:
        with _lock:
            if _bytes_cls is None:
                fdp = _wrapper_file("RawList", _FDP.TYPE_BYTES, "", None)
                _bytes_pool.AddSerializedFile(fdp.SerializeToString())
                desc = _bytes_pool.FindMessageTypeByName(f"{_PACKAGE}.RawList")
                _bytes_cls = message_factory.GetMessageClass(desc)
    return _bytes_cls
