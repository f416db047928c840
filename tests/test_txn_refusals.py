"""What a refused call inside ``transaction()`` leaves (docs/durability.md,
"All or nothing"): a single write refused (a conflict, a unique violation,
an update whose function raises) changes nothing and the transaction goes
on; a ``save_resources`` batch refused after some of its records were
written leaves the transaction unusable: every later call and the exit
raise TransactionError, and nothing of the transaction is committed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pystore import ConflictError, Store, TransactionError, UniqueViolationError
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
