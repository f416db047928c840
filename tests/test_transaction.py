"""Transactions, read-modify-write and batches: all or nothing, never a deadlock."""

from __future__ import annotations

import threading
import time

import pytest

import pystore
from pystore.samples import agent_execution_pb2, agent_pb2

Exec = agent_execution_pb2.AgentExecution


def test_commits_at_exit_and_reads_see_own_writes(store: pystore.Store) -> None:
    with store.transaction() as t:
        t.save_resource("Agent", "a", agent_pb2.Agent(model="m"))
        t.create_resource("AgentExecution", "e", Exec(agent_id="a"))
        assert t.get_resource("Agent", "a", agent_pb2.Agent).model == "m"
        assert t.get_record("AgentExecution", "e").kind == "AgentExecution"
        assert t.count("Agent") == 1
        assert t.list_resources("AgentExecution", Exec)[0].agent_id == "a"
        assert t.delete_resource("Agent", "a") is True
        assert t.count("Agent") == 0
        t.save_resource("Agent", "b", agent_pb2.Agent())
    assert store.count("Agent") == 1 and store.count("AgentExecution") == 1


def test_rolls_back_everything_on_exception(store: pystore.Store) -> None:
    store.save_resource("Agent", "keep", agent_pb2.Agent(model="old"))
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as t:
        t.save_resource("Agent", "keep", agent_pb2.Agent(model="new"))
        t.save_resource("Agent", "x", agent_pb2.Agent())
        t.delete_resources_by_kind("Agent")
        raise RuntimeError("boom")
    assert store.get_resource("Agent", "keep", agent_pb2.Agent).model == "old"
    assert store.count("Agent") == 1


def test_failed_create_inside_is_catchable_and_rest_commits(store: pystore.Store) -> None:
    store.save_resource("Agent", "dup", agent_pb2.Agent())
    with store.transaction() as t:
        t.save_resource("Agent", "new", agent_pb2.Agent())
        with pytest.raises(pystore.AlreadyExistsError):
            t.create_resource("Agent", "dup", agent_pb2.Agent(model="x"))
    assert store.count("Agent") == 2
    assert store.get_resource("Agent", "dup", agent_pb2.Agent).model == ""


def test_store_calls_from_the_owning_thread_raise_not_deadlock(store: pystore.Store) -> None:
    with store.transaction() as t:
        t.save_resource("Agent", "a", agent_pb2.Agent())
        for call in (
            lambda: store.save_resource("Agent", "b", agent_pb2.Agent()),
            lambda: store.get_record("Agent", "a"),
            lambda: store.count("Agent"),
            lambda: store.transaction().__enter__(),
            lambda: store.close(),
        ):
            with pytest.raises(pystore.TransactionError):
                call()
    assert store.count("Agent") == 1 and not store.closed


def test_other_threads_wait_for_the_transaction(store: pystore.Store) -> None:
    order: list[str] = []
    started = threading.Event()

    def writer() -> None:
        started.set()
        store.save_resource("Agent", "other", agent_pb2.Agent())
        order.append("other thread saved")

    with store.transaction() as t:
        th = threading.Thread(target=writer)
        th.start()
        started.wait(5)
        time.sleep(0.1)  # the other thread is now blocked on the write lock
        t.save_resource("Agent", "mine", agent_pb2.Agent())
        order.append("transaction done")
    th.join(10)
    assert not th.is_alive()
    assert order == ["transaction done", "other thread saved"]
    assert store.count("Agent") == 2


def test_readers_in_other_threads_do_not_see_uncommitted(store: pystore.Store) -> None:
    seen: list[int] = []
    with store.transaction() as t:
        t.save_resource("Agent", "a", agent_pb2.Agent())
        th = threading.Thread(target=lambda: seen.append(store.count("Agent")))
        th.start()
        th.join(10)
    assert seen == [0]
    assert store.count("Agent") == 1


def test_transaction_is_bound_to_its_thread_and_single_use(store: pystore.Store) -> None:
    errors: list[BaseException] = []
    with store.transaction() as t:
        def use() -> None:
            try:
                t.save_resource("Agent", "x", agent_pb2.Agent())
            except BaseException as exc:
                errors.append(exc)

        th = threading.Thread(target=use)
        th.start()
        th.join(10)
    assert len(errors) == 1 and isinstance(errors[0], pystore.TransactionError)
    with pytest.raises(pystore.TransactionError, match="finished"):
        t.save_resource("Agent", "y", agent_pb2.Agent())
    with pytest.raises(pystore.TransactionError):
        t.__enter__()
    unentered = store.transaction()
    with pytest.raises(pystore.TransactionError):
        unentered.count("Agent")
    assert store.count("Agent") == 0


def test_update_resource_is_atomic_and_exception_changes_nothing(store: pystore.Store) -> None:
    store.save_resource("AgentExecution", "e", Exec(agent_id="a"))

    def fail(m: agent_execution_pb2.AgentExecution) -> None:
        m.agent_id = "changed"
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        store.update_resource("AgentExecution", "e", Exec, fail)
    assert store.get_resource("AgentExecution", "e", Exec).agent_id == "a"
    with pytest.raises(pystore.NotFoundError, match="resource not found: AgentExecution/zz"):
        store.update_resource("AgentExecution", "zz", Exec, lambda m: None)
    assert store.count("AgentExecution") == 1
    with pytest.raises(TypeError):
        store.update_resource("AgentExecution", "e", Exec, "not callable")  # type: ignore[arg-type]


def test_concurrent_read_modify_write_loses_no_update(store: pystore.Store) -> None:
    """The daemon's heartbeat-vs-edit race: every increment must survive."""
    store.save_resource("AgentExecution", "e", Exec())

    def bump(m: agent_execution_pb2.AgentExecution) -> None:
        m.status.tokens_used += 1

    def worker() -> None:
        for _ in range(100):
            store.update_resource("AgentExecution", "e", Exec, bump)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert store.get_resource("AgentExecution", "e", Exec).status.tokens_used == 600


def test_update_inside_transaction(store: pystore.Store) -> None:
    store.save_resource("AgentExecution", "e", Exec())
    with store.transaction() as t:
        t.update_resource("AgentExecution", "e", Exec, lambda m: setattr(m, "agent_id", "x"))
        assert t.get_resource("AgentExecution", "e", Exec).agent_id == "x"
    assert store.get_resource("AgentExecution", "e", Exec).agent_id == "x"


def test_save_resources_is_one_all_or_nothing_commit(store: pystore.Store) -> None:
    items = [(f"e-{i:03d}", Exec(agent_id=str(i))) for i in range(300)]
    assert store.save_resources("AgentExecution", items) == 300
    assert store.count("AgentExecution") == 300
    stamps = {r.updated_ns for r in store.iter_resources("AgentExecution")}
    assert len(stamps) == 1  # one commit, one stamp
    assert store.save_resources("AgentExecution", []) == 0
    assert store.save_resources("AgentExecution", iter(items[:5])) == 5


def test_save_resources_inside_a_failed_transaction_rolls_back(store: pystore.Store) -> None:
    with pytest.raises(KeyError), store.transaction() as t:
        t.save_resources("AgentExecution", [("a", Exec()), ("b", Exec())])
        raise KeyError("abort")
    assert store.count("AgentExecution") == 0
