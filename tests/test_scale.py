"""Size: 30,000-resource kinds, 16 MB values, many kinds at once."""

from __future__ import annotations

import random

from support import make_agent

import pystore
from pystore.samples import agent_execution_pb2, agent_pb2


def test_30000_resource_kind(store: pystore.Store) -> None:
    ids = [f"agt-{i:06d}" for i in range(30_000)]
    random.Random(7).shuffle(ids)
    agent = make_agent(1)
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        assert store.save_resources("Agent", [(i, agent) for i in chunk]) == len(chunk)
    store.save_resources("AgentExecution", [(f"x{i}", agent) for i in range(500)])
    assert store.count("Agent") == 30_000
    raw = store.list_resources("Agent")
    assert len(raw) == 30_000
    assert raw[0] == raw[-1] == store.get_record("Agent", "agt-000000").data
    parsed = store.list_resources("Agent", agent_pb2.Agent)
    assert parsed[29_999].metadata.name == "Agent 1"
    assert [r.id for r in store.iter_resources("Agent", after="agt-029997")] == [
        "agt-029998", "agt-029999"]
    assert sum(1 for _ in store.iter_resources("Agent")) == 30_000
    assert store.kinds() == ["Agent", "AgentExecution"]
    assert store.delete_resources_by_kind("Agent") == 30_000
    assert store.count("Agent") == 0 and store.count("AgentExecution") == 500


def test_16mb_value_round_trips(store_path) -> None:  # type: ignore[no-untyped-def]
    blob = random.Random(1).randbytes(16 * 1024 * 1024)
    ex = agent_execution_pb2.AgentExecution(agent_id="big")
    ex.status.tool_calls.add(tool="dump", output=blob)
    with pystore.Store(store_path, map_size=8 * 1024 * 1024) as s:  # grows by itself
        s.save_resource("AgentExecution", "big", ex)
        s.save_resource("AgentExecution", "small", agent_execution_pb2.AgentExecution())
        got = s.get_resource("AgentExecution", "big", agent_execution_pb2.AgentExecution)
        assert got.status.tool_calls[0].output == blob
    with pystore.Store(store_path, readonly=True) as s:
        assert s.get_record("AgentExecution", "big").data == ex.SerializeToString()
        assert len(s.list_resources("AgentExecution")) == 2


def test_large_values_rewritten_often(store: pystore.Store) -> None:
    """Execution records grow to hundreds of KB and are rewritten on every update."""
    ex = agent_execution_pb2.AgentExecution(agent_id="a")
    store.save_resource("AgentExecution", "e", ex)
    for i in range(60):
        def grow(m: agent_execution_pb2.AgentExecution, i: int = i) -> None:
            m.status.messages.add(role="tool", content=f"{i}:" + "x" * 8000)

        store.update_resource("AgentExecution", "e", agent_execution_pb2.AgentExecution, grow)
    got = store.get_resource("AgentExecution", "e", agent_execution_pb2.AgentExecution)
    assert len(got.status.messages) == 60
    assert got.status.messages[59].content.startswith("59:")
