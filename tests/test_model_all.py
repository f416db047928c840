"""The LMDB store as ONE system, against one pure-Python model (tests/model_all.py).

The other state machines each check one feature (test_stateful: records;
test_rev_stateful: revisions and history; test_index_stateful: indexes).
This one mixes, in the same run and the same store: saves, creates, updates
and deletes (plain and conditional), batches, kind and prefix deletes,
transactions of several writes that commit or raise, history of versioned
kinds, indexes created and dropped (unique and not) while records change,
event streams, snapshots held open while writes go on, close and reopen,
and a tiny map grown by large records.  After every step: every read
agrees with the model, the revision and the change log are the model's
(one revision per committed transaction that changed something), each
index equals a scan, history keeps exactly the newest N versions, event
seqs are never reused, and each open snapshot still sees its revision.

PYSTORE_MODEL_EXAMPLES=N runs N examples of 60 steps (default: a few
seconds' worth).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import os
import shutil
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from model_all import Model, Refused, UpdateFailed, id_order

from pystore import (
    CompactedError,
    NotFoundError,
    ReadOnlyError,
    Store,
    StoreClosedError,
    StoreError,
    TransactionError,
    UniqueViolationError,
)
from pystore._lmdb.indexcheck import check_indexes
from pystore.aio import AsyncStore
from pystore.cli import dump as dump_mod
from pystore.samples.agent_pb2 import Agent

KINDS = ["V", "W"]
KIND = st.sampled_from(KINDS)
IDS = ["a", "a/1", "ab", "b"]
ID = st.sampled_from(IDS)
PREFIX = st.sampled_from(["", "a", "a/", "b", "x"])
STREAM = st.sampled_from(["e1", "V"])  # a stream named as a kind stays apart from it
STREAMS = ["e1", "V"]
KEEP_CHANGES = 12
BIG = 200_000  # a few of these outgrow the 64 KiB map the store opens with

# index name -> (field, unique); the machine creates them on either kind
INDEXES = {"model": ("model", False), "slug": ("metadata.slug", True),
           "label": ("metadata.labels", False)}
QUERIES: dict[str, list[object]] = {"model": ["x", "y"], "slug": ["s1", "s2"],
                                    "label": [("k", "1"), ("k", "2")]}


class Blob(bytes):
    """A message's bytes; a large one shows as its size in a failing example."""

    def __repr__(self) -> str:
        return bytes.__repr__(self) if len(self) < 64 else f"<Agent of {len(self)} bytes>"


@st.composite
def agents(draw: Any) -> bytes:
    msg = Agent(model=draw(st.sampled_from(["", "x", "y"])))
    msg.metadata.slug = draw(st.sampled_from(["", "", "s1", "s2"]))
    label = draw(st.sampled_from([None, "1", "2"]))
    if label is not None:
        msg.metadata.labels["k"] = label
    msg.instructions = draw(st.sampled_from(["", "i", "L" * BIG]))
    return Blob(msg.SerializeToString())


DATA = agents()
COND = st.sampled_from([None, "right", "wrong"])
HANDLE = st.integers(0, 1)
# one write of a transaction (or of the store): a tuple the executor knows
OPS = st.one_of(
    st.tuples(st.just("save"), KIND, ID, DATA, COND),
    st.tuples(st.just("create"), KIND, ID, DATA),
    st.tuples(st.just("delete"), KIND, ID, COND),
    st.tuples(st.just("save_many"), KIND, st.lists(st.tuples(ID, DATA), max_size=3)),
    st.tuples(st.just("delete_prefix"), KIND, PREFIX),
    st.tuples(st.just("delete_kind"), KIND),
    st.tuples(st.just("append_event"), STREAM, DATA),
    st.tuples(st.just("append_events"), STREAM,
              st.lists(st.tuples(st.integers(1, 8), DATA), max_size=3)),
    st.tuples(st.just("delete_events"), STREAM, st.sampled_from([None, 1, 3, 9])),
    st.tuples(st.just("set_history"), KIND, st.sampled_from([0, 1, 2])),
    st.tuples(st.just("delete_history"), KIND, ID),
)
UPDATES = st.tuples(st.just("update"), KIND, ID, st.sampled_from(["x", "y"]),
                    st.sampled_from(["", "s1", "s2"]), st.booleans(), st.booleans())


