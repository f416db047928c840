"""The core with message types built at run time: no generated code, so this file
also runs against the oldest protobuf runtime the package declares
(``make protobuf-floor`` installs exactly that version and runs it).

The sample modules (``pystore.samples``) are an extra whose generated code needs
a newer runtime; nothing here imports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import pystore
from pystore._lmdb.schema import message_class

_FDP = descriptor_pb2.FieldDescriptorProto


def _build_types() -> tuple[Any, Any]:
    """``floor.Thing`` (with a nested ``floor.Meta``, a repeated field and a map)."""
    f = descriptor_pb2.FileDescriptorProto(name="floor/thing.proto", package="floor",
                                           syntax="proto3")
    meta = f.message_type.add(name="Meta")
    meta.field.add(name="name", number=1, type=_FDP.TYPE_STRING, label=_FDP.LABEL_OPTIONAL)
    meta.field.add(name="org_id", number=2, type=_FDP.TYPE_STRING, label=_FDP.LABEL_OPTIONAL)
    thing = f.message_type.add(name="Thing")
    thing.field.add(name="meta", number=1, type=_FDP.TYPE_MESSAGE, type_name=".floor.Meta",
                    label=_FDP.LABEL_OPTIONAL)
    thing.field.add(name="tags", number=2, type=_FDP.TYPE_STRING, label=_FDP.LABEL_REPEATED)
    thing.field.add(name="n", number=3, type=_FDP.TYPE_INT64, label=_FDP.LABEL_OPTIONAL)
    thing.field.add(name="project_id", number=4, type=_FDP.TYPE_STRING,
                    label=_FDP.LABEL_OPTIONAL)
    entry = thing.nested_type.add(name="LabelsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_FDP.TYPE_STRING, label=_FDP.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=_FDP.TYPE_MESSAGE, type_name=".floor.Meta",
                    label=_FDP.LABEL_OPTIONAL)
    thing.field.add(name="labels", number=5, type=_FDP.TYPE_MESSAGE,
                    type_name=".floor.Thing.LabelsEntry", label=_FDP.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("floor.Thing")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName("floor.Meta")))


Thing, Meta = _build_types()


def _thing(i: int) -> Any:
    t = Thing(meta=Meta(name=f"t{i}", org_id="org"), tags=["a", str(i)], n=i,
              project_id="p")
    t.labels["x"].CopyFrom(Meta(name="inner", org_id="org"))
    return t


def test_round_trip_strips_tenancy_at_every_depth(tmp_path: Path) -> None:
    with pystore.Store(tmp_path / "s", sync=False) as s:
        s.save_resource("Thing", "t1", _thing(1))
        got = s.get_resource("Thing", "t1", Thing)
        assert got.meta.name == "t1" and list(got.tags) == ["a", "1"] and got.n == 1
        assert got.meta.org_id == "" and got.project_id == ""
        assert got.labels["x"].name == "inner" and got.labels["x"].org_id == ""


def test_lists_updates_and_deletes(tmp_path: Path) -> None:
    with pystore.Store(tmp_path / "s", sync=False) as s:
        assert s.save_resources("Thing", [(f"t{i}", _thing(i)) for i in range(5)]) == 5
        assert [t.n for t in s.list_resources("Thing", Thing)] == [0, 1, 2, 3, 4]
        assert [r.id for r in s.iter_resources("Thing", after="t2")] == ["t3", "t4"]
        out = s.update_resource("Thing", "t1", Thing, lambda t: setattr(t, "n", 10))
        assert out.n == 10 and s.get_resource("Thing", "t1", Thing).n == 10
        with s.transaction() as t:
            t.delete_resource("Thing", "t0")
            t.create_resource("Thing", "t9", _thing(9))
        assert s.count("Thing") == 5
        assert s.delete_resources_by_kind("Thing") == 5


def test_recorded_schema_decodes_without_the_type(tmp_path: Path) -> None:
    with pystore.Store(tmp_path / "s", sync=False) as s:
        s.save_resource("Thing", "t1", _thing(1))
        schema = s._schema_of("Thing")
        assert schema is not None and schema[0] == "floor.Thing"
        cls = message_class(*schema)
        decoded = cls.FromString(s.get_bytes("Thing", "t1"))
        assert decoded.meta.name == "t1"
        assert s.stats().kinds["Thing"].type_name == "floor.Thing"


def test_unparseable_record_is_invalid_message(tmp_path: Path) -> None:
    with pystore.Store(tmp_path / "s", sync=False) as s:
        s._put_raw("Thing", "bad", b"\xff\xff\xff", 0)
        with pytest.raises(pystore.InvalidMessageError, match="Thing/bad"):
            s.get_resource("Thing", "bad", Thing)


def test_cli_decodes_with_the_recorded_schema(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    with pystore.Store(tmp_path / "s", sync=False) as s:
        s.save_resource("Thing", "t1", _thing(1))
    for args in (["get", str(tmp_path / "s"), "Thing", "t1"], ["verify", str(tmp_path / "s")]):
        p = subprocess.run([sys.executable, "-m", "pystore", *args], capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, p.stderr
    got = subprocess.run([sys.executable, "-m", "pystore", "get", str(tmp_path / "s"), "Thing",
                          "t1"], capture_output=True, text=True, timeout=60).stdout
    assert json.loads(got)["message"]["meta"] == {"name": "t1"}
