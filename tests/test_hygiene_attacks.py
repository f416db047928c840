"""Adversarial checks of the hygiene promise: no tenancy value reaches the
disk on any write path, and everything else round-trips exactly."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pystore
from pystore.aio import AsyncStore
from pystore.samples import agent_pb2, common_pb2

TENANCY = ("org_id", "project_id")
F = descriptor_pb2.FieldDescriptorProto


def _disk(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(path.iterdir()) if p.is_file())


def _model_strip(msg: Message) -> None:
    """The promise, written independently of pystore's plans: clear every
    field named org_id/project_id at every depth."""
    for fd, value in list(msg.ListFields()):
        if fd.name in TENANCY:
            msg.ClearField(fd.name)
        elif fd.message_type is not None:
            if fd.message_type.GetOptions().map_entry:
                if fd.message_type.fields_by_name["value"].message_type is not None:
                    for v in value.values():
                        _model_strip(v)
            elif not isinstance(value, Message):  # a repeated field
                for v in value:
                    _model_strip(v)
            else:
                _model_strip(value)


def _expected(msg: Message) -> Message:
    out = type(msg)()
    out.CopyFrom(msg)
    _model_strip(out)
    return out


def _pool_class(package: str, fields: list[tuple[str, int]]) -> type[Message]:
    fdp = descriptor_pb2.FileDescriptorProto(name=f"{package}.proto", package=package,
                                             syntax="proto3")
    rec = fdp.message_type.add(name="Rec")
    for name, number in fields:
        rec.field.add(name=name, number=number, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.Rec"))


def test_same_named_types_of_two_pools_are_planned_apart(store_path: Path) -> None:
    """Two message types with one full name (two descriptor pools: two
    versions of a schema in one process) each get their own plan: a type
    without tenancy fields planned first must not hide them in the other."""
    Old = _pool_class("hygpool", [("name", 1)])
    New = _pool_class("hygpool", [("name", 1), ("org_id", 2)])
    with pystore.Store(store_path, sync=False) as s:
        s.save_resource("Old", "a", Old(name="old"))
        s.save_resource("New", "b", New(name="new", org_id="ORG-POOL-LEAK"))
        s.save_resources("New", [("c", New(name="c", org_id="ORG-POOL-LEAK"))])
        assert s.get_resource("New", "b", New) == New(name="new")
    assert b"ORG-POOL-LEAK" not in _disk(store_path)


def test_same_named_type_planned_first_with_tenancy_fields(store_path: Path) -> None:
    """The other order: a plan naming org_id must not be applied to a
    same-named type that has no such field (it raised KeyError)."""
    New = _pool_class("hygpool2", [("name", 1), ("org_id", 2)])
    Old = _pool_class("hygpool2", [("name", 1), ("other", 2)])
    with pystore.Store(store_path, sync=False) as s:
        s.save_resource("New", "b", New(name="new", org_id="ORG-X"))
        s.save_resource("Old", "a", Old(name="old", other="kept"))
        assert s.get_resource("Old", "a", Old) == Old(name="old", other="kept")
    assert b"ORG-X" not in _disk(store_path)


def _tricky_class() -> type[Message]:
    """Tenancy fields inside a oneof, a map of messages, a repeated message,
    a message-typed org_id and packed/unpacked repeated siblings."""
    fdp = descriptor_pb2.FileDescriptorProto(name="hygtricky.proto", package="hygt",
                                             syntax="proto3")
    leaf = fdp.message_type.add(name="Leaf")
    leaf.field.add(name="org_id", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    leaf.field.add(name="v", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    leaf.field.add(name="nums", number=3, type=F.TYPE_INT64, label=F.LABEL_REPEATED)
    leaf.field.add(name="raw", number=4, type=F.TYPE_INT64, label=F.LABEL_REPEATED,
                   options=descriptor_pb2.FieldOptions(packed=False))
    top = fdp.message_type.add(name="Top")
    top.oneof_decl.add(name="choice")
    top.field.add(name="project_id", number=7, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL,
                  oneof_index=0)
    top.field.add(name="leaf_choice", number=8, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                  type_name=".hygt.Leaf", oneof_index=0)
    top.field.add(name="leaves", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                  type_name=".hygt.Leaf")
    entry = top.nested_type.add(name="ByEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                    type_name=".hygt.Leaf")
    top.field.add(name="by", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                  type_name=".hygt.Top.ByEntry")
    top.field.add(name="org_id", number=4, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                  type_name=".hygt.Leaf")
    top.field.add(name="name", number=5, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("hygt.Top"))


Top = _tricky_class()
Leaf = type(Top().leaves.add())

_text = st.text(alphabet="abcxyz", max_size=6)
_secret = st.integers(0, 10**6).map(lambda i: f"SECRET{i:07d}")


@st.composite
def _leaf(draw: st.DrawFn) -> Message:
    m = Leaf(v=draw(_text), nums=draw(st.lists(st.integers(-2**40, 2**40), max_size=3)),
             raw=draw(st.lists(st.integers(0, 300), max_size=3)))
    if draw(st.booleans()):
        m.org_id = draw(_secret)
    return m


@st.composite
def _top(draw: st.DrawFn) -> Message:
    m = Top(name=draw(_text))
    for leaf in draw(st.lists(_leaf(), max_size=3)):
        m.leaves.add().CopyFrom(leaf)
    for k, leaf in draw(st.dictionaries(st.integers(-5, 5), _leaf(), max_size=3)).items():
        m.by[k].CopyFrom(leaf)
    choice = draw(st.sampled_from(["none", "project", "leaf"]))
    if choice == "project":
        m.project_id = draw(_secret)
    elif choice == "leaf":
        m.leaf_choice.CopyFrom(draw(_leaf()))
    if draw(st.booleans()):
        m.org_id.CopyFrom(draw(_leaf()))
    return m


@st.composite
def _agent(draw: st.DrawFn) -> Message:
    md = common_pb2.ResourceMetadata(name=draw(_text), labels=draw(
        st.dictionaries(_text, _text, max_size=2)), version=draw(st.integers(0, 2**62)))
    if draw(st.booleans()):
        md.org_id = draw(_secret)
    if draw(st.booleans()):
        md.project_id = draw(_secret)
    a = agent_pb2.Agent(metadata=md, model=draw(_text))
    for _ in range(draw(st.integers(0, 3))):
        a.skills.add(kind=draw(_text), id=draw(_text), org_id=draw(_secret))
    for k in draw(st.lists(_text, max_size=2, unique=True)):
        a.environments[k].CopyFrom(common_pb2.ResourceRef(id=draw(_text),
                                                          project_id=draw(_secret)))
    return a


def _paths() -> dict[str, Callable[[pystore.Store, str, list[Message]], None]]:
    def save(s: pystore.Store, kind: str, ms: list[Message]) -> None:
        for i, m in enumerate(ms):
            s.save_resource(kind, str(i), m)

    def create(s: pystore.Store, kind: str, ms: list[Message]) -> None:
        for i, m in enumerate(ms):
            s.create_resource(kind, f"c{i}", m)

    def many(s: pystore.Store, kind: str, ms: list[Message]) -> None:
        s.save_resources(kind, [(f"m{i}", m) for i, m in enumerate(ms)])

    def txn(s: pystore.Store, kind: str, ms: list[Message]) -> None:
        with s.transaction() as t:
            t.save_resources(kind, [(f"t{i}", m) for i, m in enumerate(ms)])
            for i, m in enumerate(ms):
                t.save_resource(kind, f"u{i}", m)

    def update(s: pystore.Store, kind: str, ms: list[Message]) -> None:
        for i, m in enumerate(ms):
            s.save_resource(kind, f"p{i}", type(m)())
            s.update_resource(kind, f"p{i}", type(m), lambda x, m=m: x.CopyFrom(m))

    def collection(s: pystore.Store, kind: str, ms: list[Message]) -> None:
        c = s.collection(kind, type(ms[0])) if ms else None
        for i, m in enumerate(ms):
            assert c is not None
            c.save(f"k{i}", m)

    def aio(s: pystore.Store, kind: str, ms: list[Message]) -> None:
        async def run() -> None:
            a = AsyncStore(s)  # not closed here: the test closes s
            for i, m in enumerate(ms):
                await a.save_resource(kind, f"a{i}", m)
            await a.save_resources(kind, [(f"b{i}", m) for i, m in enumerate(ms)])
        asyncio.run(run())

    return {"save": save, "create": create, "many": many, "txn": txn, "update": update,
            "collection": collection, "aio": aio}


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(tops=st.lists(_top(), min_size=1, max_size=4), agents=st.lists(_agent(), max_size=3))
def test_every_write_path_strips_and_round_trips(
    tmp_path_factory: pytest.TempPathFactory, tops: list[Message], agents: list[Message]
) -> None:
    for name, write in _paths().items():
        for durable in (False, True) if name == "save" else (False,):
            path = tmp_path_factory.mktemp(f"hyg_{name}") / "store"
            before = [m.SerializeToString() for m in tops + agents]
            with pystore.Store(path, sync=durable) as s:
                write(s, "Top", tops)
                write(s, "Agent", agents)
                for kind, ms, cls in (("Top", tops, Top), ("Agent", agents, agent_pb2.Agent)):
                    ids = s.list_ids(kind)
                    assert len(ids) == len(ms) * (2 if name in ("txn", "aio") else 1)
                    for id_ in ids:
                        idx = int("".join(ch for ch in id_ if ch.isdigit()))
                        want = _expected(ms[idx])
                        assert s.get_resource(kind, id_, cls) == want, (name, id_)
                        # map entries keep the caller's order: bytes equal up to it
                        raw = s.get_bytes(kind, id_)
                        assert len(raw) == want.ByteSize(), (name, id_)
                        assert cls.FromString(raw).SerializeToString(deterministic=True) == (
                            want.SerializeToString(deterministic=True)), (name, id_)
            assert [m.SerializeToString() for m in tops + agents] == before  # callers untouched
            assert b"SECRET" not in _disk(path), name


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).parent / "pystore")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120)


def test_load_strips_data_of_a_dump_from_a_store_that_kept_tenancy(tmp_path: Path) -> None:
    """A dump's ``data`` from a store opened with ``strip_fields=()`` (or a
    hand-written one) carries tenancy values; loading it into a stripping
    store must not write them (records and kept versions), and a pystore
    dump of the loaded store loads back byte for byte."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    with pystore.Store(src, sync=False, strip_fields=()) as s:
        s.set_history("Agent", 3)
        for v in range(2):
            a = agent_pb2.Agent(model=f"m{v}")
            a.metadata.org_id = "ORG-LOAD-LEAK"
            a.skills.add(id="sk", project_id="PROJ-LOAD-LEAK")
            s.save_resource("Agent", "a", a)
    dump = tmp_path / "d.jsonl"
    assert _cli("dump", src, "-o", dump).returncode == 0
    assert b"ORG-LOAD-LEAK" in dump.read_bytes() or b"T1JHLUxPQUQtTEVBSw" in dump.read_bytes()
    p = _cli("load", dst, dump)
    assert p.returncode == 0, p.stderr
    raw = _disk(dst)
    assert b"LOAD-LEAK" not in raw
    with pystore.Store(dst, sync=False) as s:
        got = s.get_resource("Agent", "a", agent_pb2.Agent)
        assert got == agent_pb2.Agent(model="m1", skills=[common_pb2.ResourceRef(id="sk")],
                                      metadata=common_pb2.ResourceMetadata())
    dump2, dst2 = tmp_path / "d2.jsonl", tmp_path / "dst2"
    assert _cli("dump", dst, "-o", dump2).returncode == 0
    assert _cli("load", dst2, dump2).returncode == 0
    with pystore.Store(dst, sync=False) as a, pystore.Store(dst2, sync=False) as b:
        assert a.get_bytes("Agent", "a") == b.get_bytes("Agent", "a")