class Poisoned(Exception):
    """A call refused inside a transaction left it unusable (see Refused)."""


def _cond(m: Model, op: tuple[Any, ...]) -> int | None:
    """The if_revision of a conditional save or delete: right or wrong as drawn."""
    if op[0] not in ("save", "delete") or op[-1] is None:
        return None
    actual = m.live.get((op[1], op[2]), (0, b""))[0]
    return actual if op[-1] == "right" else actual + 1


def call(target: Any, op: tuple[Any, ...], cond: int | None) -> Any:
    """The store call of ``op`` on ``target`` (a Store or a Transaction)."""
    name, a = op[0], op[1:]
    if name == "save":
        return target.save_resource(a[0], a[1], Agent.FromString(a[2]), if_revision=cond)
    if name == "create":
        return target.create_resource(a[0], a[1], Agent.FromString(a[2]))
    if name == "delete":
        return target.delete_resource(a[0], a[1], if_revision=cond)
    if name == "save_many":
        return target.save_resources(a[0], [(i, Agent.FromString(d)) for i, d in a[1]])
    if name == "delete_prefix":
        return target.delete_resources_by_prefix(a[0], a[1])
    if name == "delete_kind":
        return target.delete_resources_by_kind(a[0])
    if name == "append_event":
        return target.append_event(a[0], Agent.FromString(a[1]))
    if name == "append_events":
        return target.append_events(a[0], [(q, Agent.FromString(d)) for q, d in a[1]])
    if name == "delete_events":
        return target.delete_events(a[0], upto=a[1])
    if name == "set_history":
        return target.set_history(a[0], a[1])
    if name == "delete_history":
        return target.delete_history(a[0], a[1])
    if name == "update":
        kind, id_, model, slug, create, fail = a

        def fn(msg: Agent) -> None:
            if fail:
                raise UpdateFailed
            msg.model, msg.metadata.slug = model, slug

        return target.update_resource(kind, id_, Agent, fn, create=create).SerializeToString()
    raise AssertionError(name)  # pragma: no cover


def model_op(m: Model, op: tuple[Any, ...], cond: int | None, rev: int) -> Any:
    """``op`` on the model at revision ``rev``: what the store call must return
    (Refused: what it must raise)."""
    name, a = op[0], op[1:]
    if name == "save":
        m.save(a[0], a[1], a[2], cond, rev)
        return rev
    if name == "create":
        m.create(a[0], a[1], a[2], rev)
        return rev
    if name == "delete":
        return m.delete(a[0], a[1], cond, rev)
    if name == "save_many":
        m.save_many(a[0], a[1], rev)
        return len(a[1])
    if name == "delete_prefix":
        return m.delete_prefix(a[0], a[1], rev)
    if name == "delete_kind":
        return m.delete_prefix(a[0], None, rev)
    if name == "append_event":
        return m.append_event(a[0], a[1], rev)
    if name == "append_events":
        return m.append_events(a[0], a[1], rev)
    if name == "delete_events":
        return m.delete_events(a[0], a[1])
    if name == "set_history":
        return m.set_history(a[0], a[1])
    if name == "delete_history":
        return m.delete_history(a[0], a[1])
    if name == "update":
        return m.update(*a, rev=rev)
    raise AssertionError(name)  # pragma: no cover


def apply(target: Any, m: Model, op: tuple[Any, ...], rev: int, in_txn: bool = False) -> None:
    """Run ``op`` on ``target`` and on ``m`` (its writes at revision ``rev``);
    the store's answer must be the model's."""
    cond = _cond(m, op)
    try:
        want = model_op(m, op, cond, rev)
    except Refused as verdict:
        try:
            call(target, op, cond)
        except verdict.expected as exc:
            if isinstance(exc, UniqueViolationError) and verdict.holder is not None:
                assert exc.holder == verdict.holder, (op, exc.holder, verdict.holder)
            if verdict.poisons and in_txn:
                raise Poisoned from exc
            return
        raise AssertionError(f"{op[:3]} went through; the model expected "
                             f"{verdict.expected}") from None
    got = call(target, op, cond)
    assert got == want, (op[:3], got if len(repr(got)) < 200 else "...", rev)


class Rollback(Exception):
    pass


