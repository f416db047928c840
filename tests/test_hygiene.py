"""Data hygiene: tenancy fields never reach the disk; callers' messages stay intact."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2
from support import make_agent

import pystore
from pystore._lmdb.hygiene import Stripper
from pystore.samples import agent_execution_pb2, agent_pb2, common_pb2, session_pb2

ORG, PROJECT = "ORG-SECRET-7f3a", "PROJECT-SECRET-91bc"


def _disk_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.iterdir()) if p.is_file())


def test_tenancy_fields_absent_from_database_files(store_path: Path) -> None:
    with pystore.Store(store_path) as s:
        s.save_resource("Agent", "a", make_agent(1, org=ORG, project=PROJECT))
        s.create_resource("Agent", "b", make_agent(2, org=ORG, project=PROJECT))
        s.save_resources(
            "Agent", [(f"m{i}", make_agent(i, org=ORG, project=PROJECT)) for i in range(20)]
        )
        with s.transaction() as t:
            t.save_resource("Agent", "t", make_agent(3, org=ORG, project=PROJECT))

        def touch(m: agent_pb2.Agent) -> None:
            m.metadata.org_id = ORG
            m.skills.add(org_id=ORG, project_id=PROJECT)

        s.update_resource("Agent", "a", agent_pb2.Agent, touch)
        assert b"Agent 1" in b"".join(s.list_resources("Agent"))
    raw = _disk_bytes(store_path)
    assert b"Be helpful." in raw  # the payloads really are in these files
    assert ORG.encode() not in raw
    assert PROJECT.encode() not in raw


def test_stripped_at_every_depth_and_callers_message_untouched(store: pystore.Store) -> None:
    agent = make_agent(1, org=ORG, project=PROJECT)
    before = agent.SerializeToString()
    store.save_resource("Agent", "a", agent)
    assert agent.SerializeToString() == before  # caller's message not modified
    got = store.get_resource("Agent", "a", agent_pb2.Agent)
    assert got.metadata.org_id == "" and got.metadata.project_id == ""
    assert all(s.org_id == "" and s.project_id == "" for s in got.skills)
    assert got.environments["dev"].org_id == "" and got.environments["dev"].id == "env-1"
    assert got.metadata.name == "Agent 1"  # everything else kept
    expected = agent_pb2.Agent()
    expected.CopyFrom(agent)
    expected.metadata.ClearField("org_id")
    expected.metadata.ClearField("project_id")
    for ref in list(expected.skills) + list(expected.environments.values()):
        ref.ClearField("org_id")
        ref.ClearField("project_id")
    assert got == expected


def test_update_resource_returns_stripped_message(store: pystore.Store) -> None:
    store.save_resource("Session", "s", session_pb2.Session(subject="x"))

    def edit(m: session_pb2.Session) -> None:
        m.metadata.org_id = ORG
        m.subject = "y"

    out = store.update_resource("Session", "s", session_pb2.Session, edit)
    assert out.subject == "y" and out.metadata.org_id == ""
    assert store.get_resource("Session", "s", session_pb2.Session) == out


def test_custom_strip_fields(store_path: Path) -> None:
    with pystore.Store(store_path, strip_fields=("name",)) as s:
        s.save_resource("Agent", "a", make_agent(1, org=ORG))
        got = s.get_resource("Agent", "a", agent_pb2.Agent)
        assert got.metadata.name == "" and got.metadata.org_id == ORG
    with pystore.Store(store_path, strip_fields=()) as s:
        s.save_resource("Agent", "b", make_agent(1, org=ORG))
        assert s.get_resource("Agent", "b", agent_pb2.Agent).metadata.org_id == ORG


def test_bad_strip_fields(store_path: Path) -> None:
    with pytest.raises(TypeError):
        pystore.Store(store_path, strip_fields="org_id")
    with pytest.raises(TypeError):
        pystore.Store(store_path, strip_fields=(1,))  # type: ignore[arg-type]


def test_plan_is_cached_and_none_for_types_without_such_fields() -> None:
    s = Stripper(frozenset({"org_id", "project_id"}))
    assert s.plan(struct_pb2.Struct.DESCRIPTOR) is None  # recursive type, nothing to strip
    assert s.plan(agent_execution_pb2.Message.DESCRIPTOR) is None
    plan = s.plan(agent_pb2.Agent.DESCRIPTOR)
    assert plan is not None and s.plan(agent_pb2.Agent.DESCRIPTOR) is plan
    msg = agent_execution_pb2.Message(role="user")
    assert s.serialize(msg) == msg.SerializeToString()


def _recursive_node_class() -> type:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="hygiene_node.proto", package="hyg", syntax="proto3"
    )
    node = fdp.message_type.add(name="Node")
    F = descriptor_pb2.FieldDescriptorProto
    node.field.add(name="org_id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    node.field.add(name="name", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    node.field.add(name="children", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                   type_name=".hyg.Node")
    entry = node.nested_type.add(name="ByNameEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                    type_name=".hyg.Node")
    node.field.add(name="by_name", number=4, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                   type_name=".hyg.Node.ByNameEntry")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("hyg.Node"))


def test_recursive_types_are_stripped_at_every_level(store: pystore.Store) -> None:
    Node = _recursive_node_class()
    root = Node(org_id=ORG, name="root")
    child = root.children.add(org_id=ORG, name="child")
    child.by_name["deep"].org_id = ORG
    child.by_name["deep"].children.add(org_id=ORG, name="deepest")
    store.save_resource("Node", "n", root)
    got = store.get_resource("Node", "n", Node)
    assert ORG.encode() not in got.SerializeToString()
    assert got.children[0].by_name["deep"].children[0].name == "deepest"
    assert root.children[0].by_name["deep"].children[0].org_id == ORG  # caller untouched


def test_common_metadata_is_the_only_tenancy_carrier_in_samples() -> None:
    s = Stripper(frozenset({"org_id", "project_id"}))
    assert s.plan(common_pb2.ResourceMetadata.DESCRIPTOR) is not None
    assert s.plan(common_pb2.ResourceRef.DESCRIPTOR) is not None