def _fixed_messages(secret: str) -> list[tuple[str, Message]]:
    top = Top(name=f"KEPT{secret[::-1]}", project_id=secret)
    top.leaves.add(org_id=secret, v="leaf", nums=[1, -2, 2**40], raw=[3, 300])
    top.by[7].org_id = secret
    top.org_id.v = secret  # a message-typed field named org_id: left out whole
    agent = agent_pb2.Agent(model="m")
    agent.metadata.org_id = secret
    agent.environments["dev"].project_id = secret
    return [("Top", top), ("Agent", agent)]


def test_every_write_path_of_both_backends(any_store: pystore.Store, backend: str,
                                           request: pytest.FixtureRequest) -> None:
    secret = f"TENANT-{request.node.name}-{id(any_store)}"
    s = any_store
    for kind, m in _fixed_messages(secret):
        cls = type(m)
        s.save_resource(kind, "save", m)
        s.create_resource(kind, "create", m)
        s.save_resources(kind, [("many", m), ("many2", m)])
        with s.transaction() as t:
            t.save_resource(kind, "txn", m)
            t.save_resources(kind, [("txnmany", m)])
        s.save_resource(kind, "upd", cls())
        s.update_resource(kind, "upd", cls, lambda x, m=m: x.CopyFrom(m))
        s.collection(kind, cls).save("coll", m)
        want = _expected(m)
        for id_ in s.list_ids(kind):
            assert secret.encode() not in s.get_bytes(kind, id_), (kind, id_)
            assert s.get_resource(kind, id_, cls) == want, (kind, id_)
    if backend == "etcd":
        cluster = request.getfixturevalue("etcd_cluster")
        files = [p for p in cluster.base.rglob("*") if p.is_file() and p.suffix != ".log"]
        raw = b"".join(p.read_bytes() for p in files)
    else:
        raw = _disk(Path(s.path))
    assert f"KEPT{secret[::-1]}".encode() in raw  # the payloads really are in these files
    assert secret.encode() not in raw


