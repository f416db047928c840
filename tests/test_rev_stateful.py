"""A hypothesis state machine for revisions, conditional writes, the change
log and version history, checked against a model after every step.

The model keeps, per key, the live (revision, data) and the kept versions;
the store revision; and the expected change log.  Rules: save (plain and
conditional, right and wrong revision), create, update_resource (with and
without create), save_resources batches, delete (plain and conditional),
transactions that commit or roll back, prefix and kind deletes, set_history,
delete_history, a small map (so map growth replays the log) and reopen.
"""

from __future__ import annotations

import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pystore import AlreadyExistsError, CompactedError, ConflictError, NotFoundError, Store
from pystore.samples.agent_pb2 import Agent

KINDS = st.sampled_from(["V", "W"])
IDS = st.sampled_from(["a", "b", "c/d"])
DATA = st.one_of(st.text(max_size=8), st.just("L" * 3000))
KEEP = 2


class Rollback(Exception):
    pass


class RevMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="pystore-rev-")
        self.store = Store(self.dir, sync=False, map_size=1 << 16, keep_changes=6)
        self.rev = 0
        self.live: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.kept: dict[tuple[str, str], list[tuple[int, bytes]]] = {}
        self.keep: dict[str, int] = {}
        self.log: list[tuple[int, str, str, str | None]] = []

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- model helpers ---------------------------------------------------------

    def _supersede(self, key: tuple[str, str], rev: int) -> None:
        """The live version of key is overwritten or deleted at revision rev."""
        old = self.live.get(key)
        keep = self.keep.get(key[0], 0)
        if old is None or keep == 0 or old[0] == rev:
            return
        versions = [*self.kept.get(key, []), old]
        self.kept[key] = versions[-keep:]

    def _put(self, key: tuple[str, str], data: bytes, rev: int) -> None:
        self._supersede(key, rev)
        self.live[key] = (rev, data)
        self.log.append((rev, "put", key[0], key[1]))

    def _delete(self, key: tuple[str, str], rev: int) -> bool:
        if key not in self.live:
            return False
        self._supersede(key, rev)
        del self.live[key]
        self.log.append((rev, "delete", key[0], key[1]))
        return True

    # -- rules ---------------------------------------------------------------

    @rule(kind=KINDS, id=IDS, model=DATA)
    def save(self, kind: str, id: str, model: str) -> None:
        msg = Agent(model=model)
        rev = self.store.save_resource(kind, id, msg)
        self.rev += 1
        assert rev == self.rev
        self._put((kind, id), msg.SerializeToString(), rev)

    @rule(kind=KINDS, id=IDS, model=DATA, right=st.booleans())
    def save_if(self, kind: str, id: str, model: str, right: bool) -> None:
        actual = self.live.get((kind, id), (0, b""))[0]
        expected = actual if right else actual + 1
        msg = Agent(model=model)
        try:
            rev = self.store.save_resource(kind, id, msg, if_revision=expected)
        except ConflictError as exc:
            assert not right and (exc.expected, exc.actual) == (expected, actual)
            return
        assert right
        self.rev += 1
        assert rev == self.rev
        self._put((kind, id), msg.SerializeToString(), rev)

    @rule(kind=KINDS, id=IDS, conditional=st.booleans(), right=st.booleans())
    def delete(self, kind: str, id: str, conditional: bool, right: bool) -> None:
        actual = self.live.get((kind, id), (0, b""))[0]
        kw = {"if_revision": actual if right else actual + 3} if conditional else {}
        try:
            existed = self.store.delete_resource(kind, id, **kw)
        except ConflictError:
            assert conditional and not right
            return
        assert not (conditional and not right)
        if self._delete((kind, id), self.rev + 1):
            self.rev += 1
        assert existed == (actual != 0)

    @rule(writes=st.lists(st.tuples(KINDS, IDS, DATA, st.booleans()), max_size=4),
          commit=st.booleans())
    def transaction(self, writes: list[tuple[str, str, str, bool]], commit: bool) -> None:
        snapshot = (dict(self.live), {k: list(v) for k, v in self.kept.items()}, list(self.log))
        rev = self.rev + 1
        changed = False
        try:
            with self.store.transaction() as t:
                for kind, id, model, delete in writes:
                    if delete:
                        t.delete_resource(kind, id)
                        changed |= self._delete((kind, id), rev)
                    else:
                        msg = Agent(model=model)
                        assert t.save_resource(kind, id, msg) == rev
                        self._put((kind, id), msg.SerializeToString(), rev)
                        changed = True
                if not commit:
                    raise Rollback
        except Rollback:
            self.live, self.kept, self.log = snapshot
            assert t.revision == 0
            return
        if changed:
            self.rev = rev
        assert t.revision == (rev if changed else 0)

    @rule(kind=KINDS, id=IDS, model=DATA)
    def create(self, kind: str, id: str, model: str) -> None:
        msg = Agent(model=model)
        if (kind, id) in self.live:
            try:
                self.store.create_resource(kind, id, msg)
                raise AssertionError("created over a live record")
            except AlreadyExistsError:
                return
        rev = self.store.create_resource(kind, id, msg)
        self.rev += 1
        assert rev == self.rev
        self._put((kind, id), msg.SerializeToString(), rev)

    @rule(kind=KINDS, id=IDS, model=DATA, create=st.booleans())
    def update(self, kind: str, id: str, model: str, create: bool) -> None:
        old = self.live.get((kind, id))
        if old is None and not create:
            try:
                self.store.update_resource(kind, id, Agent, lambda a: None)
                raise AssertionError("updated an absent record")
            except NotFoundError:
                return
        out = self.store.update_resource(kind, id, Agent, lambda a: setattr(a, "model", model),
                                         create=create)
        want = Agent.FromString(old[1]) if old is not None else Agent()
        want.model = model
        assert out == want
        self.rev += 1
        self._put((kind, id), want.SerializeToString(), self.rev)
        assert self.store.get_record(kind, id).revision == self.rev

    @rule(kind=KINDS, items=st.lists(st.tuples(IDS, DATA), min_size=1, max_size=4))
    def batch(self, kind: str, items: list[tuple[str, str]]) -> None:
        n = self.store.save_resources(kind, [(id, Agent(model=m)) for id, m in items])
        assert n == len(items)
        self.rev += 1
        for id, m in items:  # one revision; a version the batch overwrote is not kept
            self._put((kind, id), Agent(model=m).SerializeToString(), self.rev)

    @rule(kind=KINDS, prefix=st.sampled_from(["", "a", "c/", "x"]))
    def delete_prefix(self, kind: str, prefix: str) -> None:
        n = self.store.delete_resources_by_prefix(kind, prefix)
        keys = [k for k in self.live if k[0] == kind and k[1].startswith(prefix)]
        assert n == len(keys)
        for k in keys:
            del self.live[k]
        # the matching ids' kept versions go with them (as with a kind delete)
        for k in [k for k in self.kept if k[0] == kind and k[1].startswith(prefix)]:
            del self.kept[k]
        if keys:
            self.rev += 1
            self.log.append((self.rev, "delete_prefix", kind, prefix))

    @rule(kind=KINDS)
    def delete_kind(self, kind: str) -> None:
        n = self.store.delete_resources_by_kind(kind)
        keys = [k for k in self.live if k[0] == kind]
        assert n == len(keys)
        for k in keys:
            del self.live[k]
        for k in [k for k in self.kept if k[0] == kind]:
            del self.kept[k]
        if keys:
            self.rev += 1
            self.log.append((self.rev, "delete_kind", kind, None))

    @rule(kind=KINDS, keep=st.sampled_from([0, 1, KEEP]))
    def set_history(self, kind: str, keep: int) -> None:
        self.store.set_history(kind, keep)
        self.keep[kind] = keep
        for key in [k for k in self.kept if k[0] == kind]:  # applies to those kept already
            self.kept[key] = self.kept[key][len(self.kept[key]) - keep:] if keep else []
            if not self.kept[key]:
                del self.kept[key]

    @rule(kind=KINDS, id=IDS)
    def delete_history(self, kind: str, id: str) -> None:
        assert self.store.delete_history(kind, id) == len(self.kept.pop((kind, id), []))

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store(self.dir, sync=False, keep_changes=6)

    # -- invariants --------------------------------------------------------------

    @invariant()
    def agrees(self) -> None:
        s = self.store
        assert s.revision() == self.rev
        for kind in ("V", "W"):
            got = {(kind, r.id): (r.revision, r.data) for r in s.iter_resources(kind)}
            assert got == {k: v for k, v in self.live.items() if k[0] == kind}
        for key in {*self.live, *self.kept, *[(k, i) for k in "VW" for i in ("a", "b")]}:
            want = [self.live[key]] if key in self.live else []
            want += list(reversed(self.kept.get(key, [])))
            assert [(r.revision, r.data) for r in s.history(*key)] == want
            for rev, data in want:
                assert s.get_record_at(key[0], key[1], rev).data == data
        # the change log: the newest revisions, exactly as the model logged them
        tail = [e for e in self.log if e[0] > self.rev - 6]
        got_log = [(c.revision, c.op, c.kind, c.id) for c in s.changes(max(0, self.rev - 6))]
        assert got_log == tail
        try:
            s.get_record_at("V", "a", self.rev + 1)
            raise AssertionError("a future revision")
        except NotFoundError:
            pass
        # a snapshot sees the same revision and records; the log before the
        # kept window is compacted (CompactedError), never silently short
        with s.snapshot() as snap:
            assert snap.revision == self.rev
            assert {(k, r.id): (r.revision, r.data) for k in ("V", "W")
                    for r in snap.iter_resources(k)} == self.live
        if self.rev > 12:
            try:
                s.changes(0)
                raise AssertionError("changes(0) after the log was trimmed")
            except CompactedError:
                pass


RevMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRevisions = RevMachine.TestCase
