"""A message type built at run time with one field of every indexable kind
(and some that are refused), for the index tests."""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

F = descriptor_pb2.FieldDescriptorProto

_SCALARS = {
    "s": F.TYPE_STRING, "b": F.TYPE_BYTES, "flag": F.TYPE_BOOL, "i32": F.TYPE_INT32,
    "i64": F.TYPE_INT64, "u32": F.TYPE_UINT32, "u64": F.TYPE_UINT64, "s32": F.TYPE_SINT32,
    "s64": F.TYPE_SINT64, "f32": F.TYPE_FIXED32, "f64": F.TYPE_FIXED64,
    "sf32": F.TYPE_SFIXED32, "sf64": F.TYPE_SFIXED64, "dbl": F.TYPE_DOUBLE, "flt": F.TYPE_FLOAT,
}


def _build() -> tuple[type[Message], type[Message]]:
    fp = descriptor_pb2.FileDescriptorProto(name="pystore_test_index.proto",
                                            package="pystore.testidx", syntax="proto3")
    color = fp.enum_type.add(name="Color")
    for i, n in enumerate(["COLOR_UNSPECIFIED", "RED", "GREEN"]):
        color.value.add(name=n, number=i)
    inner = fp.message_type.add(name="Inner")
    inner.field.add(name="tag", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    inner.field.add(name="n", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    m = fp.message_type.add(name="All")
    num = 1
    for name, t in _SCALARS.items():
        m.field.add(name=name, number=num, type=t, label=F.LABEL_OPTIONAL)
        m.field.add(name="r" + name, number=num + 100, type=t, label=F.LABEL_REPEATED)
        num += 1
    m.field.add(name="color", number=40, type=F.TYPE_ENUM, label=F.LABEL_OPTIONAL,
                type_name=".pystore.testidx.Color")
    m.field.add(name="colors", number=41, type=F.TYPE_ENUM, label=F.LABEL_REPEATED,
                type_name=".pystore.testidx.Color")
    m.field.add(name="inner", number=42, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                type_name=".pystore.testidx.Inner")
    m.field.add(name="inners", number=43, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                type_name=".pystore.testidx.Inner")
    for name, kt, vt, vtn in [
        ("smap", F.TYPE_STRING, F.TYPE_STRING, ""),
        ("imap", F.TYPE_STRING, F.TYPE_INT64, ""),
        ("bmap", F.TYPE_STRING, F.TYPE_BOOL, ""),
        ("keyint", F.TYPE_INT32, F.TYPE_STRING, ""),
        ("msgmap", F.TYPE_STRING, F.TYPE_MESSAGE, ".pystore.testidx.Inner"),
    ]:
        entry = m.nested_type.add(name=name.capitalize() + "Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=kt, label=F.LABEL_OPTIONAL)
        f = entry.field.add(name="value", number=2, type=vt, label=F.LABEL_OPTIONAL)
        if vtn:
            f.type_name = vtn
        num += 1
        m.field.add(name=name, number=50 + len(m.field), type=F.TYPE_MESSAGE,
                    label=F.LABEL_REPEATED,
                    type_name=f".pystore.testidx.All.{entry.name}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fp)
    all_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("pystore.testidx.All"))
    inner_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("pystore.testidx.Inner"))
    return all_cls, inner_cls


All, Inner = _build()
SCALARS = list(_SCALARS)