class Sync:
    """A synchronous face of an AsyncStore, its transactions and snapshots:
    each coroutine is run to its end on ``loop``, an async iterator read
    whole, an async context manager entered through SyncCtx."""

    def __init__(self, obj: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._obj, self._loop = obj, loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._obj, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kw: Any) -> Any:
            out = attr(*args, **kw)
            if inspect.isawaitable(out):
                out = self._loop.run_until_complete(out)
            if hasattr(out, "__aiter__"):
                return self._loop.run_until_complete(_collect(out))
            if hasattr(out, "__aenter__"):
                return SyncCtx(out, self._loop)
            return out

        return call


async def _collect(it: Any) -> list[Any]:
    return [x async for x in it]


class SyncCtx:
    def __init__(self, ctx: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._ctx, self._loop = ctx, loop

    def __enter__(self) -> Sync:
        return Sync(self._loop.run_until_complete(self._ctx.__aenter__()), self._loop)

    def __exit__(self, *exc: Any) -> Any:
        return self._loop.run_until_complete(self._ctx.__aexit__(*exc))


class ModelMachine(RuleBasedStateMachine):
    pwrite = False
    use_async = False
    loop: asyncio.AbstractEventLoop | None = None
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="pystore-all-")
        # two handles on the one store (each with its own caches of
        # revisions, index definitions, keep counts and schemas)
        if self.pwrite:  # the store is made in the pwrite mode (its map really is 64 KiB)
            os.environ["PYSTORE_WRITEMAP"] = "0"
        try:
            self.stores = [self._open(1 << 16, False), self._open_second(None, True)]
        finally:
            os.environ.pop("PYSTORE_WRITEMAP", None)
        assert self.store.stats().write_mode == ("pwrite" if self.pwrite else "writemap")
        self.m = Model()
        self.snaps: list[tuple[Any, Any, Model]] = []  # (its context, it, the model then)
        self.seqs_seen: dict[str, set[int]] = {}
        self.backups = 0

    @property
    def store(self) -> Store:
        return self.stores[0]

    def _open(self, map_size: int | None, sync: bool) -> Store:
        return Store(self.dir, sync=sync, map_size=map_size, keep_changes=KEEP_CHANGES)

    def _open_second(self, map_size: int | None, sync: bool) -> Any:
        """The second handle: a Store, or an AsyncStore behind a synchronous face."""
        if not self.use_async:
            return self._open(map_size, sync)
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        opening = AsyncStore.open(self.dir, sync=sync, map_size=map_size,
                                  keep_changes=KEEP_CHANGES)
        return Sync(self.loop.run_until_complete(opening), self.loop)

    def teardown(self) -> None:
        for ctx, _, _ in self.snaps:
            ctx.__exit__(None, None, None)
        for s in self.stores:
            s.close()
        if self.loop is not None:
            self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.dir + "-bk", ignore_errors=True)

    def _write(self, op: tuple[Any, ...], h: int) -> None:
        """One write of the store: its own transaction, one revision if it changed."""
        before = len(self.m.log)
        rev = self.m.rev + 1
        apply(self.stores[h], self.m, op, rev)
        if len(self.m.log) > before:
            self.m.rev = rev

    # -- rules ------------------------------------------------------------------

    @rule(op=OPS, h=HANDLE)
    def write(self, op: tuple[Any, ...], h: int) -> None:
        self._write(op, h)

    @rule(h=HANDLE, kind=KIND, id_=ID, model=st.sampled_from(["x", "y"]),
          slug=st.sampled_from(["", "s1", "s2"]), create=st.booleans(), fail=st.booleans())
    def update(self, h: int, kind: str, id_: str, model: str, slug: str, create: bool,
               fail: bool) -> None:
        self._write(("update", kind, id_, model, slug, create, fail), h)

    @rule(h=HANDLE, ops=st.lists(st.one_of(OPS, UPDATES), min_size=1, max_size=5),
          commit=st.booleans())
    def transaction(self, h: int, ops: list[tuple[Any, ...]], commit: bool) -> None:
        saved = self.m.copy()
        rev = self.m.rev + 1
        poisoned = False
        try:
            with self.stores[h].transaction() as t:
                for op in ops:
                    try:
                        apply(t, self.m, op, rev, in_txn=True)
                    except Poisoned:
                        poisoned = True
                        try:
                            t.count("V")
                            raise AssertionError("a read in a transaction left unusable")
                        except TransactionError:
                            pass
                        break
                    self._reads_in(t, self.m)
                if not commit:
                    raise Rollback
        except Rollback:
            self.m = saved
            assert t.revision == 0
            return
        except TransactionError:  # the exit of an unusable transaction: nothing of it
            assert poisoned
            self.m = saved
            assert t.revision == 0
            return
        assert not poisoned, "an unusable transaction committed"
        changed = len(self.m.log) > len(saved.log)
        if changed:
            self.m.rev = rev
        assert t.revision == (rev if changed else 0)

    def _reads_in(self, t: Any, m: Model) -> None:
        """Reads inside a transaction see its own writes."""
        for kind in KINDS:
            got = {r.id: (r.revision, r.data) for r in t.iter_resources(kind)}
            assert got == {i: v for (k, i), v in m.live.items() if k == kind}
        for (kind, name) in m.indexes:
            for q in QUERIES[name]:
                assert t.find_ids(kind, name, q) == m.find_ids(kind, name, q)
                assert t.count_index(kind, name, q) == len(m.find_ids(kind, name, q))
        for key in [("V", "a"), ("W", "a/1"), ("V", "b")]:
            assert [(r.revision, r.data) for r in t.history(*key)] == m.versions(key), key
            for rev, data in m.versions(key):
                assert t.get_record_at(*key, rev).data == data
            if key in m.live:
                assert t.get_record(*key).revision == m.live[key][0]
        for stream in STREAMS:
            assert [(e.seq, e.data) for e in t.read_events(stream)] == sorted(
                m.events.get(stream, {}).items())
            assert t.last_seq(stream) == m.last_seq(stream)
        assert t.streams() == m.streams()
        assert t.history_keep("V") == m.keep.get("V", 0)

    @rule(h=HANDLE, kind=KIND, name=st.sampled_from(sorted(INDEXES)), flip=st.booleans())
    def create_index(self, h: int, kind: str, name: str, flip: bool) -> None:
        fld, unique = INDEXES[name]
        unique ^= flip and name == "slug"  # the same name, another definition
        have = self.m.indexes.get((kind, name))
        try:
            n = self.stores[h].create_index(kind, name, field=fld, msg_type=Agent, unique=unique)
        except UniqueViolationError:
            assert have is None and unique
            trial = self.m.copy()
            trial.indexes[kind, name] = (fld, unique)
            assert any(len(trial.find_ids(kind, name, q)) > 1 for q in QUERIES[name])
            return
        except StoreError:
            assert have is not None and have != (fld, unique)
            return
        assert have in (None, (fld, unique))
        if have is None and unique:
            trial = self.m.copy()
            trial.indexes[kind, name] = (fld, unique)
            assert all(len(trial.find_ids(kind, name, q)) <= 1 for q in QUERIES[name])
        self.m.indexes[kind, name] = (fld, unique)
        assert n == self.m.entries(kind, name)

    @rule(h=HANDLE, kind=KIND, name=st.sampled_from(sorted(INDEXES)))
    def drop_index(self, h: int, kind: str, name: str) -> None:
        if (kind, name) in self.m.indexes:
            self.stores[h].drop_index(kind, name)
            del self.m.indexes[kind, name]
            return
        try:
            self.stores[h].drop_index(kind, name)
        except NotFoundError:
            return
        raise AssertionError("dropped an absent index")

    @precondition(lambda self: len(self.snaps) < 2)
    @rule(h=HANDLE)
    def open_snapshot(self, h: int) -> None:
        ctx = self.stores[h].snapshot()
        self.snaps.append((ctx, ctx.__enter__(), self.m.copy()))

    @precondition(lambda self: bool(self.snaps))
    @rule()
    def close_snapshot(self) -> None:
        ctx, _, _ = self.snaps.pop(0)
        ctx.__exit__(None, None, None)

    @rule(h=HANDLE, compact=st.booleans())
    def backup(self, h: int, compact: bool) -> None:
        """A backup is the store as of the call: everything, opened read-only."""
        self.backups += 1
        dest = os.path.join(self.dir + "-bk", str(self.backups))
        self.stores[h].backup(dest, compact=compact)
        bk = Store(dest, readonly=True)
        try:
            self.records_and_revisions(bk)
            self.change_log(bk)
            self.indexes_agree_with_a_scan(bk)
            self.events(bk)
            try:
                bk.save_resource("V", "a", Agent())
                raise AssertionError("a read-only store took a write")
            except ReadOnlyError:
                pass
        finally:
            bk.close()
            shutil.rmtree(dest)

    @rule(pwrite=st.booleans())
    def dump_and_load(self, pwrite: bool) -> None:
        """`pystore dump` of the store, loaded into a new store with a 64 KiB
        map: its own revisions, but the records, kept versions (oldest
        first), keep counts, indexes and event streams of the model."""
        out = io.StringIO()
        dump_mod.dump(self.store, out, progress=False)
        m = self.m
        dest = self.dir + "-load"
        if pwrite:
            os.environ["PYSTORE_WRITEMAP"] = "0"
        try:
            c = Store(dest, sync=False, map_size=1 << 16)
        finally:
            os.environ.pop("PYSTORE_WRITEMAP", None)
        try:
            dump_mod.load(c, io.StringIO(out.getvalue()))
            for kind in KINDS:
                assert {r.id: r.data for r in c.iter_resources(kind)} == {
                    i: d for (k, i), (_, d) in m.live.items() if k == kind}
                assert c.history_keep(kind) == m.keep.get(kind, 0)
            for key in [(k, i) for k in KINDS for i in IDS]:
                hist = c.history(*key)
                assert [r.data for r in hist] == [d for _, d in m.versions(key)], key
                revs = [r.revision for r in hist]
                assert revs == sorted(revs, reverse=True) and len(set(revs)) == len(revs)
            assert [(i.kind, i.name, i.field, i.unique, i.entries) for i in c.indexes()] == [
                (k, n, f, u, m.entries(k, n)) for (k, n), (f, u) in sorted(m.indexes.items())]
            for (kind, name) in m.indexes:
                for q in QUERIES[name]:
                    assert c.find_ids(kind, name, q) == m.find_ids(kind, name, q)
            for stream in STREAMS:
                assert [(e.seq, e.data) for e in c.read_events(stream)] == sorted(
                    m.events.get(stream, {}).items())
                assert c.last_seq(stream) == m.last_seq(stream)
            assert c._run(False, check_indexes) == []
        finally:
            c.close()
            shutil.rmtree(dest)

    @rule(map_size=st.sampled_from([None, 1 << 16]), sync=st.booleans())
    def reopen(self, map_size: int | None, sync: bool) -> None:
        for s in self.stores:
            s.close()
        for _, snap, _ in self.snaps:  # closing the store closes its snapshots
            try:
                snap.count("V")
                raise AssertionError("a snapshot read after its store closed")
            except StoreClosedError:
                pass
        self.snaps.clear()
        self.stores = [self._open(map_size, sync), self._open_second(map_size, not sync)]

    # -- invariants ---------------------------------------------------------------

    @invariant()
    def records_and_revisions(self, view: Any = None) -> None:
        s, m = view or self.store, self.m
        for h in [view] if view else self.stores:
            assert h.revision() == m.rev
            for kind in KINDS:
                got = {r.id: (r.revision, r.data) for r in h.iter_resources(kind)}
                assert got == {i: v for (k, i), v in m.live.items() if k == kind}
                # the one-call reads of each handle (per-thread read contexts)
                want = [m.live[kind, i][1] for i in id_order(i for (k, i) in m.live if k == kind)]
                assert h.list_resources(kind) == want
                assert [a.SerializeToString() for a in h.list_resources(kind, Agent)] == want
                for i in IDS:
                    if (kind, i) in m.live:
                        assert h.get_bytes(kind, i) == m.live[kind, i][1]
                        assert h.get_resource(kind, i, Agent).SerializeToString() == (
                            m.live[kind, i][1])
                    else:
                        with pytest.raises(NotFoundError):
                            h.get_bytes(kind, i)
        for kind in KINDS:
            ids = id_order(i for (k, i) in m.live if k == kind)
            assert s.list_ids(kind) == ids
            assert s.count(kind) == len(ids)
            assert [s.exists(kind, i) for i in IDS] == [i in ids for i in IDS]
            if ids:  # pages: ids strictly after, at most limit
                assert [r.id for r in s.iter_resources(kind, after=ids[0], limit=2)] == ids[1:3]
        assert s.kinds() == sorted({k for k, _ in m.live})
        assert s.stats().revision == m.rev
        kinds = s.stats().kinds
        assert {k: v.count for k, v in kinds.items()} == {
            k: sum(1 for k2, _ in m.live if k2 == k) for k in {k for k, _ in m.live}}
        # every kind with records has its schema recorded (a rolled-back or
        # refused first write of a kind must not leave it "known" unrecorded)
        assert {v.type_name for v in kinds.values()} <= {Agent.DESCRIPTOR.full_name}
        for key in [(k, i) for k in KINDS for i in IDS]:
            want = m.versions(key)
            assert [(r.revision, r.data) for r in s.history(*key)] == want, key
            assert [r.revision for r in s.history(*key, limit=1)] == [r for r, _ in want[:1]]
            for rev, data in want:
                assert s.get_record_at(*key, rev).data == data
            if key in m.live:
                assert s.get_record(*key).revision == m.live[key][0]
            assert s.history_keep(key[0]) == m.keep.get(key[0], 0)

    @invariant()
    def change_log(self, view: Any = None) -> None:
        s, m = view or self.store, self.m
        def got(after: int, **kw: Any) -> list[Any]:
            return [(c.revision, c.op, c.kind, c.id, c.stream, c.seq)
                    for c in s.changes(after, **kw)]
        after = max(0, m.rev - KEEP_CHANGES)  # always kept
        want = [e for e in m.log if e[0] > after]
        assert got(after) == want
        assert got(after, kinds=["V"]) == [e for e in want if e[2] == "V"]
        assert got(after, streams=["e1"]) == [e for e in want if e[4] == "e1"]
        assert got(after, limit=2) == want[:2]
        assert got(after, kinds=["W"], streams=["V"]) == [
            e for e in want if e[2] == "W" or e[4] == "V"]
        assert got(after, streams=["V"]) == [e for e in want if e[4] == "V"]
        assert got(m.rev) == []
        if m.rev % 4 == 0:  # watch(after=...) replays the same, then ends when idle
            assert [(c.revision, c.op, c.kind, c.id, c.stream, c.seq)
                    for c in s.watch(after=after, timeout=0.001)] == want
        revs = [e[0] for e in m.log]
        assert revs == sorted(revs) and set(revs) == set(range(1, m.rev + 1))
        for older in range(max(0, m.rev - 2 * KEEP_CHANGES), after):
            with contextlib.suppress(CompactedError):  # kept whole or refused, never a hole
                assert got(older) == [e for e in m.log if e[0] > older]
        last_put = {(c.kind, c.id, c.revision): c for c in s.changes(after) if c.op == "put"}
        for (kind, id_, rev), c in last_put.items():  # a put's stamp is its version's
            if m.live.get((kind, id_), (0,))[0] == rev:
                assert c.updated_at == s.get_record(kind, id_).updated_at
        for _, _, frozen in self.snaps:  # list at a snapshot, then read on: no gap
            if frozen.rev >= after:
                assert got(frozen.rev) == [e for e in m.log if e[0] > frozen.rev]
        if m.rev > 2 * KEEP_CHANGES:  # at most 2 x keep_changes revisions are kept
            try:
                s.changes(m.rev - 2 * KEEP_CHANGES - 1)
                raise AssertionError("changes() older than the log keeps")
            except CompactedError:
                pass

    @invariant()
    def indexes_agree_with_a_scan(self, view: Any = None) -> None:
        s, m = view or self.store, self.m
        assert [(i.kind, i.name, i.field, i.unique, i.entries) for i in s.indexes()] == [
            (k, n, f, u, m.entries(k, n)) for (k, n), (f, u) in sorted(m.indexes.items())]
        for (kind, name) in m.indexes:
            for q in QUERIES[name]:
                ids = m.find_ids(kind, name, q)
                assert s.find_ids(kind, name, q) == ids, (kind, name, q)
                assert s.count_index(kind, name, q) == len(ids)
                assert s.find(kind, name, q) == [m.live[kind, i][1] for i in ids]
                if ids:
                    assert s.find_one(kind, name, q, Agent) == Agent.FromString(
                        m.live[kind, ids[0]][1])
                    assert [a.SerializeToString() for a in s.find(
                        kind, name, q, Agent, after=ids[0], limit=1)] == [
                        m.live[kind, i][1] for i in ids[1:2]]
                else:
                    try:
                        s.find_one(kind, name, q, Agent)
                        raise AssertionError("find_one found nothing and returned")
                    except NotFoundError:
                        pass
        for kind, name in [(k, n) for k in KINDS for n in INDEXES]:
            if (kind, name) not in m.indexes:
                try:
                    s.find_ids(kind, name, QUERIES[name][0])
                    raise AssertionError("a find on an absent index")
                except NotFoundError:
                    pass
        t = s._begin(False)
        try:
            assert check_indexes(t) == []
        finally:
            t.abort()

    @invariant()
    def events(self, view: Any = None) -> None:
        s, m = view or self.store, self.m
        assert s.streams() == m.streams()
        for stream in STREAMS:
            evs = m.events.get(stream, {})
            got = s.read_events(stream)
            assert [(e.seq, e.data) for e in got] == sorted(evs.items())
            seqs = sorted(evs)
            if seqs:
                assert [e.seq for e in s.read_events(stream, after=seqs[0], limit=1)] == seqs[1:2]
                assert s.read_events(stream, Agent)[0].data == Agent.FromString(evs[seqs[0]])
            assert s.last_seq(stream) == m.last_seq(stream)
            # a seq, once appended, is never appended again (deleted or not)
            seen = self.seqs_seen.setdefault(stream, set())
            appended = {e[5] for e in m.log if e[1] == "append" and e[4] == stream}
            assert seen <= appended
            seen |= appended
            assert all(isinstance(q, int) and q <= m.last_seq(stream) for q in appended)
        appends = [(e[4], e[5]) for e in m.log if e[1] == "append"]
        assert len(appends) == len(set(appends))

    @invariant()
    def snapshots_stay_pinned(self) -> None:
        for _, snap, frozen in self.snaps:
            assert snap.revision == frozen.rev
            for kind in KINDS:
                got = {r.id: (r.revision, r.data) for r in snap.iter_resources(kind)}
                assert got == {i: v for (k, i), v in frozen.live.items() if k == kind}
            for key in [("V", "a"), ("W", "a/1")]:
                assert [(r.revision, r.data) for r in snap.history(*key)] == frozen.versions(key)
            for (kind, name) in frozen.indexes:
                for q in QUERIES[name]:
                    assert snap.find_ids(kind, name, q) == frozen.find_ids(kind, name, q)
                    assert snap.count_index(kind, name, q) == len(
                        frozen.find_ids(kind, name, q))
            for (kind, name) in set(self.m.indexes) - set(frozen.indexes):
                try:  # an index created after the snapshot began is not in its view
                    snap.find_ids(kind, name, QUERIES[name][0])
                    raise AssertionError("a snapshot found through a later index")
                except NotFoundError:
                    pass
            assert [(i.kind, i.name, i.entries) for i in snap.indexes()] == [
                (k, n, frozen.entries(k, n)) for (k, n) in sorted(frozen.indexes)]
            assert snap.history_keep("V") == frozen.keep.get("V", 0)
            for stream in STREAMS:
                assert [(e.seq, e.data) for e in snap.read_events(stream)] == sorted(
                    frozen.events.get(stream, {}).items())
                assert snap.last_seq(stream) == frozen.last_seq(stream)


class PwriteMachine(ModelMachine):
    pwrite = True


class AsyncMachine(ModelMachine):
    use_async = True


_EXAMPLES = int(os.environ.get("PYSTORE_MODEL_EXAMPLES", "0"))
for _machine, _default in ((ModelMachine, 20), (PwriteMachine, 20), (AsyncMachine, 8)):
    _machine.TestCase.settings = settings(
        max_examples=_EXAMPLES or _default,
        stateful_step_count=60 if _EXAMPLES else 25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                               HealthCheck.data_too_large],
    )
TestModelAll = ModelMachine.TestCase
TestModelAllPwrite = PwriteMachine.TestCase
TestModelAllAsync = AsyncMachine.TestCase
