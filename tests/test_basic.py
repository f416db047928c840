"""The ADR's operations end to end: save, get, list, delete, delete a kind, close."""

from __future__ import annotations

import datetime as dt
import pathlib
import time

import pytest
from support import make_agent

import pystore
from pystore.samples import agent_pb2, session_pb2, workflow_pb2


def test_installed_package_is_under_test() -> None:
    assert "site-packages" in pystore.__file__


def test_save_then_get_returns_equal_message(store: pystore.Store) -> None:
    agent = make_agent(1, org="", project="")
    store.save_resource("Agent", "agt-1", agent)
    assert store.get_resource("Agent", "agt-1", agent_pb2.Agent) == agent


def test_get_fills_given_instance_replacing_content(store: pystore.Store) -> None:
    store.save_resource("Agent", "a", agent_pb2.Agent(model="m1"))
    target = agent_pb2.Agent(instructions="old content", temperature=9.0)
    out = store.get_resource("Agent", "a", target)
    assert out is target
    assert target.model == "m1"
    assert target.instructions == "" and target.temperature == 0.0


def test_save_is_upsert(store: pystore.Store) -> None:
    store.save_resource("Agent", "a", agent_pb2.Agent(model="v1"))
    store.save_resource("Agent", "a", agent_pb2.Agent(model="v2"))
    assert store.get_resource("Agent", "a", agent_pb2.Agent).model == "v2"
    assert store.count("Agent") == 1


def test_create_refuses_existing(store: pystore.Store) -> None:
    store.create_resource("Agent", "a", agent_pb2.Agent(model="first"))
    with pytest.raises(pystore.AlreadyExistsError, match="Agent/a"):
        store.create_resource("Agent", "a", agent_pb2.Agent(model="second"))
    assert store.get_resource("Agent", "a", agent_pb2.Agent).model == "first"


def test_not_found_is_keyerror_with_adr_message(store: pystore.Store) -> None:
    with pytest.raises(pystore.NotFoundError) as info:
        store.get_resource("Agent", "missing", agent_pb2.Agent)
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, pystore.StoreError)
    assert "resource not found: Agent/missing" in str(info.value)
    with pytest.raises(KeyError, match="resource not found: Agent/missing"):
        store.get_record("Agent", "missing")


def test_get_record_has_raw_bytes_and_aware_utc_time(store: pystore.Store) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    msg = session_pb2.Session(agent_id="x", subject="hello")
    store.save_resource("Session", "s-1", msg)
    rec = store.get_record("Session", "s-1")
    assert isinstance(rec, pystore.Resource)
    assert (rec.id, rec.kind, rec.data) == ("s-1", "Session", msg.SerializeToString())
    assert rec.updated_at.tzinfo is not None and rec.updated_at.utcoffset() == dt.timedelta(0)
    assert before <= rec.updated_at <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)


def test_save_stamps_a_new_updated_at(store: pystore.Store) -> None:
    store.save_resource("Agent", "a", agent_pb2.Agent())
    first = store.get_record("Agent", "a").updated_ns
    time.sleep(0.002)
    store.save_resource("Agent", "a", agent_pb2.Agent(model="x"))
    assert store.get_record("Agent", "a").updated_ns > first


def test_list_raw_and_decoded_in_key_order(store: pystore.Store) -> None:
    for i in (3, 1, 2):
        store.save_resource("Workflow", f"wf-{i}", workflow_pb2.Workflow(description=f"d{i}"))
    raw = store.list_resources("Workflow")
    assert all(isinstance(b, bytes) for b in raw)
    decoded = store.list_resources("Workflow", workflow_pb2.Workflow)
    assert [w.description for w in decoded] == ["d1", "d2", "d3"]
    assert [workflow_pb2.Workflow.FromString(b).description for b in raw] == ["d1", "d2", "d3"]


def test_list_of_empty_or_unknown_kind_is_empty(store: pystore.Store) -> None:
    assert store.list_resources("Nothing") == []
    assert store.list_resources("Nothing", agent_pb2.Agent) == []
    assert store.count("Nothing") == 0


def test_delete_returns_whether_it_existed(store: pystore.Store) -> None:
    store.save_resource("Agent", "a", agent_pb2.Agent())
    assert store.delete_resource("Agent", "a") is True
    assert store.delete_resource("Agent", "a") is False
    with pytest.raises(pystore.NotFoundError):
        store.get_record("Agent", "a")


