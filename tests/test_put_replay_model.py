"""Transactions of puts (plain, create, if_revision, batches), deletes, and
kinds that become versioned (set_history) or indexed (create_index) in the
same transaction, before or after their puts -- so a put takes the
insert-first way or reads the stored record first, and a kind changes
between the two within one transaction -- run on a store whose map starts
at 64 KiB (it fills mid-transaction: the map grows and the transaction's
logged ops are replayed, once or more) and on a twin whose map never
fills.  Both must end as a dict model says: the records (bytes, revision,
updated_at of their last put), the change log (revision, op, key, stamp),
kept versions, index lookups; the twins must also agree with each other
(docs/architecture.md, "Revisions and the change log", "Map growth")."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pystore
from pystore.samples.agent_pb2 import Agent

KINDS = ["A", "B"]
IDS = ["1", "2", "3", "4"]
SIZES = [0, 40, 1_500, 3_000, 9_000]  # inline, about a page, overflow
SMALL_MAP = 1 << 16


def _msg(tag: str, size: int) -> Agent:
    return Agent(model=tag, instructions="x" * size)


@dataclass
class Model:
    records: dict[tuple[str, str], tuple[bytes, int]] = field(default_factory=dict)
    kept: dict[tuple[str, str], list[tuple[bytes, int]]] = field(default_factory=dict)
    keep: dict[str, int] = field(default_factory=dict)
    indexed: set[str] = field(default_factory=set)
    changes: list[tuple[int, str, str, str]] = field(default_factory=list)
    revision: int = 0

    def copy(self) -> Model:
        return Model(dict(self.records), {k: list(v) for k, v in self.kept.items()},
                     dict(self.keep), set(self.indexed), list(self.changes), self.revision)

    def supersede(self, key: tuple[str, str]) -> None:
        n = self.keep.get(key[0], 0)
        # (a version this txn wrote was never committed: not kept)
        if n and key in self.records and self.records[key][1] != self.revision:
            self.kept[key] = [self.records[key], *self.kept.get(key, [])][:n]


# One op: (name, kind, id, size, flag)
OPS = st.tuples(
    st.sampled_from(["save", "save", "create", "save_if", "delete", "batch",
                     "history", "index"]),
    st.sampled_from(KINDS), st.sampled_from(IDS), st.sampled_from(SIZES), st.booleans())
TXNS = st.lists(st.tuples(st.lists(OPS, min_size=1, max_size=14), st.booleans()),
                min_size=1, max_size=6)


def _apply(t: Any, m: Model, op: tuple[str, str, str, int, bool], tag: str) -> None:
    """Run op in transaction t and on the model m (m.revision: the txn's)."""
    name, kind, id, size, flag = op
    key = (kind, id)
    data = _msg(tag, size).SerializeToString()
    if name == "history":
        keep = 2 if flag else 1
        t.set_history(kind, keep)
        m.keep[kind] = keep
        for k in list(m.kept):
            if k[0] == kind:
                m.kept[k] = m.kept[k][:keep]
        return
    if name == "index":
        t.create_index(kind, "model", field="model", msg_type=Agent)
        m.indexed.add(kind)
        return
    if name == "delete":
        existed = t.delete_resource(kind, id)
        assert existed == (key in m.records)
        if existed:
            m.supersede(key)
            del m.records[key]
            m.changes.append((m.revision, "delete", kind, id))
        return
    if name == "batch":  # this id and the next one, one call
        other = IDS[(IDS.index(id) + 1) % len(IDS)]
        assert t.save_resources(kind, [(id, _msg(tag, size)), (other, _msg(tag + "b", 10))]) == 2
        for i, d in ((id, data), (other, _msg(tag + "b", 10).SerializeToString())):
            m.supersede((kind, i))
            m.records[(kind, i)] = (d, m.revision)
            m.changes.append((m.revision, "put", kind, i))
        return
    if name == "create":
        if key in m.records:
            with pytest.raises(pystore.AlreadyExistsError):
                t.create_resource(kind, id, _msg(tag, size))
            return
        rev = t.create_resource(kind, id, _msg(tag, size))
    elif name == "save_if":
        current = m.records[key][1] if key in m.records else 0
        expect = current if flag else current + 7
        if expect != current:
            with pytest.raises(pystore.ConflictError):
                t.save_resource(kind, id, _msg(tag, size), if_revision=expect)
            return
        rev = t.save_resource(kind, id, _msg(tag, size), if_revision=expect)
    else:
        rev = t.save_resource(kind, id, _msg(tag, size))
    assert rev == m.revision
    m.supersede(key)
    m.records[key] = (data, m.revision)
    m.changes.append((m.revision, "put", kind, id))


def _check(s: pystore.Store, m: Model) -> None:
    stamps: dict[tuple[str, str], Any] = {}
    changes = s.changes(0)
    assert [(c.revision, c.op, c.kind, c.id) for c in changes] == m.changes
    for c in changes:
        if c.op == "put":
            stamps[(c.kind or "", c.id or "")] = c.updated_at
    for kind in KINDS:
        got = {r.id: (r.data, r.revision, r.updated_at) for r in s.iter_resources(kind)}
        want = {k[1]: v for k, v in m.records.items() if k[0] == kind}
        assert {i: v[:2] for i, v in got.items()} == want
        for i, v in got.items():
            assert v[2] == stamps[(kind, i)]  # the stamp of its last put, as logged
        assert s.history_keep(kind) == m.keep.get(kind, 0)
        for id in IDS:
            live = [m.records[(kind, id)]] if (kind, id) in m.records else []
            assert [(r.data, r.revision) for r in s.history(kind, id)] == (
                live + m.kept.get((kind, id), []))
        if kind in m.indexed:
            tags = {Agent.FromString(d).model for (k, _), (d, _) in m.records.items()
                    if k == kind}
            for tag in tags | {"nope"}:
                assert sorted(s.find_ids(kind, "model", tag)) == sorted(
                    i for (k, i), (d, _) in m.records.items()
                    if k == kind and Agent.FromString(d).model == tag)
    assert s.revision() == m.revision


class _Abort(Exception):
    pass


@contextmanager
def _pwrite() -> Iterator[None]:
    old = os.environ.get("PYSTORE_WRITEMAP")
    os.environ["PYSTORE_WRITEMAP"] = "0"  # new stores in the pwrite mode: the map doubles
    try:
        yield
    finally:
        if old is None:
            del os.environ["PYSTORE_WRITEMAP"]
        else:
            os.environ["PYSTORE_WRITEMAP"] = old


def _run(root: Path, txns: list[tuple[list[tuple[str, str, str, int, bool]], bool]]
         ) -> list[int]:
    """Run txns on both twins and the model; the small twin's map size after each."""
    with _pwrite():
        small = pystore.Store(root / "small", sync=False, map_size=SMALL_MAP)
        big = pystore.Store(root / "big", sync=False, map_size=1 << 28)
    try:
        m = Model()
        sizes = []
        for n, (ops, commit) in enumerate(txns):
            for s in (small, big):
                txm = m.copy()
                txm.revision = m.revision + 1
                try:
                    with s.transaction() as t:
                        for j, op in enumerate(ops):
                            _apply(t, txm, op, f"t{n}o{j}")
                        if not commit:
                            raise _Abort
                except _Abort:
                    pass
                done = txm
            if commit:
                if len(done.changes) == len(m.changes):
                    done.revision = m.revision  # nothing changed: no revision
                m = done
                m.revision = done.revision
            _check(small, m)
            _check(big, m)
            sizes.append(small.stats().map_size)
        return sizes
    finally:
        small.close()
        big.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TXNS)
