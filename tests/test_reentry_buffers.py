"""A call of the same kind run between a C call and the read of its results.

Several Python paths hand the core a buffer or out-parameters of their
thread (allocated once, reused by every call) and read them after the call
returns.  The end of that call is a check point: a signal handler or a
finalizer may run there, in the same thread, and make a call of the same
kind -- here, to another store -- which fills the same buffer.  The outer
call must still return its own results: its own record (not the other
store's), its own stripped payload (not the other message's).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from checkpoints import walk_check_points

import pystore
from pystore import Store
from pystore._lmdb import core, fast, index, wirestrip
from pystore.samples.agent_pb2 import Agent


def _agent(model: str, org: str = "") -> Agent:
    a = Agent(model=model)
    a.metadata.org_id = org  # a tenancy field: stripped on save
    return a


@pytest.mark.parametrize("size", [0, 1_200_000], ids=["kept-buffer", "past-1MiB"])
def test_a_strip_between_a_strip_and_its_copy(tmp_path: Path, size: int) -> None:
    """A durable store's save strips with the thread's buffer
    (WirePlan.strip); a handler's save to another store strips into it
    after the outer strip's C call: the outer save stored that message.
    A message past the kept buffer (1 MiB) is stripped into a buffer of its
    own, whose output length must be its own too: the handler's strip
    wrote its length into the thread's, which it shared, and the outer save
    stored a prefix of its message."""
    x = pystore.Store(tmp_path / "x")
    y = pystore.Store(tmp_path / "y")
    try:
        mine = _agent("mine", "o1")
        mine.instructions = "i" * size
        x.save_resource("Agent", "a", _agent("m"))
        y.save_resource("Agent", "b", _agent("m"))

        def handler() -> None:
            y.save_resource("Agent", "b", _agent("theirs, longer", "o2"))

        def call() -> str:
            x.save_resource("Agent", "a", mine)
            got = x.get_resource("Agent", "a", Agent)
            return f"{got.model}/{got.metadata.org_id}/{len(got.instructions)}"

        points, wrong = walk_check_points(call, wirestrip.__file__, handler, f"mine//{size}")
        assert points >= 3
        assert wrong == []
    finally:
        x.close()
        y.close()


def test_a_read_between_a_read_and_its_copy(tmp_path: Path) -> None:
    """A store's first read of a kind goes the general way (env_get, the
    thread's buffer); another store's first read, run after its C call,
    read into the same buffer: the outer get returned the other record."""
    for path, model in ((tmp_path / "x", "mine"), (tmp_path / "y", "theirs, longer")):
        with Store(path, sync=False) as s:
            s.save_resource("Agent", "a", Agent(model=model))

    def handler() -> None:
        with Store(tmp_path / "y", sync=False) as y:
            assert y.get_resource("Agent", "a", Agent).model == "theirs, longer"

    def call() -> str:
        with Store(tmp_path / "x", sync=False) as x:  # new: its first read
            return x.get_resource("Agent", "a", Agent).model

    points, wrong = walk_check_points(call, fast.__file__, handler, "mine")
    assert points >= 3
    assert wrong == []


def test_reads_in_a_transaction_between_a_read_and_its_out_parameters(
    tmp_path: Path,
) -> None:
    """CTxn's out-parameters are the thread's (core._out): a handler's read
    in a transaction of another store filled them after the outer read's C
    call (another record, another count)."""
    x = pystore.Store(tmp_path / "x", sync=False)
    y = pystore.Store(tmp_path / "y", sync=False)
    try:
        x.save_resource("Agent", "a", Agent(model="mine"))
        for i in range(3):
            y.save_resource("Agent", f"b{i}", Agent(model="theirs, longer"))

        def handler() -> None:
            with y.transaction() as t:
                assert t.get_resource("Agent", "b0", Agent).model == "theirs, longer"
                assert t.get_record("Agent", "b1").revision == 2
                assert t.count("Agent") == 3
                assert not t.exists("Agent", "none")

        def call() -> tuple[str, int, int, bool]:
            with x.transaction() as t:
                return (t.get_resource("Agent", "a", Agent).model,
                        t.get_record("Agent", "a").revision, t.count("Agent"),
                        t.exists("Agent", "a"))

        points, wrong = walk_check_points(call, core.__file__, handler, ("mine", 1, 1, True))
        assert points >= 10
        assert wrong == []
    finally:
        x.close()
        y.close()


def test_a_lookup_between_a_lookup_and_its_copy(tmp_path: Path) -> None:
    """find_one of a record past the Reader's buffer goes the general way
    (find_first_env), which reads again into a bigger buffer kept for the
    thread; another store's lookup run after that read filled it: the outer
    find_one returned the other store's record."""
    x = pystore.Store(tmp_path / "x", sync=False)
    y = pystore.Store(tmp_path / "y", sync=False)
    try:
        for s, model in ((x, "mine"), (y, "theirs")):
            s.create_index("Agent", "model", field="model", msg_type=Agent)
            big = Agent(model=model)
            big.metadata.name = model * 40000  # 160-240 KB
            s.save_resource("Agent", "a", big)

        def handler() -> None:
            assert y.find_one("Agent", "model", "theirs", Agent).model == "theirs"

        def call() -> str:
            return x.find_one("Agent", "model", "mine", Agent).model

        points, wrong = walk_check_points(call, index.__file__, handler, "mine")
        assert points >= 3
        assert wrong == []
    finally:
        x.close()
        y.close()
