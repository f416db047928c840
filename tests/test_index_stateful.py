"""A hypothesis state machine: random saves, updates, deletes, prefix and kind
deletes, batches and transactions (committed or rolled back) against a dict
model; after every step each index answers exactly what a full scan of the
model answers (string, repeated, map, enum, int and bytes fields), and the
index database holds no entry the records do not explain."""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from index_types import All, Inner

from pystore import Store, UniqueViolationError
from pystore._lmdb.indexcheck import check_indexes

KIND = "All"
IDS = st.sampled_from(["a", "a/1", "a/2", "ab", "b", "b/1", "é", "z" * 60])
WORDS = st.sampled_from(["", "x", "y", "Z", "x" * 300, "y" * 300])
MSGS = st.builds(
    All,
    s=WORDS,
    rs=st.lists(WORDS, max_size=4),
    smap=st.dictionaries(st.sampled_from(["", "k", "q"]), WORDS, max_size=3),
    color=st.sampled_from([0, 1, 2]),
    i64=st.sampled_from([0, -1, 1, 2**62]),
    b=st.sampled_from([b"", b"\0", b"\0\0"]),
    u32=st.sampled_from([0, 5]),
    inners=st.lists(st.builds(Inner, tag=WORDS), max_size=3),
)

# index name -> (field, unique, the values a message holds, the query values)
INDEXES: dict[str, tuple[str, bool, Any]] = {
    "s": ("s", False, lambda m: {m.s} - {""}),
    "rs": ("rs", False, lambda m: set(m.rs) - {""}),
    "smap": ("smap", False, lambda m: set(m.smap.items())),
    "color": ("color", False, lambda m: {m.color} - {0}),
    "i64": ("i64", False, lambda m: {m.i64} - {0}),
    "b": ("b", False, lambda m: {m.b} - {b""}),
    "tags": ("inners.tag", False, lambda m: {i.tag for i in m.inners} - {""}),
    "u32": ("u32", True, lambda m: {m.u32} - {0}),  # unique
}
QUERIES = {
    "s": ["x", "y", "Z", "x" * 300, "y" * 300, ""],
    "rs": ["x", "y", "x" * 300, ""],
    "smap": [(k, v) for k in ["", "k", "q"] for v in ["", "x", "y" * 300]],
    "color": [0, 1, 2],
    "i64": [-1, 1, 2**62, 0],
    "b": [b"\0", b"\0\0", b""],
    "tags": ["x", "y", "Z", ""],
    "u32": [5, 0],
}


class Rollback(Exception):
    pass


class IndexMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="pystore-idx-")
        self.store = Store(self.dir, sync=False, map_size=1 << 20)
        for name, (field, unique, _) in INDEXES.items():
            self.store.create_index(KIND, name, field=field, msg_type=All, unique=unique)
        self.model: dict[str, All] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _unique_ok(self, model: dict[str, All], id_: str, msg: All) -> bool:
        return not (msg.u32 and any(m.u32 == msg.u32 for i, m in model.items() if i != id_))

    @rule(id_=IDS, msg=MSGS)
    def save(self, id_: str, msg: All) -> None:
        if self._unique_ok(self.model, id_, msg):
            self.store.save_resource(KIND, id_, msg)
            self.model[id_] = msg
        else:
            try:
                self.store.save_resource(KIND, id_, msg)
            except UniqueViolationError:
                return
            raise AssertionError("unique violation not raised")

    @rule(items=st.lists(st.tuples(IDS, MSGS), max_size=5))
    def save_many(self, items: list[tuple[str, All]]) -> None:
        model = dict(self.model)
        ok = True
        for id_, msg in items:
            ok = ok and self._unique_ok(model, id_, msg)
            model[id_] = msg
        try:
            self.store.save_resources(KIND, items)
        except UniqueViolationError:
            assert not ok
            return
        assert ok
        self.model = model

    @rule(id_=IDS, s=WORDS, color=st.sampled_from([0, 1, 2]))
    def update(self, id_: str, s: str, color: int) -> None:
        if id_ not in self.model:
            return
        def fn(m: All) -> None:
            m.s, m.color = s, color
        self.store.update_resource(KIND, id_, All, fn)
        m = All()
        m.CopyFrom(self.model[id_])
        fn(m)
        self.model[id_] = m

    @rule(id_=IDS)
    def delete(self, id_: str) -> None:
        assert self.store.delete_resource(KIND, id_) == (id_ in self.model)
        self.model.pop(id_, None)

    @rule(prefix=st.sampled_from(["", "a", "a/", "b", "é", "zz", "q"]))
    def delete_prefix(self, prefix: str) -> None:
        gone = [i for i in self.model if i.startswith(prefix)]
        assert self.store.delete_resources_by_prefix(KIND, prefix) == len(gone)
        for i in gone:
            del self.model[i]

    @rule()
    def delete_kind(self) -> None:
        assert self.store.delete_resources_by_kind(KIND) == len(self.model)
        self.model.clear()

    @rule(ops=st.lists(st.tuples(st.booleans(), IDS, MSGS), max_size=4), commit=st.booleans())
    def transaction(self, ops: list[tuple[bool, str, All]], commit: bool) -> None:
        model = dict(self.model)
        try:
            with self.store.transaction() as t:
                for is_save, id_, msg in ops:
                    if is_save:
                        if not self._unique_ok(model, id_, msg):
                            with_violation = True
                            try:
                                t.save_resource(KIND, id_, msg)
                            except UniqueViolationError:
                                continue
                            assert not with_violation
                        t.save_resource(KIND, id_, msg)
                        model[id_] = msg
                    else:
                        t.delete_resource(KIND, id_)
                        model.pop(id_, None)
                for name, (_, _, values) in INDEXES.items():
                    for q in QUERIES[name][:2]:
                        assert t.find_ids(KIND, name, q) == sorted(
                            (i for i, m in model.items() if q in values(m)),
                            key=lambda x: x.encode())
                if not commit:
                    raise Rollback
        except Rollback:
            return
        self.model = model

    @invariant()
    def indexes_equal_a_full_scan(self) -> None:
        for name, (_, _, values) in INDEXES.items():
            for q in QUERIES[name]:
                want = sorted((i for i, m in self.model.items() if q in values(m)),
                              key=lambda x: x.encode())
                assert self.store.find_ids(KIND, name, q) == want, (name, q)
                assert self.store.count_index(KIND, name, q) == len(want)
        entries = {i.name: i.entries for i in self.store.indexes(KIND)}
        for name, (_, _, values) in INDEXES.items():
            assert entries[name] == sum(len(values(m)) for m in self.model.values()), name
        assert self.store._run(False, check_indexes) == []


IndexMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestIndexMachine = IndexMachine.TestCase
