"""The self-describing store: each kind's schema recorded with its writes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, json_format
from support import make_agent

import pystore
from pystore._lmdb.schema import message_class, read_schema, schema_keys
from pystore.samples import agent_execution_pb2, agent_pb2, session_pb2


def _schema(store: pystore.Store, kind: str) -> tuple[str, bytes] | None:
    return store._schema_of(kind)


def test_first_save_records_type_and_descriptor_set(store: pystore.Store) -> None:
    store.save_resource("Agent", "a", make_agent(1))
    schema = _schema(store, "Agent")
    assert schema is not None
    name, fds = schema
    assert name == "pystore.samples.Agent"
    files = [f.name for f in descriptor_pb2.FileDescriptorSet.FromString(fds).file]
    # dependencies first, the type's own file last
    assert files[-1] == "pystore/samples/agent.proto"
    assert files.index("pystore/samples/common.proto") < files.index("pystore/samples/agent.proto")
    assert "google/protobuf/timestamp.proto" in files


def test_stored_schema_decodes_records_without_generated_code(store: pystore.Store) -> None:
    agent = make_agent(7, org="", project="")
    store.save_resource("Agent", "a", agent)
    name, fds = _schema(store, "Agent") or ("", b"")
    cls = message_class(name, fds)
    assert cls is not agent_pb2.Agent
    decoded = cls.FromString(store.get_record("Agent", "a").data)
    assert json_format.MessageToDict(decoded) == json_format.MessageToDict(agent)


def test_decoding_in_a_process_that_never_imports_the_schema(store_path: Path) -> None:
    with pystore.Store(store_path) as s:
        s.save_resource("Session", "s1", session_pb2.Session(agent_id="agent-9"))
    code = textwrap.dedent(f"""
        import json, sys
        import pystore
        from pystore._lmdb.schema import message_class
        from google.protobuf import json_format
        with pystore.Store({str(store_path)!r}, readonly=True) as s:
            name, fds = s._schema_of("Session")
            msg = message_class(name, fds).FromString(s.get_record("Session", "s1").data)
        assert not any(m.startswith("pystore.samples") for m in sys.modules), "generated code used"
        print(json.dumps(json_format.MessageToDict(msg)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"agentId": "agent-9"}


def test_every_write_path_records(store: pystore.Store) -> None:
    store.create_resource("K1", "x", agent_pb2.Agent())
    store.save_resources("K2", [("x", session_pb2.Session())])
    store.save_resource("K3", "x", agent_pb2.Agent())
    store.update_resource("K3", "x", session_pb2.Session, lambda m: None)
    with store.transaction() as t:
        t.save_resource("K4", "x", agent_execution_pb2.AgentExecution())
    names = {k: (_schema(store, k) or ("",))[0] for k in ("K1", "K2", "K3", "K4")}
    assert names == {
        "K1": "pystore.samples.Agent",
        "K2": "pystore.samples.Session",
        "K3": "pystore.samples.Session",  # the type changed: the schema follows
        "K4": "pystore.samples.AgentExecution",
    }


def test_schema_change_in_a_later_store_is_recorded(store_path: Path) -> None:
    with pystore.Store(store_path) as s:
        s.save_resource("Thing", "1", agent_pb2.Agent())
    with pystore.Store(store_path) as s:
        s.save_resource("Thing", "2", session_pb2.Session())
        assert (_schema(s, "Thing") or ("",))[0] == "pystore.samples.Session"
        s.save_resource("Thing", "3", agent_pb2.Agent())  # and back
        assert (_schema(s, "Thing") or ("",))[0] == "pystore.samples.Agent"


def test_rolled_back_transaction_records_nothing_and_leaves_cache_clean(
    store: pystore.Store,
) -> None:
    with pytest.raises(RuntimeError), store.transaction() as t:
        t.save_resource("Agent", "a", agent_pb2.Agent())
        raise RuntimeError("boom")
    assert _schema(store, "Agent") is None
    assert "Agent" not in store._schemas.known
    store.save_resource("Agent", "a", agent_pb2.Agent())
    assert _schema(store, "Agent") is not None


def test_failed_writes_leave_schema_and_cache_alone(store: pystore.Store) -> None:
    store.save_resource("Agent", "a", agent_pb2.Agent())
    with pytest.raises(pystore.AlreadyExistsError):
        store.create_resource("Agent", "a", session_pb2.Session())
    with pytest.raises(ValueError, match="user code failed"):
        store.update_resource("Agent", "a", session_pb2.Session, _fail)
    assert (_schema(store, "Agent") or ("",))[0] == "pystore.samples.Agent"
    assert store._schemas.known == {"Agent": agent_pb2.Agent.DESCRIPTOR}


def _fail(msg: session_pb2.Session) -> None:
    raise ValueError("user code failed")


def test_steady_state_is_cached_after_commit(store: pystore.Store) -> None:
    assert store._schemas.known == {}
    store.save_resource("Agent", "a", agent_pb2.Agent())
    assert store._schemas.known == {"Agent": agent_pb2.Agent.DESCRIPTOR}
    with store.transaction() as t:
        t.save_resource("Session", "s", session_pb2.Session())
        assert "Session" not in store._schemas.known  # not before the commit
    assert store._schemas.known["Session"] is session_pb2.Session.DESCRIPTOR


def test_very_long_kind_uses_a_hashed_meta_key(store: pystore.Store) -> None:
    kind = "K" * 505
    store.save_resource(kind, "i", agent_pb2.Agent())
    _, skey = schema_keys(kind.encode())
    assert len(skey) <= 511 and b"#" in skey
    with store._reading() as t:
        got = read_schema(t, kind.encode())
    assert got is not None and got[0] == "pystore.samples.Agent"


def test_message_class_rejects_garbage() -> None:
    with pytest.raises(pystore.CorruptionError):
        message_class("x.Y", b"\xff\xff\xff")
    fds = descriptor_pb2.FileDescriptorSet().SerializeToString()
    with pytest.raises(pystore.CorruptionError):
        message_class("x.Y", fds)