def test_durable_group_commit_leader_strips_every_writer(store_path: Path) -> None:
    """Durable writers in threads share commits; the leader strips the
    payloads of the writers it carries."""
    secret = "GROUP-SECRET-77"
    msgs = dict(_fixed_messages(secret))
    with pystore.Store(store_path) as s:
        def work(n: int) -> None:
            for i in range(15):
                kind = "Top" if (n + i) % 2 else "Agent"
                s.save_resource(kind, f"{n}-{i}", msgs[kind])

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for kind, m in msgs.items():
            ids = s.list_ids(kind)
            assert len(ids) == 30
            assert all(s.get_resource(kind, i, type(m)) == _expected(m) for i in ids)
    assert secret.encode() not in _disk(store_path)


def test_large_messages_past_the_strip_buffer(store_path: Path) -> None:
    """Messages past the thread's 1 MiB strip space (and near it) on the
    single, batch, transaction and durable paths."""
    secret = "BIG-SECRET-31"
    msgs = []
    for size in (1 << 16, (1 << 20) - 40, (1 << 20) + 5, 3 << 20):
        a = agent_pb2.Agent(instructions="i" * size)
        a.metadata.org_id = secret
        a.skills.add(id="s", project_id=secret)
        msgs.append(a)
    for sync in (False, True):
        path = store_path.with_name(f"big{sync}")
        with pystore.Store(path, sync=sync) as s:
            for i, m in enumerate(msgs):
                s.save_resource("Agent", f"s{i}", m)
            s.save_resources("Agent", [(f"m{i}", m) for i, m in enumerate(msgs)])
            with s.transaction() as t:
                t.save_resources("Agent", [(f"t{i}", m) for i, m in enumerate(msgs)])
            for id_ in s.list_ids("Agent"):
                want = _expected(msgs[int(id_[1:])])
                assert s.get_bytes("Agent", id_) == want.SerializeToString()
        assert secret.encode() not in _disk(path)


