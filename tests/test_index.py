"""Secondary indexes: every line of issue 10's index contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from index_types import All, Inner

import pystore
from pystore import (
    AlreadyExistsError,
    IndexInfo,
    InvalidKeyError,
    NotFoundError,
    Store,
    StoreError,
    TransactionError,
    UniqueViolationError,
)
from pystore._lmdb.indexcheck import check_indexes
from pystore.samples.agent_execution_pb2 import AgentExecution, ExecutionStatus, ToolCall
from pystore.samples.agent_pb2 import Agent
from pystore.samples.common_pb2 import ResourceMetadata
from pystore.samples.session_pb2 import Session


def sess(agent: str = "", execs: tuple[str, ...] = (), ctx: dict[str, str] | None = None,
         slug: str = "", org: str = "") -> Session:
    return Session(metadata=ResourceMetadata(slug=slug, org_id=org), agent_id=agent,
                   execution_ids=list(execs), context=ctx or {})


def consistent(store: Store) -> list[str]:
    problems: list[str] = store._run(False, check_indexes)
    return problems


@pytest.fixture
def s(store: Store) -> Store:
    store.create_index("Session", "agent", field="agent_id", msg_type=Session)
    store.create_index("Session", "slug", field="metadata.slug", msg_type=Session, unique=True)
    store.create_index("Session", "execs", field="execution_ids", msg_type=Session)
    store.create_index("Session", "ctx", field="context", msg_type=Session)
    return store


# -- create / drop / list ---------------------------------------------------------


def test_create_index_backfills_and_returns_entry_count(store: Store) -> None:
    store.save_resource("Session", "s1", sess("a1", ("e1", "e2", "e1")))
    store.save_resource("Session", "s2", sess("a1", ("e2",)))
    store.save_resource("Session", "s3", sess(""))
    assert store.create_index("Session", "agent", field="agent_id", msg_type=Session) == 2
    assert store.create_index("Session", "execs", field="execution_ids", msg_type=Session) == 3
    assert store.find_ids("Session", "agent", "a1") == ["s1", "s2"]
    assert store.find_ids("Session", "execs", "e2") == ["s1", "s2"]


def test_identical_create_is_a_noop_returning_the_count(s: Store) -> None:
    s.save_resource("Session", "s1", sess("a1"))
    assert s.create_index("Session", "agent", field="agent_id", msg_type=Session) == 1
    assert [i.name for i in s.indexes("Session")].count("agent") == 1


def test_same_name_other_definition_raises_store_error(s: Store) -> None:
    for kw in (dict(field="subject", msg_type=Session), dict(field="agent_id", msg_type=Session,
                                                               unique=True),
               dict(field="agent_id", msg_type=AgentExecution)):
        with pytest.raises(StoreError, match="another definition"):
            s.create_index("Session", "agent", **kw)  # type: ignore[arg-type]


def test_unique_over_duplicates_raises_and_creates_nothing(store: Store) -> None:
    store.save_resource("Session", "s1", sess("dup"))
    store.save_resource("Session", "s2", sess("dup"))
    with pytest.raises(UniqueViolationError) as ei:
        store.create_index("Session", "agent", field="agent_id", msg_type=Session, unique=True)
    assert (ei.value.kind, ei.value.index, ei.value.value) == ("Session", "agent", "dup")
    assert ei.value.holder in ("s1", "s2")
    assert store.indexes() == []
    store.save_resource("Session", "s3", sess("dup"))  # nothing left behind
    assert consistent(store) == []


def test_drop_index_removes_it_and_its_entries(s: Store) -> None:
    s.save_resource("Session", "s1", sess("a1"))
    s.drop_index("Session", "agent")
    assert "agent" not in [i.name for i in s.indexes()]
    with pytest.raises(NotFoundError):
        s.find_ids("Session", "agent", "a1")
    with pytest.raises(NotFoundError):
        s.drop_index("Session", "agent")
    # a new index under the old name starts from the records, not old entries
    assert s.create_index("Session", "agent", field="subject", msg_type=Session) == 0
    assert s.find_ids("Session", "agent", "a1") == []
    assert consistent(s) == []


def test_indexes_sorted_by_kind_and_name_with_entries(s: Store) -> None:
    s.create_index("Agent", "model", field="model", msg_type=Agent)
    s.create_index("Agent", "a-slug", field="metadata.slug", msg_type=Agent, unique=True)
    s.save_resource("Session", "s1", sess("a1", ("x", "y"), {"k": "v"}, slug="sl"))
    infos = s.indexes()
    assert [(i.kind, i.name) for i in infos] == sorted((i.kind, i.name) for i in infos)
    assert IndexInfo("Session", "execs", "execution_ids", False, 2) in infos
    assert IndexInfo("Session", "slug", "metadata.slug", True, 1) in infos
    assert [i.name for i in s.indexes("Agent")] == ["a-slug", "model"]
    assert s.indexes("Nothing") == []


def test_index_survives_reopen(store_path: Path) -> None:
    with Store(store_path, sync=False) as st:
        st.create_index("Session", "agent", field="agent_id", msg_type=Session)
    with Store(store_path, sync=False) as st:
        st.save_resource("Session", "s1", sess("a1"))
        assert st.find_ids("Session", "agent", "a1") == ["s1"]
    with Store(store_path, readonly=True) as ro:
        assert ro.find_ids("Session", "agent", "a1") == ["s1"]
        assert [i.name for i in ro.indexes()] == ["agent"]


@pytest.mark.parametrize(
    ("field", "msg_type", "names"),
    [
        ("temperature", Agent, "double"),
        ("flt", All, "float"),
        ("metadata", Agent, "message"),
        ("tools", Agent, "message"),
        ("environments", Agent, "environments"),
        ("keyint", All, "string keys"),
        ("msgmap", All, "msgmap"),
        ("nope", Agent, "nope"),
        ("metadata.nope", Agent, "nope"),
        ("model.x", Agent, "model"),
        ("metadata.labels.x", Agent, "labels"),
        ("", Agent, "''"),
        ("metadata..slug", Agent, "metadata..slug"),
    ],
)
def test_unindexable_fields_are_refused_naming_the_field(
    store: Store, field: str, msg_type: type, names: str
) -> None:
    with pytest.raises(ValueError, match=names):
        store.create_index("K", "i", field=field, msg_type=msg_type)
    assert store.indexes() == []


def test_argument_types(store: Store) -> None:
    with pytest.raises(TypeError):
        store.create_index("K", "i", field="model", msg_type=Agent())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.create_index("K", 1, field="model", msg_type=Agent)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        store.create_index("K", "", field="model", msg_type=Agent)
    with pytest.raises(InvalidKeyError):
        store.create_index("K/x", "i", field="model", msg_type=Agent)
    store.create_index("K", "i", field="model", msg_type=Agent)
    with pytest.raises(TypeError):
        store.find("K", "i", None)
    with pytest.raises(TypeError):
        store.find("K", "i", 1.5)
    with pytest.raises(TypeError):  # a str field is not queried with an int
        store.find("K", "i", 3)
    with pytest.raises(NotFoundError):
        store.find("K", "nope", "x")
    with pytest.raises(NotFoundError):
        store.count_index("K", "nope", "x")


# -- lookups -------------------------------------------------------------------


def test_find_variants(s: Store) -> None:
    for i in [10, 9, 2, 1, 11]:
        s.save_resource("Session", f"s{i:02d}", sess("a", subject_ctx(i)))
    s.save_resource("Session", "other", sess("b"))
    ids = ["s01", "s02", "s09", "s10", "s11"]
    assert s.find_ids("Session", "agent", "a") == ids
    raw = s.find("Session", "agent", "a")
    assert all(isinstance(r, bytes) for r in raw)
    assert raw == [s.get_bytes("Session", i) for i in ids]
    msgs = s.find("Session", "agent", "a", Session)
    assert [m.execution_ids[0] for m in msgs] == [f"e{int(i[1:])}" for i in ids]
    assert s.find_ids("Session", "agent", "a") == ids
    assert [m.execution_ids[0] for m in s.find("Session", "agent", "a", Session,
                                               after="s02", limit=2)] == ["e9", "e10"]
    assert s.find("Session", "agent", "a", after="s11") == []
    assert s.find("Session", "agent", "a", limit=0) == []
    assert s.count_index("Session", "agent", "a") == 5
    assert s.count_index("Session", "agent", "zzz") == 0
    one = s.find_one("Session", "agent", "a", Session)
    assert one.execution_ids == ["e1"]
    with pytest.raises(NotFoundError):
        s.find_one("Session", "agent", "zzz", Session)
    with pytest.raises(KeyError):
        s.find_one("Session", "agent", "zzz", Session)


def subject_ctx(i: int) -> tuple[str, ...]:
    return (f"e{i}",)


def test_defaults_make_no_entry(s: Store) -> None:
    s.save_resource("Session", "s1", sess("", ("", "x"), {}))
    assert s.find_ids("Session", "agent", "") == []
    assert s.count_index("Session", "agent", "") == 0
    assert s.find_ids("Session", "execs", "") == []
    assert s.find_ids("Session", "execs", "x") == ["s1"]
    with pytest.raises(NotFoundError):
        s.find_one("Session", "agent", "", Session)
    assert {i.name: i.entries for i in s.indexes()}["agent"] == 0


def test_repeated_one_entry_per_distinct_element_and_map_pairs(s: Store) -> None:
    s.save_resource("Session", "s1", sess(execs=("x", "y", "x"), ctx={"k": "v", "k2": ""}))
    assert {i.name: i.entries for i in s.indexes()}["execs"] == 2
    assert s.find_ids("Session", "execs", "x") == ["s1"]
    assert s.find_ids("Session", "ctx", ("k", "v")) == ["s1"]
    assert s.find_ids("Session", "ctx", ("k2", "")) == ["s1"]  # the pair is present
    assert s.find_ids("Session", "ctx", ("k", "w")) == []
    assert s.find_ids("Session", "ctx", ("v", "k")) == []
    with pytest.raises(TypeError):
        s.find_ids("Session", "ctx", "k")
    with pytest.raises(TypeError):
        s.find_ids("Session", "agent", ("k", "v"))


def test_paths_through_singular_and_repeated_messages(store: Store) -> None:
    store.create_index("Ex", "tool", field="status.tool_calls.tool", msg_type=AgentExecution)
    store.create_index("Ex", "phase", field="status.phase", msg_type=AgentExecution)
    store.create_index("Ex", "tokens", field="status.tokens_used", msg_type=AgentExecution)
    store.create_index("Agent", "label", field="metadata.labels", msg_type=Agent)
    ex = AgentExecution(status=ExecutionStatus(
        phase=2, tokens_used=-7, tool_calls=[ToolCall(tool="grep"), ToolCall(tool="ls"),
                                             ToolCall(tool="grep")]))
    store.save_resource("Ex", "x1", ex)
    store.save_resource("Ex", "x2", AgentExecution(status=ExecutionStatus(phase=3)))
    store.save_resource("Agent", "a", Agent(metadata=ResourceMetadata(labels={"team": "core"})))
    assert store.find_ids("Ex", "tool", "grep") == ["x1"]
    assert store.find_ids("Ex", "tool", "ls") == ["x1"]
    assert store.find_ids("Ex", "phase", 2) == ["x1"]  # an enum by its number
    assert store.find_ids("Ex", "phase", 3) == ["x2"]
    assert store.find_ids("Ex", "tokens", -7) == ["x1"]
    assert store.find_ids("Agent", "label", ("team", "core")) == ["a"]


SCALAR_CASES = [
    ("s", "héllo", "héllo"), ("b", b"\x00\xff", b"\x00\xff"), ("flag", True, True),
    ("i32", -5, -5), ("i64", -(2**63), -(2**63)), ("u32", 2**32 - 1, 2**32 - 1),
    ("u64", 2**64 - 1, 2**64 - 1), ("s32", -(2**31), -(2**31)), ("s64", 2**63 - 1, 2**63 - 1),
    ("f32", 7, 7), ("f64", 2**64 - 2, 2**64 - 2), ("sf32", -1, -1), ("sf64", -(2**62), -(2**62)),
    ("color", 2, 2),
]


@pytest.mark.parametrize(("field", "value", "query"), SCALAR_CASES)
def test_every_scalar_kind(store: Store, field: str, value: object, query: object) -> None:
    store.create_index("All", field, field=field, msg_type=All)
    store.save_resource("All", "one", All(**{field: value}))
    store.save_resource("All", "zero", All())
    assert store.find_ids("All", field, query) == ["one"]
    assert store.find("All", field, query, All) == [All(**{field: value})]
    if not isinstance(value, (str, bytes)):
        assert store.find_ids("All", field, 0 if not isinstance(value, bool) else False) == []
    if isinstance(value, int) and not isinstance(value, bool):
        assert store.find_ids("All", field, value - 1 if value > 0 else value + 1) == []
    assert consistent(store) == []


@pytest.mark.parametrize("field", ["ri32", "ri64", "ru64", "rs64", "rf32", "rsf64", "rflag"])
def test_repeated_packed_numbers(store: Store, field: str) -> None:
    store.create_index("All", field, field=field, msg_type=All)
    vals = [True, False, True] if field == "rflag" else [3, 1, 3, 0, 200]
    store.save_resource("All", "x", All(**{field: vals}))
    expect = {v for v in vals if v}
    assert {i.name: i.entries for i in store.indexes()}[field] == len(expect)
    for v in expect:
        assert store.find_ids("All", field, v) == ["x"]


def test_out_of_range_queries_match_nothing(store: Store) -> None:
    for f in ("i32", "u32", "u64"):
        store.create_index("All", f, field=f, msg_type=All)
    store.save_resource("All", "x", All(i32=1, u32=1, u64=1))
    assert store.find_ids("All", "i32", 2**40 + 1) == []
    assert store.find_ids("All", "u32", -1) == []
    assert store.find_ids("All", "u64", 2**64 + 1) == []
    assert store.find_ids("All", "u64", -(2**64)) == []
    assert store.count_index("All", "u64", 2**70) == 0


def test_map_value_kinds(store: Store) -> None:
    store.create_index("All", "imap", field="imap", msg_type=All)
    store.create_index("All", "bmap", field="bmap", msg_type=All)
    store.create_index("All", "tags", field="inners.tag", msg_type=All)
    store.create_index("All", "itag", field="inner.n", msg_type=All)
    store.save_resource("All", "x", All(imap={"a": -3, "z": 0}, bmap={"t": True, "f": False},
                                        inners=[Inner(tag="p"), Inner(tag="q")],
                                        inner=Inner(n=9)))
    assert store.find_ids("All", "imap", ("a", -3)) == ["x"]
    assert store.find_ids("All", "imap", ("z", 0)) == ["x"]
    assert store.find_ids("All", "bmap", ("f", False)) == ["x"]
    assert store.find_ids("All", "bmap", ("t", True)) == ["x"]
    assert store.find_ids("All", "bmap", ("t", False)) == []
    assert store.find_ids("All", "tags", "q") == ["x"]
    assert store.find_ids("All", "itag", 9) == ["x"]


def test_long_values_stay_exact(store: Store) -> None:
    store.create_index("All", "s", field="s", msg_type=All)
    store.create_index("All", "b", field="b", msg_type=All, unique=True)
    store.create_index("All", "smap", field="smap", msg_type=All)
    base = "x" * 100_000
    store.save_resource("All", "a", All(s=base + "a", b=b"\1" * 300, smap={base: base}))
    store.save_resource("All", "b", All(s=base + "b", b=b"\1" * 299 + b"\2", smap={base: "y"}))
    store.save_resource("All", "c", All(s="x" * 255, b=b"\1" * 255))
    store.save_resource("All", "d", All(s="x" * 256, b=b"\1" * 256))
    assert store.find_ids("All", "s", base + "a") == ["a"]
    assert store.find_ids("All", "s", base + "b") == ["b"]
    assert store.find_ids("All", "s", base) == []
    assert store.find_ids("All", "s", "x" * 255) == ["c"]
    assert store.find_ids("All", "s", "x" * 256) == ["d"]
    assert store.find_ids("All", "b", b"\1" * 300) == ["a"]
    assert store.find_ids("All", "smap", (base, base)) == ["a"]
    assert store.find_ids("All", "smap", (base, "y")) == ["b"]
    with pytest.raises(UniqueViolationError) as ei:
        store.save_resource("All", "e", All(b=b"\1" * 300))
    assert ei.value.value == b"\1" * 300 and ei.value.holder == "a"
    assert consistent(store) == []


def test_ids_of_any_length_and_unicode(s: Store) -> None:
    long_id = "é" * 200 + "z"
    s.save_resource("Session", long_id, sess("a"))
    s.save_resource("Session", "日本", sess("a"))
    assert s.find_ids("Session", "agent", "a") == sorted([long_id, "日本"],
                                                         key=lambda x: x.encode())
    assert s.find_ids("Session", "agent", "a") == [r.id for r in s.iter_resources("Session")]


def test_values_are_what_is_persisted_after_stripping(store: Store) -> None:
    store.create_index("Session", "org", field="metadata.org_id", msg_type=Session)
    store.save_resource("Session", "s1", sess(org="org-1"))
    assert store.find_ids("Session", "org", "org-1") == []
    assert {i.name: i.entries for i in store.indexes()}["org"] == 0


# -- unique --------------------------------------------------------------------


def test_unique_violation_on_every_write_path(s: Store) -> None:
    s.save_resource("Session", "holder", sess(slug="taken"))
    before = s.list_resources("Session")

    def check(exc: UniqueViolationError) -> None:
        assert isinstance(exc, AlreadyExistsError)
        assert (exc.kind, exc.index, exc.value, exc.holder) == ("Session", "slug", "taken",
                                                                "holder")
        assert "taken" in str(exc) and "holder" in str(exc)

    for call in (
        lambda: s.save_resource("Session", "x", sess(slug="taken")),
        lambda: s.create_resource("Session", "x", sess(slug="taken")),
        lambda: s.save_resources("Session", [("y", sess(slug="free")),
                                             ("x", sess(slug="taken"))]),
    ):
        with pytest.raises(UniqueViolationError) as ei:
            call()
        check(ei.value)
    s.save_resource("Session", "z", sess(slug="mine"))
    with pytest.raises(UniqueViolationError) as ei:
        s.update_resource("Session", "z", Session,
                          lambda m: setattr(m.metadata, "slug", "taken"))
    check(ei.value)
    with pytest.raises(UniqueViolationError), s.transaction() as t:
        t.save_resource("Session", "w", sess(slug="other"))
        t.save_resource("Session", "x", sess(slug="taken"))
    assert s.list_resources("Session") == [*before, s.get_bytes("Session", "z")]
    assert s.find_ids("Session", "slug", "free") == []
    assert s.find_ids("Session", "slug", "other") == []
    assert s.find_ids("Session", "slug", "mine") == ["z"]
    assert consistent(s) == []


def test_batch_duplicate_within_itself_rolls_back(s: Store) -> None:
    with pytest.raises(UniqueViolationError) as ei:
        s.save_resources("Session", [("a", sess(slug="v")), ("b", sess(slug="v"))])
    assert ei.value.holder == "a"
    assert s.count("Session") == 0 and s.find_ids("Session", "slug", "v") == []


def test_caught_violation_inside_a_transaction(s: Store) -> None:
    s.save_resource("Session", "h", sess(slug="taken"))
    with s.transaction() as t:
        t.save_resource("Session", "a", sess(slug="a"))
        with pytest.raises(UniqueViolationError):
            t.save_resource("Session", "b", sess(slug="taken"))  # changes nothing
        t.save_resource("Session", "c", sess(slug="c"))
    assert s.find_ids("Session", "slug", "a") == ["a"]
    assert s.find_ids("Session", "slug", "c") == ["c"]
    assert s.find_ids("Session", "slug", "taken") != ["b"]
    # a batch that failed half way spoils the transaction: it all rolls back
    with pytest.raises(TransactionError), s.transaction() as t:
        t.save_resource("Session", "d", sess(slug="d"))
        with pytest.raises(UniqueViolationError):
            t.save_resources("Session", [("e", sess(slug="e")), ("f", sess(slug="taken"))])
    assert s.find_ids("Session", "slug", "d") == [] and s.count("Session") == 3
    assert consistent(s) == []


def test_resave_own_value_and_moves(s: Store) -> None:
    s.save_resource("Session", "a", sess("p", slug="v"))
    s.save_resource("Session", "a", sess("p", slug="v"))
    s.create_index("Session", "agent2", field="agent_id", msg_type=Session, unique=True)
    s.save_resource("Session", "a", sess("q", slug="w"))  # upsert moves the entries
    assert s.find_ids("Session", "slug", "v") == [] and s.find_ids("Session", "slug", "w") == ["a"]
    assert s.find_ids("Session", "agent", "p") == []
    assert s.find_ids("Session", "agent", "q") == ["a"]
    s.save_resource("Session", "b", sess("p", slug="v"))  # the old values are free again
    with s.transaction() as t:  # swap two unique values in one transaction
        t.save_resource("Session", "a", sess("x", slug="tmp"))
        t.save_resource("Session", "b", sess("q", slug="w"))
        t.save_resource("Session", "a", sess("p", slug="v"))
    assert s.find_ids("Session", "slug", "v") == ["a"]
    assert s.find_ids("Session", "slug", "w") == ["b"]
    assert consistent(s) == []


# -- deletes -------------------------------------------------------------------


def test_deletes_remove_entries(s: Store) -> None:
    for i in range(5):
        s.save_resource("Session", f"s{i}", sess("a", (f"e{i}",), {"k": str(i)}, slug=f"u{i}"))
    s.save_resource("Other", "s0", sess("a"))
    assert s.delete_resource("Session", "s0")
    assert s.find_ids("Session", "agent", "a") == ["s1", "s2", "s3", "s4"]
    assert s.find_ids("Session", "slug", "u0") == []
    assert s.delete_resources_by_kind("Session") == 4
    assert all(i.entries == 0 for i in s.indexes("Session"))
    assert s.count("Other") == 1
    s.save_resource("Session", "s1", sess(slug="u1"))  # unique values free again
    assert consistent(s) == []


def test_delete_resources_by_prefix(s: Store) -> None:
    for i in ["a/1", "a/2", "a", "ab", "b/1"]:
        s.save_resource("Session", i, sess("x", slug=i))
    s.save_resource("Sessions", "a/9", sess("x"))
    assert s.delete_resources_by_prefix("Session", "a/") == 2
    assert [r.id for r in s.iter_resources("Session")] == ["a", "ab", "b/1"]
    assert s.find_ids("Session", "agent", "x") == ["a", "ab", "b/1"]
    assert s.find_ids("Session", "slug", "a/1") == []
    assert s.delete_resources_by_prefix("Session", "zzz") == 0
    with s.transaction() as t:
        assert t.delete_resources_by_prefix("Session", "a") == 2
        assert t.find_ids("Session", "agent", "x") == ["b/1"]
    assert s.delete_resources_by_prefix("Session", "") == 1
    assert s.count("Session") == 0 and s.count("Sessions") == 1
    assert consistent(s) == []
    with pytest.raises(TypeError):
        s.delete_resources_by_prefix("Session", None)  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        s.delete_resources_by_prefix("Session", "a\0")
    with pytest.raises(InvalidKeyError):
        s.delete_resources_by_prefix("Sess/ion", "a")


def test_prefix_delete_rolls_back_with_its_transaction(s: Store) -> None:
    s.save_resource("Session", "p1", sess("x"))
    with pytest.raises(RuntimeError), s.transaction() as t:
        t.delete_resources_by_prefix("Session", "p")
        raise RuntimeError
    assert s.find_ids("Session", "agent", "x") == ["p1"]


# -- transactions, readers, other entry points ------------------------------------------


def test_transaction_reads_see_own_writes(s: Store) -> None:
    with s.transaction() as t:
        t.save_resource("Session", "s1", sess("a", slug="u"))
        assert t.find_ids("Session", "agent", "a") == ["s1"]
        assert t.find_one("Session", "slug", "u", Session).agent_id == "a"
        assert t.count_index("Session", "agent", "a") == 1
        assert t.find("Session", "agent", "a", Session)[0].agent_id == "a"
        assert [i.name for i in t.indexes("Session")] == ["agent", "ctx", "execs", "slug"]
        with pytest.raises(TransactionError):  # the store is this thread's t until it ends
            s.find_ids("Session", "agent", "a")
    assert s.find_ids("Session", "agent", "a") == ["s1"]


def test_rolled_back_create_index_leaves_nothing(store: Store) -> None:
    store.save_resource("Session", "s1", sess("a"))
    with pytest.raises(RuntimeError), store.transaction() as t:
        t.save_resource("Session", "s2", sess("a"))
        raise RuntimeError
    store.create_index("Session", "agent", field="agent_id", msg_type=Session)
    assert store.find_ids("Session", "agent", "a") == ["s1"]


def test_load_path_and_update_keep_indexes(s: Store) -> None:
    s._put_raw("Session", "raw", sess("a").SerializeToString(), 5)
    assert s.find_ids("Session", "agent", "a") == ["raw"]
    s._put_raw("Session", "junk", b"\xff\xff\xff", 5)  # does not parse: no entries
    s.update_resource("Session", "raw", Session, lambda m: setattr(m, "agent_id", "b"))
    assert s.find_ids("Session", "agent", "b") == ["raw"]
    s.delete_resource("Session", "junk")
    assert consistent(s) == []


def test_durable_store_group_commit_paths(store_path: Path) -> None:
    with Store(store_path) as st:  # sync=True: saves go through group commit
        st.create_index("Session", "slug", field="metadata.slug", msg_type=Session, unique=True)
        st.save_resource("Session", "a", sess(slug="v"))
        with pytest.raises(UniqueViolationError):
            st.save_resource("Session", "b", sess(slug="v"))
        assert st.delete_resource("Session", "a")
        st.save_resource("Session", "b", sess(slug="v"))
        assert st.find_ids("Session", "slug", "v") == ["b"]


def test_map_growth_replay_keeps_indexes(tmp_path: Path) -> None:
    with Store(tmp_path / "s", sync=False, map_size=1 << 20) as st:
        st.create_index("Session", "agent", field="agent_id", msg_type=Session)
        st.create_index("Session", "execs", field="execution_ids", msg_type=Session)
        with st.transaction() as t:
            for i in range(3000):
                t.save_resource("Session", f"s{i:05d}",
                                sess(f"a{i % 7}", tuple(f"e{j}" for j in range(i % 5)),
                                     slug="y" * 300))
            t.append_events("grow", [(i + 1, Session(subject="z" * 500)) for i in range(300)])
            t.delete_resources_by_prefix("Session", "s000")
            n = t.create_index("Session", "late", field="metadata.slug", msg_type=Session)
            assert n == 2900
            t.drop_index("Session", "execs")
            for i in range(3000, 3500):
                t.save_resource("Session", f"s{i:05d}", sess("a3", slug="z" * 400))
        assert st.count("Session") == 3400
        assert st.count_index("Session", "agent", "a3") == 500 + len(
            [i for i in range(100, 3000) if i % 7 == 3])
        assert st.count_index("Session", "late", "z" * 400) == 500
        assert [i.name for i in st.indexes()] == ["agent", "late"]
        assert len(st.read_events("grow")) == 300
        assert consistent(st) == []


def test_readonly_store_refuses_index_writes(store_path: Path) -> None:
    with Store(store_path, sync=False) as st:
        st.save_resource("Session", "s", sess("a"))
    with Store(store_path, readonly=True) as ro:
        with pytest.raises(pystore.ReadOnlyError):
            ro.create_index("Session", "agent", field="agent_id", msg_type=Session)
        with pytest.raises(NotFoundError):
            ro.find_ids("Session", "agent", "a")
        assert ro.indexes() == []


def test_store_written_before_indexes_existed(tmp_path: Path) -> None:
    """A format-1 store from before this change opens and gets indexes."""
    import shutil

    fixture = Path(__file__).parent / "fixtures" / "format1" / "data.mdb"
    dest = tmp_path / "old"
    dest.mkdir()
    shutil.copy(fixture, dest / "data.mdb")
    with Store(dest, sync=False) as st:  # the upgrade to format 2 adds the databases
        assert st.indexes() == [] and st.streams() == []
        kind = st.kinds()[0]
        n = st.count(kind)
        st.create_index(kind, "i", field="metadata.id", msg_type=Agent)
        assert st.count(kind) == n
        assert consistent(st) == []


def test_async_store_has_the_query_methods(store_path: Path) -> None:
    import asyncio

    from pystore.aio import AsyncStore

    async def main() -> None:
        async with await AsyncStore.open(store_path) as a:
            assert await a.create_index("Session", "agent", field="agent_id",
                                        msg_type=Session) == 0
            await a.save_resource("Session", "s1", sess("x"))
            await a.save_resource("Session", "s2", sess("x"))
            assert await a.find_ids("Session", "agent", "x") == ["s1", "s2"]
            assert (await a.find("Session", "agent", "x", Session, after="s1"))[0] == sess("x")
            assert (await a.find_one("Session", "agent", "x", Session)).agent_id == "x"
            assert await a.count_index("Session", "agent", "x") == 2
            assert [i.name for i in await a.indexes()] == ["agent"]
            assert await a.delete_resources_by_prefix("Session", "s2") == 1
            assert await a.append_events("st", [(2, sess()), (1, sess())]) == 2
            assert await a.append_event("st", sess()) == 3
            assert [e.seq for e in await a.read_events("st", after=1)] == [2, 3]
            assert await a.last_seq("st") == 3 and await a.streams() == ["st"]
            assert await a.delete_events("st", upto=2) == 2
            await a.drop_index("Session", "agent")
            assert await a.indexes() == []

    asyncio.run(main())


def test_same_payload_saved_again_keeps_entries(tmp_path: Path) -> None:
    """Saving the stored message again (the upkeep's shortcut: same bytes,
    same entries) keeps every entry, a unique one included; a change after
    it still moves them."""
    from pystore.samples.agent_pb2 import Agent

    with Store(str(tmp_path / "s"), sync=False) as st:
        st.create_index("Agent", "slug", field="metadata.slug", msg_type=Agent, unique=True)
        st.create_index("Agent", "model", field="model", msg_type=Agent)
        a = Agent(model="m1")
        a.metadata.slug = "one"
        for _ in range(3):
            st.save_resource("Agent", "a", a)
        assert st.find_ids("Agent", "slug", "one") == ["a"]
        assert st.find_ids("Agent", "model", "m1") == ["a"]
        a.model = "m2"
        st.save_resource("Agent", "a", a)
        assert st.find_ids("Agent", "model", "m1") == []
        assert st.find_ids("Agent", "model", "m2") == ["a"]
        assert st.find_ids("Agent", "slug", "one") == ["a"]
