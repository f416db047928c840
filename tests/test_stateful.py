"""A hypothesis state machine drives one store and checks it against a dict model.

Rules cover every write (save, create, save_resources, update_resource,
delete, delete by kind, transactions that commit or roll back) and every read,
plus close-and-reopen; after each step every kind's listing equals the model.
"""

from __future__ import annotations

import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pystore import AlreadyExistsError, NotFoundError, Store
from pystore.samples.agent_pb2 import Agent

# Kinds that are prefixes of each other, and bytes below "/", to catch
# prefix-scan and ordering mistakes.
KINDS = st.sampled_from(["A", "Ab", "A0", "A-", "A.x", "Agent", "B"])
IDS = st.one_of(
    st.sampled_from(["1", "2", "10", "a/b", "é", "x" * 100]),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
        min_size=1,
        max_size=12,
    ),
)
MSGS = st.builds(
    Agent,
    model=st.text(max_size=20),
    instructions=st.one_of(st.just(""), st.text(max_size=50), st.just("L" * 20_000)),
    temperature=st.floats(allow_nan=False, allow_infinity=False, width=32),
)

Model = dict[tuple[str, str], bytes]


class Rollback(Exception):
    pass


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="pystore-stateful-")
        self.store = Store(self.dir, sync=False, map_size=1 << 20)
        self.model: Model = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- writes -------------------------------------------------------------

    @rule(kind=KINDS, id=IDS, msg=MSGS)
    def save(self, kind: str, id: str, msg: Agent) -> None:
        self.store.save_resource(kind, id, msg)
        self.model[kind, id] = msg.SerializeToString()

    @rule(kind=KINDS, id=IDS, msg=MSGS)
    def create(self, kind: str, id: str, msg: Agent) -> None:
        if (kind, id) in self.model:
            try:
                self.store.create_resource(kind, id, msg)
            except AlreadyExistsError:
                return
            raise AssertionError("create_resource over an existing key")
        self.store.create_resource(kind, id, msg)
        self.model[kind, id] = msg.SerializeToString()

    @rule(kind=KINDS, items=st.lists(st.tuples(IDS, MSGS), max_size=8))
    def save_many(self, kind: str, items: list[tuple[str, Agent]]) -> None:
        assert self.store.save_resources(kind, items) == len(items)
        for id, msg in items:
            self.model[kind, id] = msg.SerializeToString()

    @rule(kind=KINDS, id=IDS, model=st.text(max_size=10), fail=st.booleans())
    def update(self, kind: str, id: str, model: str, fail: bool) -> None:
        def fn(msg: Agent) -> None:
            msg.model = model
            if fail:
                raise Rollback

        if (kind, id) not in self.model:
            try:
                self.store.update_resource(kind, id, Agent, fn)
            except NotFoundError:
                return
            raise AssertionError("update_resource of a missing key")
        try:
            got = self.store.update_resource(kind, id, Agent, fn)
        except Rollback:
            assert fail
            return
        expect = Agent.FromString(self.model[kind, id])
        expect.model = model
        assert got == expect
        self.model[kind, id] = got.SerializeToString()

    @rule(kind=KINDS, id=IDS)
    def delete(self, kind: str, id: str) -> None:
        assert self.store.delete_resource(kind, id) == ((kind, id) in self.model)
        self.model.pop((kind, id), None)

    @rule(kind=KINDS)
    def delete_kind(self, kind: str) -> None:
        keys = [k for k in self.model if k[0] == kind]
        assert self.store.delete_resources_by_kind(kind) == len(keys)
        for k in keys:
            del self.model[k]

    @rule(
        ops=st.lists(st.tuples(st.booleans(), KINDS, IDS, MSGS), min_size=1, max_size=6),
        commit=st.booleans(),
    )
    def transaction(self, ops: list[tuple[bool, str, str, Agent]], commit: bool) -> None:
        staged = dict(self.model)
        try:
            with self.store.transaction() as t:
                for is_save, kind, id, msg in ops:
                    if is_save:
                        t.save_resource(kind, id, msg)
                        staged[kind, id] = msg.SerializeToString()
                    else:
                        assert t.delete_resource(kind, id) == ((kind, id) in staged)
                        staged.pop((kind, id), None)
                    # Reads inside see the transaction's own writes.
                    assert t.count(kind) == sum(1 for k in staged if k[0] == kind)
                if not commit:
                    raise Rollback
        except Rollback:
            return
        self.model = staged

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store(self.dir, sync=False)

    # -- reads --------------------------------------------------------------

    @rule(kind=KINDS, id=IDS)
    def get(self, kind: str, id: str) -> None:
        if (kind, id) in self.model:
            assert self.store.get_bytes(kind, id) == self.model[kind, id]
            rec = self.store.get_record(kind, id)
            assert (rec.kind, rec.id, rec.data) == (kind, id, self.model[kind, id])
        else:
            try:
                self.store.get_resource(kind, id, Agent)
            except NotFoundError:
                return
            raise AssertionError("get_resource of a missing key")

    @rule(
        kind=KINDS,
        after=st.one_of(st.none(), IDS),
        limit=st.one_of(st.none(), st.integers(0, 5)),
    )
    def page(self, kind: str, after: str | None, limit: int | None) -> None:
        ids = sorted((i for k, i in self.model if k == kind), key=lambda s: s.encode())
        if after is not None:
            ids = [i for i in ids if i.encode() > after.encode()]
        if limit is not None:
            ids = ids[:limit]
        got = [r.id for r in self.store.iter_resources(kind, after=after, limit=limit)]
        assert got == ids

    @invariant()
    def matches_model(self) -> None:
        kinds = sorted({k for k, _ in self.model})
        assert self.store.kinds() == kinds
        for kind in kinds:
            want = [v for (k, _), v in sorted(self.model.items(), key=_key_order) if k == kind]
            assert self.store.list_resources(kind) == want
            assert self.store.count(kind) == len(want)


def _key_order(item: tuple[tuple[str, str], bytes]) -> bytes:
    return item[0][1].encode()


StoreMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestStoreMachine = StoreMachine.TestCase