def _ld(field: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes([field << 3 | 2, len(body)]) + body


def test_odd_encodings_twice_serialized_and_mistyped_tenancy(tmp_path: Path) -> None:
    """Wire forms a parser accepts: a sub-message given twice (merged), a
    tenancy field given twice (last wins) and one with another wire type
    (kept as an unknown field by the parser); by save and by load's data."""
    md1 = _ld(4, b"ORG-ODD-A") + _ld(2, b"name1")
    md2 = _ld(5, b"PRJ-ODD-B") + _ld(4, b"ORG-ODD-C") + bytes([4 << 3 | 5]) + b"ORG!"
    ref = _ld(3, b"ORG-ODD-D") + _ld(2, b"ref")
    data = _ld(1, md1) + _ld(6, ref) + _ld(1, md2) + _ld(6, ref)
    msg = agent_pb2.Agent.FromString(data)
    assert msg.metadata.org_id == "ORG-ODD-C" and msg.metadata.name == "name1"
    want = _expected(msg)
    want.metadata.DiscardUnknownFields()  # org_id as a fixed32: dropped too
    secrets = (b"ORG-ODD", b"PRJ-ODD", b"ORG!")
    path = tmp_path / "s"
    with pystore.Store(path, sync=False) as s:
        s.save_resource("Agent", "a", msg)
        assert s.get_resource("Agent", "a", agent_pb2.Agent) == want
    assert not any(x in _disk(path) for x in secrets)
    line = {"kind": "Agent", "id": "b", "data": base64.b64encode(data).decode()}
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps(line) + "\n")
    assert _cli("load", path, src).returncode == 0
    with pystore.Store(path, sync=False) as s:
        got = s.get_resource("Agent", "b", agent_pb2.Agent)
        assert got == want and len(got.skills) == 2
    assert not any(x in _disk(path) for x in secrets)