def test_transactions_across_growth_match_the_model(txns: Any) -> None:
    root = Path(tempfile.mkdtemp(prefix="pystore-replay-"))
    try:
        _run(root, txns)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_kind_turning_versioned_and_indexed_mid_transaction_across_growth(
        tmp_path: Path) -> None:
    # Kinds A and B filled in a first transaction; in a second, A's
    # records are overwritten the insert-first way, then A keeps versions
    # (the next overwrites keep the committed ones), then A is indexed, B is
    # indexed without versions, then overwrites of every size of both: the
    # map fills after all of that, so the replay runs every path with the
    # kinds changing under it.  A third transaction undoes nothing of it.
    fill: list[tuple[str, str, str, int, bool]] = []
    for size in (9_000, 40, 3_000, 0, 9_000):
        fill += [("save", k, i, size, False) for k in KINDS for i in IDS]
    mix: list[tuple[str, str, str, int, bool]] = [("save", "A", i, 40, False) for i in IDS]
    mix += [("delete", "A", "1", 0, False), ("save", "A", "1", 1_500, False),
            ("create", "A", "1", 40, False), ("create", "A", "5", 40, False),
            ("save_if", "A", "2", 3_000, True), ("save_if", "A", "3", 40, False)]
    mix += [("history", "A", "1", 0, True)]
    mix += [("save", "A", i, 3_000, False) for i in IDS]
    mix += [("index", "A", "1", 0, False), ("index", "B", "1", 0, False)]
    mix += [("save", k, i, size, False)
            for size in (40, 9_000, 0, 9_000, 3_000) for k in KINDS for i in IDS]
    mix += [("batch", "B", "4", 9_000, False), ("delete", "A", "2", 0, False)]
    sizes = _run(tmp_path, [(fill, True), (mix, True), (mix[:10], False), (mix[-12:], True)])
    assert sizes[0] > SMALL_MAP and sizes[1] > sizes[0]  # grew in the first two
