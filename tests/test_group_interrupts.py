"""Group commit (review round 4): a KeyboardInterrupt at every check point
of a leader's ``commit_ops`` never misreports a follower's outcome.

A follower learns from the batch's transaction whether the commit holding
its write happened (``Batch.txn.committed``) and then returns its op's
outcome; so whenever the commit happened, every op's outcome must already
be the applied one: a put's revision, a delete's existed flag, a refused
create's error.  A leader interrupted after ``finish`` but before it
copied the revision into its puts left them None: a durable
``save_resource`` returned None for a write it had applied.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from checkpoints import EXCEPTION_TABLE, interrupted_at
from support import make_agent

import pystore
import pystore._lmdb.group as group_mod
from pystore import AlreadyExistsError
from pystore._lmdb.core import encode_id, encode_kind
from pystore._lmdb.group import Batch, Op, commit_ops


def _interrupted_at(point: int, call: Callable[[], object]) -> str | None:
    """``call`` with a KeyboardInterrupt at its ``point``-th check point
    inside pystore/_lmdb/group.py (see checkpoints.py)."""
    return interrupted_at(point, call, group_mod.__file__)


def _ops(s: pystore.Store) -> Batch:
    kb = encode_kind("Agent")
    b = Batch()
    b.append(Op("Agent", kb, encode_id("new"), s._payload(make_agent(1)), make_agent(1)))
    b.append(Op("Agent", kb, encode_id("taken"), s._payload(make_agent(2)), make_agent(2),
                create=True))
    b.append(Op("Agent", kb, encode_id("gone"), None))
    data, wire = s._payload_unstripped(make_agent(3))
    b.append(Op("Agent", kb, encode_id("raw"), data, make_agent(3), wire=wire))
    for pos, op in enumerate(b):  # queued in it, as GroupCommit.run does
        op.batch, op.pos = b, pos
    return b


@pytest.mark.skipif(not EXCEPTION_TABLE, reason="needs dis._parse_exception_table")
def test_an_interrupt_anywhere_in_a_leaders_commit_never_misreports_a_follower(
    tmp_path: Path,
) -> None:
    points = 0
    problems: list[tuple[str, str]] = []
    point = 1
    while True:
        path = tmp_path / f"s{point}"
        s = pystore.Store(path)
        s.save_resource("Agent", "taken", make_agent(9))
        s.save_resource("Agent", "gone", make_agent(8))
        base = s.revision()
        batch = _ops(s)
        where = _interrupted_at(point, functools.partial(commit_ops, s, batch))
        if where is None:
            s.close()
            break
        points += 1
        t = batch.txn
        committed = t is not None and t.committed
        if committed:  # what a follower of this batch would be told
            rev = s.revision()
            got: list[object] = []
            for op in batch:
                try:
                    got.append(op.outcome())
                except AlreadyExistsError:
                    got.append("exists")
            if got != [rev, "exists", True, rev]:
                problems.append((where, f"committed, followers told {got}"))
            if s.get_record("Agent", "new").revision != rev:
                problems.append((where, "put not at the batch's revision"))
        elif s.revision() != base or s.exists("Agent", "new") or not s.exists("Agent", "gone"):
            problems.append((where, "applied but not committed"))
        s.save_resource("Agent", "after", make_agent(4))  # no leaked write txn
        s.close()
        point += 1
    assert problems == []
    assert points > 10  # the trace reached the check points
