"""What a refused call inside ``transaction()`` leaves (docs/durability.md,
"All or nothing"): a single write refused (a conflict, a unique violation,
an update whose function raises) changes nothing and the transaction goes
on; a ``save_resources`` batch refused after some of its records were
written leaves the transaction unusable: every later call and the exit
raise TransactionError, and nothing of the transaction is committed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pystore import (
    AlreadyExistsError,
    ConflictError,
    Store,
    TransactionError,
    UniqueViolationError,
)
from pystore.samples.agent_pb2 import Agent


def _agent(slug: str, model: str = "") -> Agent:
    a = Agent(model=model)
    a.metadata.slug = slug
    return a


@pytest.fixture
def slugged(tmp_path: Path) -> Store:
    s = Store(tmp_path / "s", sync=False)
    s.create_index("V", "slug", field="metadata.slug", msg_type=Agent, unique=True)
    s.save_resource("V", "held", _agent("s1"))
    return s


def test_single_refusals_inside_a_transaction_leave_it_usable(slugged: Store) -> None:
    s = slugged
    rev = s.revision()
    with s.transaction() as t:
        t.save_resource("V", "x", _agent("", "kept"))
        with pytest.raises(UniqueViolationError):
            t.save_resource("V", "y", _agent("s1"))
        with pytest.raises(ConflictError):
            t.save_resource("V", "held", _agent("s2"), if_revision=rev + 5)
        with pytest.raises(ZeroDivisionError):
            t.update_resource("V", "held", Agent, lambda a: 1 / 0)
        with pytest.raises(UniqueViolationError):  # refused at its first record
            t.save_resources("V", [("z", _agent("s1"))])
        t.save_resource("V", "w", _agent("s2"))
    assert t.revision == rev + 1
    assert s.list_ids("V") == ["held", "w", "x"]
    assert s.find_ids("V", "slug", "s1") == ["held"]
    assert [(c.op, c.id) for c in s.changes(rev)] == [("put", "x"), ("put", "w")]


def test_a_batch_refused_midway_inside_a_transaction_aborts_the_transaction(
        slugged: Store) -> None:
    s = slugged
    rev = s.revision()
    with pytest.raises(TransactionError), s.transaction() as t:
        t.save_resource("V", "x", _agent("", "lost"))
        with pytest.raises(UniqueViolationError):
            t.save_resources("V", [("a", _agent("s2")), ("b", _agent("s1"))])
        with pytest.raises(TransactionError):
            t.get_bytes("V", "x")
        with pytest.raises(TransactionError):
            t.save_resource("V", "y", Agent())
    # the exit raised TransactionError: nothing of the transaction is committed
    assert t.revision == 0
    assert s.revision() == rev
    assert s.list_ids("V") == ["held"]
    assert s.find_ids("V", "slug", "s2") == []
    assert s.changes(rev) == []
    s.save_resource("V", "after", Agent())  # the store goes on
    assert s.revision() == rev + 1


REFUSALS = {
    "unique": lambda t: t.save_resource("V", "y", _agent("s1")),
    "conflict": lambda t: t.save_resource("V", "held", Agent(), if_revision=99),
    "create": lambda t: t.create_resource("V", "held", Agent()),
    "delete_conflict": lambda t: t.delete_resource("V", "held", if_revision=99),
    "update_fn": lambda t: t.update_resource("V", "held", Agent, lambda a: 1 / 0),
    "batch_first": lambda t: t.save_resources("V", [("y", _agent("s1")), ("z", Agent())]),
}


@pytest.mark.parametrize("mode", ["pwrite", "writemap"])
@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_a_refusal_inside_a_transaction_is_not_replayed_when_it_grows_the_map(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, refusal: str) -> None:
    """The transaction goes on after the refusal and then outgrows its map:
    the replay of its logged writes (docs/durability.md, "Map size") must
    neither repeat the refused call nor lose the writes around it."""
    if mode == "pwrite":
        monkeypatch.setenv("PYSTORE_WRITEMAP", "0")
    s = Store(tmp_path / "s", sync=False, map_size=1 << 16)
    monkeypatch.delenv("PYSTORE_WRITEMAP", raising=False)
    try:
        assert s.stats().write_mode == mode
        s.create_index("V", "slug", field="metadata.slug", msg_type=Agent, unique=True)
        s.set_history("V", 2)
        held = s.save_resource("V", "held", _agent("s1"))
        map0 = s.stats().map_size
        with s.transaction() as t:
            t.save_resource("V", "x", Agent(model="x1"))
            with pytest.raises((AlreadyExistsError, ConflictError, ZeroDivisionError)):
                REFUSALS[refusal](t)
            t.append_events("e", [(1, Agent()), (1, Agent(model="dup"))])
            t.save_resource("V", "big", Agent(instructions="L" * 3_000_000))  # outgrows it
            t.save_resource("V", "x", Agent(model="x2"))
        assert s.stats().map_size > map0
        assert t.revision == held + 1
        assert s.list_ids("V") == ["big", "held", "x"]
        assert s.get_record("V", "held").revision == held
        assert s.get_resource("V", "x", Agent).model == "x2"
        assert [r.revision for r in s.history("V", "x")] == [held + 1]  # not its own overwrite
        assert [(e.seq, e.data) for e in s.read_events("e")] == [(1, b"")]
        assert [(c.op, c.id, c.seq) for c in s.changes(held)] == [
            ("put", "x", None), ("append", None, 1), ("put", "big", None), ("put", "x", None)]
        assert s.find_ids("V", "slug", "s1") == ["held"]
    finally:
        s.close()
