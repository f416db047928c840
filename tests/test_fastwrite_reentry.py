"""A failing write re-entering between a one-call write and its error details.

The one-call writes (``ps_fw_*``) return -ticket on failure and leave the
details (code, stage, stored revision...) in the thread's ``ps_fw_info``.
A signal handler (or a finalizer) runs at any check point of the Python
code around the call; if it makes a failing write of its own -- here, to
another store, which takes the one-call path even inside the first store's
transaction -- it replaces those details.  The outer call must still raise
its own error: it compares the details' ticket with its result and, when
they are another call's, takes the general path, which does the write again
(the failed call wrote nothing) and raises what it finds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from checkpoints import walk_check_points

import pystore
from pystore import AlreadyExistsError, ConflictError, InvalidKeyError, Store
from pystore._lmdb import fastwrite, txnwrite
from pystore.samples.agent_pb2 import Agent


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    x = pystore.Store(tmp_path / "x", sync=False)
    y = pystore.Store(tmp_path / "y", sync=False)
    try:
        yield x, y
    finally:
        x.close()
        y.close()


def _outcome(call: Callable[[], object]) -> tuple[str, object]:
    try:
        return "ok", call()
    except ConflictError as e:
        return "ConflictError", (getattr(e, "actual", None), str(e))
    except pystore.StoreError as e:
        return type(e).__name__, str(e)


def _prepare(x: Store, y: Store, handler_fails: bool) -> tuple[int, Callable[[], None]]:
    """x/Agent/a at revision 3, y/Agent/b at 1; and the handler's writes on
    y: a failing one, with another code and another stored revision than
    the outer writes' failures, or ones that succeed (they must not touch
    the details of the outer failure either)."""
    for _ in range(3):
        rev = x.save_resource("Agent", "a", Agent(model="m"))
    y.save_resource("Agent", "b", Agent(model="m"))

    def fails() -> None:
        with pytest.raises(ConflictError):
            y.save_resource("Agent", "b", Agent(model="z"), if_revision=77)

    def succeed() -> None:
        y.save_resource("Agent", "b", Agent(model="z"))
        y.delete_resource("Agent", "nothing")
        y.save_resources("Agent", [("c", Agent())])

    return rev, fails if handler_fails else succeed


def _walk(filename: str, cases: dict[str, Callable[[], object]],
          handler: Callable[[], None]) -> tuple[int, list[tuple[str, object]]]:
    """Each case with the handler at each of its check points in filename:
    (points walked, the cases whose outcome changed, with where)."""
    want = {name: _outcome(call) for name, call in cases.items()}
    points, wrong = 0, []
    for name, call in cases.items():
        n, bad = walk_check_points(functools.partial(_outcome, call), filename, handler,
                                   want[name])
        points += n
        wrong += [(name, w) for w in bad]
    return points, wrong


@pytest.mark.parametrize("in_txn", [False, True], ids=["one-call", "in-transaction"])
@pytest.mark.parametrize("handler_fails", [True, False], ids=["fails", "succeeds"])
def test_a_write_at_any_check_point_of_a_failing_write(
    two: tuple[Store, Store], handler_fails: bool, in_txn: bool
) -> None:
    """The outer write fails (a conflict, an existing key, a bad id in a
    batch), on its own or inside a transaction(); the handler's writes run
    at each check point of the code around the C call."""
    x, y = two
    rev, handler = _prepare(x, y, handler_fails)

    def on(write: Callable[[Any], object]) -> Callable[[], object]:
        if not in_txn:
            return lambda: write(x)

        def run() -> object:
            with x.transaction() as t:
                return write(t)

        return run

    cases: dict[str, Callable[[], object]] = {
        "save if_revision": on(lambda s: s.save_resource("Agent", "a", Agent(),
                                                         if_revision=rev + 9)),
        "create existing": on(lambda s: s.create_resource("Agent", "a", Agent())),
        "delete if_revision": on(lambda s: s.delete_resource("Agent", "a", if_revision=rev + 9)),
        "save_resources bad id": on(lambda s: s.save_resources("Agent", [("ok", Agent()),
                                                                          ("bad\0", Agent())])),
    }
    assert _outcome(cases["save if_revision"])[1][0] == rev  # type: ignore[index]
    assert _outcome(cases["create existing"])[0] == AlreadyExistsError.__name__
    assert _outcome(cases["save_resources bad id"])[0] == InvalidKeyError.__name__
    points, wrong = _walk(txnwrite.__file__ if in_txn else fastwrite.__file__, cases, handler)
    assert points > (8 if in_txn else 20)
    assert wrong == [], "\n".join(map(repr, wrong))
    assert x.get_resource("Agent", "a", Agent).model == "m"  # nothing written
    assert not x.exists("Agent", "ok")


def test_a_failing_write_after_a_batch_that_spoiled_its_transaction(
    two: tuple[Store, Store],
) -> None:
    """A batch in a transaction whose second record breaks a unique index:
    the first is written, so the transaction can only be aborted now, and
    the batch raises UniqueViolationError.  A failing write of the handler
    between the call and the read of its details replaced them; the general
    path then found the transaction spoiled and raised TransactionError."""
    x, y = two
    x.create_index("Agent", "slug", field="metadata.slug", msg_type=Agent, unique=True)
    held = Agent()
    held.metadata.slug = "s"
    x.save_resource("Agent", "a", held)
    y.save_resource("Agent", "b", Agent(model="m"))

    def handler() -> None:
        with pytest.raises(ConflictError):
            y.save_resource("Agent", "b", Agent(model="z"), if_revision=77)

    fresh, dup = Agent(), Agent()
    fresh.metadata.slug = "t"
    dup.metadata.slug = "s"

    def run() -> object:
        with x.transaction() as t:
            return t.save_resources("Agent", [("ok", fresh), ("dup", dup)])

    assert _outcome(run)[0] == pystore.UniqueViolationError.__name__
    points, wrong = _walk(txnwrite.__file__, {"batch": run}, handler)
    assert points > 8
    assert wrong == [], "\n".join(map(repr, wrong))
    assert not x.exists("Agent", "ok")

