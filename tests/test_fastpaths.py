"""The fast paths of issue 3: one-call gets over reused read transactions,
lists parsed once through a repeated-field wrapper, and the wire-level
hygiene; each must behave exactly like the slow path it replaces."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from support import make_agent

import pystore
from pystore import InvalidMessageError, NotFoundError, StoreClosedError
from pystore.samples import agent_pb2


def test_get_bytes_is_the_stored_payload(store: pystore.Store) -> None:
    store.save_resource("Agent", "a1", make_agent(1))
    assert store.get_bytes("Agent", "a1") == store.get_record("Agent", "a1").data
    got = agent_pb2.Agent.FromString(store.get_bytes("Agent", "a1"))
    assert got.metadata.name == make_agent(1).metadata.name
    assert got.metadata.org_id == ""  # stripped before it was stored


def test_get_bytes_errors(store: pystore.Store) -> None:
    with pytest.raises(NotFoundError, match="resource not found: Agent/nope"):
        store.get_bytes("Agent", "nope")
    with pytest.raises(TypeError):
        store.get_bytes("Agent", 1)  # type: ignore[arg-type]
    with pytest.raises(pystore.InvalidKeyError):
        store.get_bytes("A/b", "x")
    store.close()
    with pytest.raises(StoreClosedError):
        store.get_bytes("Agent", "a1")


@pytest.mark.parametrize("size", [0, 65_535, 65_536, 70_000, 3_000_000])
def test_get_of_any_size_through_the_reused_buffer(store: pystore.Store, size: int) -> None:
    msg = agent_pb2.Agent(instructions="x" * size)
    store.save_resource("Agent", "big", msg)
    small = agent_pb2.Agent(instructions="y")
    store.save_resource("Agent", "small", small)
    for _ in range(2):  # the per-thread buffer grows, then serves smaller reads
        assert store.get_resource("Agent", "big", agent_pb2.Agent) == msg
        assert store.get_resource("Agent", "small", agent_pb2.Agent) == small
        assert store.get_bytes("Agent", "big") == msg.SerializeToString()


def test_gets_see_the_latest_commit(store: pystore.Store) -> None:
    """A reused (parked) read txn is renewed: it never serves an old snapshot."""
    for n in range(50):
        store.save_resource("Agent", "a", agent_pb2.Agent(model=f"m{n}"))
        assert store.get_resource("Agent", "a", agent_pb2.Agent).model == f"m{n}"
        assert store.count("Agent") == 1
    store.delete_resource("Agent", "a")
    with pytest.raises(NotFoundError):
        store.get_bytes("Agent", "a")


def test_transaction_reads_its_own_writes_through_get_bytes(store: pystore.Store) -> None:
    with store.transaction() as t:
        t.save_resource("Agent", "a", make_agent(2))
        assert agent_pb2.Agent.FromString(t.get_bytes("Agent", "a")).metadata.name
        assert [m.metadata.name for m in t.list_resources("Agent", agent_pb2.Agent)] == [
            make_agent(2).metadata.name
        ]


def test_list_parsed_at_once_equals_record_by_record(store: pystore.Store) -> None:
    msgs = {f"id-{n:03d}": make_agent(n) for n in range(300)}
    store.save_resources("Agent", list(msgs.items()))
    store.save_resource("AgentExecution", "x", make_agent(999))
    store.save_resource("Agents", "y", make_agent(998))
    raw = store.list_resources("Agent")
    parsed = store.list_resources("Agent", agent_pb2.Agent)
    records = list(store.iter_resources("Agent"))
    assert raw == [r.data for r in records]
    assert parsed == [agent_pb2.Agent.FromString(r.data) for r in records]
    assert all(type(m) is agent_pb2.Agent for m in parsed)
    assert [m.metadata.org_id for m in parsed] == [""] * 300
    parsed[0].model = "changed"  # the messages are ordinary, mutable messages
    assert parsed[0].model == "changed" and parsed[1].model != "changed"
    assert store.list_resources("Agent", agent_pb2.Agent)[0].model != "changed"


def test_list_with_empty_messages_and_empty_kind(store: pystore.Store) -> None:
    assert store.list_resources("Nothing") == []
    assert store.list_resources("Nothing", agent_pb2.Agent) == []
    store.save_resource("Agent", "e1", agent_pb2.Agent())
    store.save_resource("Agent", "e2", agent_pb2.Agent(model="m"))
    assert store.list_resources("Agent") == [b"", agent_pb2.Agent(model="m").SerializeToString()]
    assert store.list_resources("Agent", agent_pb2.Agent) == [
        agent_pb2.Agent(),
        agent_pb2.Agent(model="m"),
    ]


def test_a_bad_record_is_named_by_the_list(store: pystore.Store) -> None:
    store.save_resource("Agent", "good", make_agent(1))
    store._put_raw("Agent", "bad", b"\x0a\xff\xff\xff\x0f", 1)  # length past the end
    assert len(store.list_resources("Agent")) == 2  # raw listing does not parse
    with pytest.raises(InvalidMessageError, match="Agent/bad"):
        store.list_resources("Agent", agent_pb2.Agent)
    assert store.get_resource("Agent", "good", agent_pb2.Agent).metadata.name


def _dynamic_type() -> type:
    """A message class of a private descriptor pool (not the default one)."""
    pool = descriptor_pool.DescriptorPool()
    fdp = descriptor_pb2.FileDescriptorProto(name="dyn/thing.proto", package="dyn", syntax="proto3")
    m = fdp.message_type.add(name="Thing")
    m.field.add(
        name="name",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    m.field.add(
        name="org_id",
        number=2,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    pool.AddSerializedFile(fdp.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("dyn.Thing"))


def test_list_of_a_type_from_a_private_pool(store: pystore.Store) -> None:
    thing = _dynamic_type()
    for n in range(5):
        store.save_resource("Thing", f"t{n}", thing(name=f"n{n}", org_id="org"))
    got = store.list_resources("Thing", thing)
    assert [t.name for t in got] == [f"n{n}" for n in range(5)]
    assert all(type(t) is thing and t.org_id == "" for t in got)


def test_readers_of_many_threads_then_close(store_path: Path) -> None:
    """Parked read txns are shared by threads and released by close()."""
    s = pystore.Store(store_path, sync=False)
    s.save_resources("Agent", [(f"a{n}", make_agent(n)) for n in range(50)])
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                for n in range(50):
                    s.get_bytes("Agent", f"a{n}")
                assert len(s.list_resources("Agent", agent_pb2.Agent)) == 50
        except StoreClosedError:
            pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(6)]
    for th in threads:
        th.start()
    for n in range(30):
        s.save_resource("Agent", f"a{n}", make_agent(n + 100))
    s.close()
    stop.set()
    for th in threads:
        th.join(timeout=60)
    assert not errors, errors
    with pystore.Store(store_path, readonly=True) as ro:  # reopened: nothing leaked
        assert ro.get_resource("Agent", "a0", agent_pb2.Agent) == _stored(make_agent(100))


def _stored(msg: agent_pb2.Agent) -> agent_pb2.Agent:
    out = agent_pb2.Agent()
    out.CopyFrom(msg)
    out.metadata.ClearField("org_id")
    out.metadata.ClearField("project_id")
    for ref in list(out.skills) + list(out.environments.values()):
        ref.ClearField("org_id")
        ref.ClearField("project_id")
    return out


# -- hygiene on the wire ------------------------------------------------------


def _node_type() -> type:
    """message Node { org_id=1; name=2; repeated Node kids=3; map<string,Node> by_name=4;
    Node one=5; repeated string org_ids=6 }: recursive, so its plan has a cycle."""
    F = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    fdp = descriptor_pb2.FileDescriptorProto(name="dyn/node.proto", package="dyn", syntax="proto3")
    m = fdp.message_type.add(name="Node")
    m.field.add(name="org_id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="name", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(
        name="kids", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".dyn.Node"
    )
    entry = m.nested_type.add(name="ByNameEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(
        name="value", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL, type_name=".dyn.Node"
    )
    m.field.add(
        name="by_name",
        number=4,
        type=F.TYPE_MESSAGE,
        label=F.LABEL_REPEATED,
        type_name=".dyn.Node.ByNameEntry",
    )
    m.field.add(
        name="one", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL, type_name=".dyn.Node"
    )
    m.field.add(name="org_ids", number=6, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    pool.AddSerializedFile(fdp.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("dyn.Node"))


def _tree(node: type, depth: int, n: int = 0) -> object:
    msg = node(org_id=f"org-{n}", name=f"n{n}-" + "x" * (n * 37 % 300))
    msg.org_ids.extend(["a", "b"])
    if depth:
        for k in range(2):
            msg.kids.append(_tree(node, depth - 1, n * 3 + k + 1))
        msg.by_name["k"].CopyFrom(_tree(node, depth - 1, n * 5 + 7))
        msg.one.CopyFrom(_tree(node, depth - 1, n + 11))
    return msg


def _slow_strip(stripper: object, msg: object) -> bytes:
    copy = type(msg)()  # type: ignore[operator]
    copy.CopyFrom(msg)  # type: ignore[attr-defined]
    stripper.strip_in_place(copy)  # type: ignore[attr-defined]
    return copy.SerializeToString()  # type: ignore[no-any-return]


@pytest.mark.parametrize("depth", [0, 1, 3, 5])
def test_wire_strip_equals_the_message_strip(depth: int) -> None:
    from pystore._lmdb.hygiene import Stripper

    node = _node_type()
    msg = _tree(node, depth)
    before = msg.SerializeToString()  # type: ignore[attr-defined]
    stripper = Stripper(frozenset({"org_id", "org_ids"}))
    fast = stripper.serialize(msg)  # type: ignore[arg-type]
    assert msg.SerializeToString() == before  # type: ignore[attr-defined]  # caller's message untouched
    wire = stripper._wire[msg.DESCRIPTOR]  # type: ignore[attr-defined]
    assert wire.strip(before) == fast  # the C path produced it
    assert node.FromString(fast) == node.FromString(_slow_strip(stripper, msg))
    assert b"org-" not in fast and node.FromString(fast).name == msg.name  # type: ignore[attr-defined]


def test_wire_strip_keeps_unknown_fields_and_presence() -> None:
    from pystore._lmdb.hygiene import Stripper

    stripper = Stripper(frozenset({"org_id", "project_id"}))
    msg = make_agent(3)
    # field 99 is unknown to Agent: kept as is, like the slow path keeps it
    raw = msg.SerializeToString() + b"\x9a\x06\x03abc"
    with_unknown = agent_pb2.Agent.FromString(raw)
    fast = stripper.serialize(with_unknown)
    assert fast.endswith(b"\x9a\x06\x03abc") or b"\x9a\x06\x03abc" in fast
    got = agent_pb2.Agent.FromString(fast)
    assert got == agent_pb2.Agent.FromString(_slow_strip(stripper, with_unknown))
    only_tenancy = agent_pb2.Agent()
    only_tenancy.metadata.org_id = "org"  # metadata becomes empty but stays present
    got = agent_pb2.Agent.FromString(stripper.serialize(only_tenancy))
    assert got.HasField("metadata") and got.metadata.org_id == ""


def test_wire_strip_declines_what_it_does_not_handle() -> None:
    from pystore._lmdb.wirestrip import WirePlan

    plan = WirePlan([1, 1, 0xFFFFFFFF])  # drop field 1
    assert plan.strip(b"\x0a\x01x\x10\x05") == b"\x10\x05"
    assert plan.strip(b"\x0b\x0c") is None  # a group
    assert plan.strip(b"\x0a\x05x") is None  # length past the end
    assert plan.strip(b"\x80") is None  # truncated varint
    assert plan.strip(b"") == b""
    bad = WirePlan([5, 1])  # a node claiming more pairs than the table holds
    assert bad.strip(b"\x10\x01") is None


def test_save_resources_in_one_call_is_all_or_nothing_inside_a_transaction(
    store: pystore.Store,
) -> None:
    items = [(f"id-{n}", make_agent(n)) for n in range(5)]
    with store.transaction() as t:
        t.save_resource("Agent", "before", make_agent(9))
        with pytest.raises(pystore.InvalidKeyError):
            t.save_resources("Agent", [*items[:3], ("bad\0id", make_agent(3)), *items[3:]])
        assert t.count("Agent") == 1  # none of the batch, the earlier write kept
        assert t.save_resources("Agent", items) == 5
    assert store.count("Agent") == 6
    assert store.get_resource("Agent", "id-4", agent_pb2.Agent).metadata.name == "Agent 4"
    assert store.save_resources("Agent", []) == 0