def test_delete_kind_counts_and_spares_other_kinds(store: pystore.Store) -> None:
    for i in range(25):
        store.save_resource("Agent", f"a{i}", agent_pb2.Agent())
    store.save_resource("Agents", "x", agent_pb2.Agent())
    store.save_resource("Agent0", "x", agent_pb2.Agent())
    store.save_resource("AgentExecution", "x", agent_pb2.Agent())
    assert store.delete_resources_by_kind("Agent") == 25
    assert store.delete_resources_by_kind("Agent") == 0
    assert store.kinds() == ["Agent0", "AgentExecution", "Agents"]


def test_empty_message_round_trips(store: pystore.Store) -> None:
    store.save_resource("Agent", "empty", agent_pb2.Agent())
    rec = store.get_record("Agent", "empty")
    assert rec.data == b""
    assert store.get_resource("Agent", "empty", agent_pb2.Agent) == agent_pb2.Agent()
    assert store.list_resources("Agent") == [b""]


def test_kinds_sorted_and_only_non_empty(store: pystore.Store) -> None:
    assert store.kinds() == []
    for kind in ("workflow", "Agent", "Session", "AgentExecution", "ägent"):
        store.save_resource(kind, "1", agent_pb2.Agent())
    store.save_resource("Gone", "1", agent_pb2.Agent())
    store.delete_resource("Gone", "1")
    assert store.kinds() == sorted(["workflow", "Agent", "Session", "AgentExecution", "ägent"])


def test_reopen_keeps_everything(store_path) -> None:  # type: ignore[no-untyped-def]
    with pystore.Store(store_path) as s:
        s.save_resource("Agent", "a", make_agent(1))
        stamp = s.get_record("Agent", "a").updated_ns
    with pystore.Store(store_path) as s:
        rec = s.get_record("Agent", "a")
        assert rec.updated_ns == stamp
        assert s.get_resource("Agent", "a", agent_pb2.Agent).metadata.name == "Agent 1"


def test_close_is_idempotent_and_later_calls_raise(store_path) -> None:  # type: ignore[no-untyped-def]
    s = pystore.Store(store_path)
    s.save_resource("Agent", "a", agent_pb2.Agent())
    s.close()
    s.close()
    assert s.closed
    calls = [
        lambda: s.save_resource("Agent", "a", agent_pb2.Agent()),
        lambda: s.create_resource("Agent", "b", agent_pb2.Agent()),
        lambda: s.get_resource("Agent", "a", agent_pb2.Agent),
        lambda: s.get_record("Agent", "a"),
        lambda: s.list_resources("Agent"),
        lambda: list(s.iter_resources("Agent")),
        lambda: s.count("Agent"),
        lambda: s.kinds(),
        lambda: s.update_resource("Agent", "a", agent_pb2.Agent, lambda m: None),
        lambda: s.save_resources("Agent", [("c", agent_pb2.Agent())]),
        lambda: s.delete_resource("Agent", "a"),
        lambda: s.delete_resources_by_kind("Agent"),
        lambda: s.transaction().__enter__(),
    ]
    for call in calls:
        with pytest.raises(pystore.StoreClosedError):
            call()


def test_context_manager_closes(store_path) -> None:  # type: ignore[no-untyped-def]
    with pystore.Store(store_path) as s:
        assert not s.closed
    assert s.closed


def test_every_call_on_a_closed_store_raises_even_with_nothing_to_do(
    tmp_path: pathlib.Path,
) -> None:
    # issue 2: "After close() every call raises StoreClosedError" -- calls
    # with nothing to read or write (limit=0, an empty batch) returned [] / 0;
    # and a read-only store refuses an empty append as it refuses an empty batch
    from pystore import ReadOnlyError, StoreClosedError
    from pystore.samples.agent_pb2 import Agent

    s = pystore.Store(tmp_path / "s")
    s.save_resource("A", "x", Agent())
    s.close()
    calls = [
        lambda: s.append_events("st", []), lambda: s.save_resources("A", []),
        lambda: s.list_ids("A", limit=0), lambda: s.history("A", "x", limit=0),
        lambda: s.read_events("st", limit=0), lambda: list(s.iter_resources("A", limit=0)),
        lambda: s.find("A", "i", "v", limit=0), lambda: s.changes(0, limit=0),
        lambda: s.collection("A", Agent).ids(limit=0),
    ]
    for call in calls:
        with pytest.raises(StoreClosedError):
            call()
    with pystore.Store(tmp_path / "s", readonly=True) as ro:
        for call in (lambda: ro.append_events("st", []), lambda: ro.save_resources("A", [])):
            with pytest.raises(ReadOnlyError):
                call()
