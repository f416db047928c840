"""A hypothesis state machine of the etcd backend against a model: saves
(plain, create-only, conditional with the right and a wrong revision),
deletes, kind deletes, optimistic transactions that commit or roll back,
updates; with a history keep count and an index on one kind.  After every
step the store's records, revisions, history, index and change feed must
equal the model's."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pystore import AlreadyExistsError, ConflictError, Store
from pystore.samples.agent_pb2 import Agent

if TYPE_CHECKING:
    from etcd_cluster import EtcdCluster

KINDS = st.sampled_from(["V", "W"])
IDS = st.sampled_from(["a", "b", "c/d"])
MODELS = st.sampled_from(["x", "y", "z", ""])
KEEP = 2


class Rollback(Exception):
    pass


class EtcdMachine(RuleBasedStateMachine):
    base_url: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.store = Store(f"{self.base_url}/sm-{uuid.uuid4().hex[:10]}/", timeout=10.0)
        self.store.set_history("V", KEEP)
        self.store.create_index("V", "by_model", field="model", msg_type=Agent)
        self.start = self.store.revision()
        self.live: dict[tuple[str, str], tuple[int, str]] = {}
        self.kept: dict[tuple[str, str], list[tuple[int, str]]] = {}
        # (revision, op, kind, id); compared per revision as sets (the order of
        # one transaction's writes within its revision is not part of the contract)
        self.log: list[tuple[int, str, str, str | None]] = []

    def teardown(self) -> None:
        self.store.close()

    def _put(self, key: tuple[str, str], model: str, rev: int) -> None:
        old = self.live.get(key)
        if old is not None and key[0] == "V":
            self.kept[key] = [*self.kept.get(key, []), old][-KEEP:]
        self.live[key] = (rev, model)
        self.log.append((rev, "put", key[0], key[1]))

    def _delete(self, key: tuple[str, str], rev: int) -> None:
        old = self.live.pop(key)
        if key[0] == "V":
            self.kept[key] = [*self.kept.get(key, []), old][-KEEP:]
        self.log.append((rev, "delete", key[0], key[1]))

    @rule(kind=KINDS, id=IDS, model=MODELS)
    def save(self, kind: str, id: str, model: str) -> None:
        rev = self.store.save_resource(kind, id, Agent(model=model))
        self._put((kind, id), model, rev)

    @rule(kind=KINDS, id=IDS, model=MODELS)
    def create(self, kind: str, id: str, model: str) -> None:
        if (kind, id) in self.live:
            with pytest.raises(AlreadyExistsError):
                self.store.create_resource(kind, id, Agent(model=model))
            return
        self._put((kind, id), model, self.store.create_resource(kind, id, Agent(model=model)))

    @rule(kind=KINDS, id=IDS, model=MODELS, right=st.booleans())
    def save_if(self, kind: str, id: str, model: str, right: bool) -> None:
        actual = self.live.get((kind, id), (0, ""))[0]
        expected = actual if right else actual + 1
        if not right:
            with pytest.raises(ConflictError) as ei:
                self.store.save_resource(kind, id, Agent(model=model), if_revision=expected)
            assert ei.value.actual == actual
            return
        rev = self.store.save_resource(kind, id, Agent(model=model), if_revision=expected)
        self._put((kind, id), model, rev)

    @rule(kind=KINDS, id=IDS)
    def delete(self, kind: str, id: str) -> None:
        existed = self.store.delete_resource(kind, id)
        assert existed == ((kind, id) in self.live)
        if existed:
            self._delete((kind, id), self.store.revision())

    @rule(kind=KINDS)
    def delete_kind(self, kind: str) -> None:
        n = self.store.delete_resources_by_kind(kind)
        keys = [k for k in self.live if k[0] == kind]
        assert n == len(keys)
        for k in keys:
            del self.live[k]
        for k in [k for k in self.kept if k[0] == kind]:
            del self.kept[k]  # a kind delete drops its history (as LMDB)
        if n:
            self.log.append((self.store.revision(), "delete_kind", kind, None))

    @rule(ops=st.lists(st.tuples(KINDS, IDS, MODELS, st.booleans()), min_size=1, max_size=4),
          commit=st.booleans())
    def transaction(self, ops: list[tuple[str, str, str, bool]], commit: bool) -> None:
        final: dict[tuple[str, str], str | None] = {}
        try:
            with self.store.transaction() as t:
                for kind, id, model, delete in ops:
                    if delete:
                        t.delete_resource(kind, id)
                        final[(kind, id)] = None
                    else:
                        t.save_resource(kind, id, Agent(model=model))
                        final[(kind, id)] = model
                if not commit:
                    raise Rollback
        except Rollback:
            return
        for key, model in final.items():  # one revision; the last write of a key wins
            if model is not None:
                self._put(key, model, t.revision)
            elif key in self.live:
                self._delete(key, t.revision)

    @rule(kind=KINDS, id=IDS)
    def update(self, kind: str, id: str) -> None:
        if (kind, id) not in self.live:
            return
        out = self.store.update_resource(kind, id, Agent, lambda m: setattr(m, "model", "u"))
        assert out.model == "u"
        self._put((kind, id), "u", self.store.get_record(kind, id).revision)

    @invariant()
    def matches_the_model(self) -> None:
        s = self.store
        for kind in ("V", "W"):
            got = {(kind, r.id): (r.revision, Agent.FromString(r.data).model)
                   for r in s.iter_resources(kind)}
            assert got == {k: v for k, v in self.live.items() if k[0] == kind}
        for key in [("V", i) for i in ("a", "b", "c/d")]:
            hist = [(r.revision, Agent.FromString(r.data).model) for r in s.history(*key)]
            want = ([self.live[key]] if key in self.live else []) + list(
                reversed(self.kept.get(key, [])))
            assert hist == want
        for model in ("x", "y", "z", "u"):
            assert s.find_ids("V", "by_model", model) == sorted(
                k[1] for k, v in self.live.items() if k[0] == "V" and v[1] == model)
        assert s.find_ids("V", "by_model", "") == []  # a default value makes no entry
        got_log = sorted((c.revision, c.op, c.kind or "", c.id or "")
                         for c in s.changes(self.start))
        assert got_log == sorted((r, op, k, i or "") for r, op, k, i in self.log)


@pytest.fixture(autouse=True)
def _cluster(etcd_cluster: EtcdCluster) -> None:
    etcd_cluster.ensure_running()
    EtcdMachine.base_url = etcd_cluster.url("/pystore-test").rstrip("/")


EtcdMachine.TestCase.settings = settings(
    max_examples=10, stateful_step_count=12, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEtcdMachine = EtcdMachine.TestCase
