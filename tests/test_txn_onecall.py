"""Writes inside ``transaction()`` through one C call each (``_lmdb/txnwrite.py``).

The one-call route must be indistinguishable from the general path it
replaces: a hypothesis state machine runs the same operations on two stores,
one whose transactions take the one-call route and one whose transactions
take the general path (``ResourceOps``, the reference), and requires equal
results, equal exceptions (type and message), equal records (bytes and
revisions), equal history and equal change logs.  Growth of a tiny map
inside one transaction is test_tiny_map_grows_inside_one_txn.
"""

from __future__ import annotations

import gc
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import pystore
from pystore import Store, Transaction, TransactionError
from pystore.samples.agent_pb2 import Agent
from pystore.samples.common_pb2 import ResourceMetadata
from pystore.samples.workflow_pb2 import Workflow

# A: plain; U: a unique index on metadata.slug; H: history kept (2 versions).
KINDS = st.sampled_from(["A", "U", "H", "New"])
BAD_KINDS = st.sampled_from(["", "A/B", "A\0"])
IDS = st.sampled_from(["1", "2", "3", "é", "x" * 40])
BAD_IDS = st.sampled_from(["", "a\0b", "i" * 600])
AGENTS = st.builds(
    Agent,
    metadata=st.builds(
        ResourceMetadata,
        slug=st.sampled_from(["", "s1", "s2"]),
        org_id=st.sampled_from(["", "org"]),  # stripped
        project_id=st.sampled_from(["", "p"]),
    ),
    model=st.text(max_size=8),
    instructions=st.one_of(st.just(""), st.just("L" * 4_000)),
)
MSGS = st.one_of(AGENTS, AGENTS, AGENTS, st.just(Workflow(description="w")))
REVS = st.one_of(st.none(), st.integers(0, 30))


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except pystore.StoreError as exc:
        return type(exc).__name__, str(exc)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)


def general(t: Transaction) -> Transaction:
    """``t`` entered, with the one-call route switched off (the reference)."""
    t.__enter__()
    t._slot = None
    return t


def state(view: Any) -> dict[str, list[tuple[str, bytes, int]]]:
    out = {}
    for kind in ("A", "U", "H", "New"):
        out[kind] = [(r.id, r.data, r.revision) for r in view.iter_resources(kind)]
    return out


class TxnMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="pystore-txn1-")
        self.stores: list[Store] = []
        for name in ("fast", "general"):
            s = Store(f"{self.dir}/{name}", sync=False, map_size=1 << 20)
            s.create_index("U", "slug", field="metadata.slug", msg_type=Agent, unique=True)
            s.set_history("H", 2)
            for kind in ("A", "U", "H"):
                s.save_resource(kind, "seed", Agent(model="seed"))
            self.stores.append(s)
        self.stores[1]._fw = None  # its plain writes take the general path too
        self.txns: list[Transaction] | None = None

    def teardown(self) -> None:
        if self.txns is not None:
            for t in self.txns:
                t.__exit__(RuntimeError, RuntimeError("teardown"), None)  # rolls back
        for s in self.stores:
            s.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def views(self) -> list[Any]:
        return list(self.txns) if self.txns is not None else list(self.stores)

    def same(self, call: Callable[[Any], Any]) -> None:
        got = [outcome(lambda v=v: call(v)) for v in self.views()]
        assert got[0] == got[1]

    # -- transactions ---------------------------------------------------------

    @precondition(lambda self: self.txns is None)
    @rule()
    def begin(self) -> None:
        fast = self.stores[0].transaction()
        fast.__enter__()
        assert fast._slot is not None
        self.txns = [fast, general(self.stores[1].transaction())]

    @precondition(lambda self: self.txns is not None)
    @rule(commit=st.booleans())
    def end(self, commit: bool) -> None:
        assert self.txns is not None
        txns, self.txns = self.txns, None
        ends = []
        for t in txns:
            if commit:  # a txn spoiled by an earlier error raises here
                ends.append(outcome(lambda t=t: t.__exit__(None, None, None)))
            else:
                ends.append(outcome(lambda t=t: t.__exit__(RuntimeError, None, None)))
        assert ends[0] == ends[1]
        assert txns[0].revision == txns[1].revision

    # -- writes -------------------------------------------------------------

    @rule(kind=KINDS, id=IDS, msg=MSGS, rev=REVS)
    def save(self, kind: str, id: str, msg: Any, rev: int | None) -> None:
        self.same(lambda v: v.save_resource(kind, id, msg, if_revision=rev))

    @rule(kind=KINDS, id=IDS, msg=MSGS)
    def create(self, kind: str, id: str, msg: Any) -> None:
        self.same(lambda v: v.create_resource(kind, id, msg))

    @rule(kind=KINDS, id=IDS, rev=REVS)
    def delete(self, kind: str, id: str, rev: int | None) -> None:
        self.same(lambda v: v.delete_resource(kind, id, if_revision=rev))

    @rule(kind=KINDS, items=st.lists(st.tuples(IDS, AGENTS), max_size=5),
          as_tuple=st.booleans())
    def save_many(self, kind: str, items: list[tuple[str, Agent]], as_tuple: bool) -> None:
        self.same(lambda v: v.save_resources(kind, tuple(items) if as_tuple else items))

    @rule(kind=KINDS, id=IDS, model=st.text(max_size=5))
    def update(self, kind: str, id: str, model: str) -> None:
        def fn(m: Agent) -> None:
            m.model = model

        self.same(lambda v: v.update_resource(kind, id, Agent, fn, create=True))

    @rule(kind=BAD_KINDS, id=IDS, msg=AGENTS)
    def bad_kind(self, kind: str, id: str, msg: Agent) -> None:
        self.same(lambda v: v.save_resource(kind, id, msg))
        self.same(lambda v: v.create_resource(kind, id, msg))
        self.same(lambda v: v.delete_resource(kind, id))
        self.same(lambda v: v.save_resources(kind, [(id, msg)]))

    @rule(kind=KINDS, id=BAD_IDS, msg=AGENTS)
    def bad_id(self, kind: str, id: str, msg: Agent) -> None:
        self.same(lambda v: v.save_resource(kind, id, msg))
        self.same(lambda v: v.create_resource(kind, id, msg))
        self.same(lambda v: v.delete_resource(kind, id))
        self.same(lambda v: v.save_resources(kind, [("ok", msg), (id, msg)]))

    @rule(kind=KINDS, id=IDS, bad=st.sampled_from([None, 5, b"A", object()]))
    def bad_types(self, kind: str, id: str, bad: Any) -> None:
        self.same(lambda v: v.save_resource(kind, id, bad))
        self.same(lambda v: v.save_resource(bad, id, Agent()))
        self.same(lambda v: v.delete_resource(kind, bad))
        self.same(lambda v: v.save_resource(kind, id, Agent(), if_revision=-1))
        self.same(lambda v: v.save_resources(kind, [(id, Agent()), bad]))

    # -- reads --------------------------------------------------------------

    @rule(kind=KINDS, id=IDS)
    def get(self, kind: str, id: str) -> None:
        self.same(lambda v: v.get_bytes(kind, id))
        self.same(lambda v: v.get_record(kind, id).revision)
        self.same(lambda v: [(r.data, r.revision) for r in v.history(kind, id)])

    @invariant()
    def equal(self) -> None:
        a, b = (outcome(lambda v=v: state(v)) for v in self.views())
        assert a == b  # a spoiled txn raises the same error in both
        if self.txns is None:
            ca, cb = ([(c.revision, c.kind, c.id, c.op) for c in s.changes()]
                      for s in self.stores)
            assert ca == cb


TxnMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestTxnMachine = TxnMachine.TestCase


# -- targeted cases ------------------------------------------------------------


def test_one_call_route_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the kind's schema is known, saves, creates, deletes and batches
    inside a transaction are one C call each (the general put is not used)."""
    s = Store(tmp_path / "s", sync=False)
    s.save_resource("A", "seed", Agent())

    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError("general path taken")

    with s.transaction() as t:
        monkeypatch.setattr(pystore._ops.ResourceOps, "_put", refuse)
        monkeypatch.setattr(pystore._lmdb.core.CTxn, "delete", refuse)
        monkeypatch.setattr(pystore._ops, "put_many", refuse)
        assert t.save_resource("A", "a", Agent(model="1")) == t.create_resource(
            "A", "b", Agent(model="2"))
        assert t.save_resources("A", [("c", Agent()), ("d", Agent())]) == 2
        assert t.delete_resource("A", "b") is True
        assert t.delete_resource("A", "b") is False
        monkeypatch.undo()
    assert s.count("A") == 4
    s.close()


def test_first_save_of_a_kind_in_a_txn_records_its_schema(tmp_path: Path) -> None:
    s = Store(tmp_path / "s", sync=False)
    with s.transaction() as t:
        t.save_resource("New", "a", Agent(model="x"))  # general: records the schema
        t.save_resource("New", "b", Agent(model="y"))  # one call: known in this txn
        t.save_resource("New", "c", Workflow())  # another type: the general path decides
    assert s._schemas.known["New"] is Workflow.DESCRIPTOR
    s.close()
    s = Store(tmp_path / "s", sync=False)
    with pytest.raises(pystore.InvalidMessageError):
        s.get_resource("New", "a", Agent)  # the kind's recorded type is Workflow now
    assert s.get_bytes("New", "b") == Agent(model="y").SerializeToString()
    s.close()


def test_rolled_back_first_save_leaves_no_schema(tmp_path: Path) -> None:
    s = Store(tmp_path / "s", sync=False)
    with pytest.raises(RuntimeError), s.transaction() as t:
        t.save_resource("Gone", "a", Agent())
        t.save_resource("Gone", "b", Agent())
        raise RuntimeError("rollback")
    assert s.kinds() == []
    assert "Gone" not in s._schemas.known
    s.save_resource("Gone", "c", Agent())  # recorded now, by this save
    assert s._schemas.known["Gone"] is Agent.DESCRIPTOR
    s.close()


def test_strips_tenancy_fields(tmp_path: Path) -> None:
    s = Store(tmp_path / "s", sync=False)
    s.save_resource("A", "seed", Agent())
    msg = Agent(metadata=ResourceMetadata(slug="k", org_id="o", project_id="p"), model="m")
    with s.transaction() as t:
        t.save_resource("A", "a", msg)
        t.save_resources("A", [("b", msg)])
        got = t.get_resource("A", "a", Agent)
        assert (got.metadata.org_id, got.metadata.project_id, got.metadata.slug) == ("", "", "k")
    assert msg.metadata.org_id == "o"  # the caller's message is left alone
    for id in ("a", "b"):
        got = s.get_resource("A", id, Agent)
        assert (got.metadata.org_id, got.model) == ("", "m")
    s.close()


def test_unique_violation_names_the_holder(tmp_path: Path) -> None:
    s = Store(tmp_path / "s", sync=False)
    s.create_index("U", "slug", field="metadata.slug", msg_type=Agent, unique=True)
    s.save_resource("U", "holder", Agent(metadata=ResourceMetadata(slug="x")))
    with s.transaction() as t:
        with pytest.raises(pystore.UniqueViolationError) as ei:
            t.save_resource("U", "other", Agent(metadata=ResourceMetadata(slug="x")))
        assert ei.value.holder == "holder"
        t.save_resource("U", "other", Agent(metadata=ResourceMetadata(slug="y")))  # goes on
        with pytest.raises(pystore.UniqueViolationError, match="held by U/other"):
            t.save_resources("U", [("third", Agent(metadata=ResourceMetadata(slug="y")))])
    assert s.count("U") == 2
    s.close()


def test_conditional_writes_in_a_txn(tmp_path: Path) -> None:
    s = Store(tmp_path / "s", sync=False)
    r1 = s.save_resource("A", "a", Agent())
    with s.transaction() as t:
        with pytest.raises(pystore.ConflictError) as ei:
            t.save_resource("A", "a", Agent(model="x"), if_revision=r1 + 5)
        assert (ei.value.expected, ei.value.actual) == (r1 + 5, r1)
        with pytest.raises(pystore.AlreadyExistsError, match="already exists: A/a"):
            t.create_resource("A", "a", Agent())
        r2 = t.save_resource("A", "a", Agent(model="y"), if_revision=r1)
        assert r2 == r1 + 1
        assert t.get_record("A", "a").revision == r2
        # the record now carries this txn's revision
        assert t.save_resource("A", "a", Agent(model="z"), if_revision=r2) == r2
        with pytest.raises(pystore.ConflictError):
            t.delete_resource("A", "a", if_revision=r1)
        assert t.delete_resource("A", "a", if_revision=r2) is True
    assert t.revision == r2
    with pytest.raises(pystore.NotFoundError):
        s.get_record("A", "a")
    s.close()


def test_bad_messages_and_keys_inside(tmp_path: Path) -> None:
    s = Store(tmp_path / "s", sync=False)
    s.save_resource("A", "seed", Agent())
    with s.transaction() as t:
        with pytest.raises(TypeError, match="protobuf message"):
            t.save_resource("A", "x", "not a message")  # type: ignore[arg-type]
        with pytest.raises(pystore.InvalidKeyError):
            t.create_resource("A", "a\0b", Agent())
        t.save_resource("A", "fine", Agent())
    assert sorted(r.id for r in s.iter_resources("A")) == ["fine", "seed"]
    s.close()


def test_other_thread_and_finished_txn_raise_as_before(tmp_path: Path) -> None:
    s = Store(tmp_path / "s", sync=False)
    s.save_resource("A", "seed", Agent())
    calls: list[Callable[[Transaction], object]] = [
        lambda t: t.save_resource("A", "x", Agent()),
        lambda t: t.create_resource("A", "x", Agent()),
        lambda t: t.delete_resource("A", "seed"),
        lambda t: t.save_resources("A", [("x", Agent())]),
    ]
    t = s.transaction()
    for call in calls:
        with pytest.raises(TransactionError, match="use the transaction in a with block"):
            call(t)
    with t:
        for call in calls:
            errors: list[BaseException] = []

            def run(
                call: Callable[[Transaction], object] = call,
                errors: list[BaseException] = errors,
            ) -> None:
                try:
                    call(t)
                except BaseException as exc:
                    errors.append(exc)

            th = threading.Thread(target=run)
            th.start()
            th.join()
            assert len(errors) == 1 and isinstance(errors[0], TransactionError)
            assert "used by the thread that began it" in str(errors[0])
    for call in calls:
        with pytest.raises(TransactionError, match="transaction is finished"):
            call(t)
    assert [r.id for r in s.iter_resources("A")] == ["seed"]
    s.close()


def test_tiny_map_grows_inside_one_txn(tmp_path: Path) -> None:
    """3,000 saves (~3.5 MB) in one transaction of a 1 MiB map: the map grows
    and the core replays the log, from the serialized bytes the transaction
    keeps (the messages are gone by then) and its own copies of the batch's."""
    s = Store(tmp_path / "s", sync=False, map_size=1 << 20)
    s.save_resource("A", "seed", Agent())
    with s.transaction() as t:
        for i in range(3000):
            t.save_resource("A", f"r{i:05d}", Agent(instructions=f"{i}:" + "y" * 1100))
            if i % 500 == 0:
                gc.collect()
        t.save_resources("A", [(f"b{i:04d}", Agent(model=str(i))) for i in range(500)])
        gc.collect()
        assert t.count("A") == 3501
    rev = t.revision
    assert s.count("A") == 3501
    for i in (0, 1234, 2999):
        got = s.get_record("A", f"r{i:05d}")
        assert Agent.FromString(got.data).instructions == f"{i}:" + "y" * 1100
        assert got.revision == rev
    assert s.get_resource("A", "b0499", Agent).model == "499"
    s.close()


def test_replay_strips_the_borrowed_payloads_again(tmp_path: Path) -> None:
    """A Transaction's one-call saves do not copy their payloads into the
    txn's log: the log borrows the serialized bytes (the Transaction keeps
    them) and a replay after map growth strips them again.  Messages that
    carry tenancy fields, saved, created and conditionally saved in one
    transaction of a 1 MiB map, come back stripped and whole after it grew
    (during the saves and at the commit)."""
    s = Store(tmp_path / "s", sync=False, map_size=1 << 20)
    s.save_resource("A", "seed", Agent())

    def agent(i: int) -> Agent:
        return Agent(
            instructions=f"{i}:" + "z" * 1100,
            metadata=ResourceMetadata(id=f"r{i}", org_id="org", project_id="proj", slug=f"s{i}"),
        )

    def stored(i: int) -> Agent:
        want = agent(i)
        want.metadata.ClearField("org_id")
        want.metadata.ClearField("project_id")
        return want

    with s.transaction() as t:
        rev0 = t.save_resource("A", "seed", Agent(model="x"))
        for i in range(2500):
            if i % 3 == 0:
                t.create_resource("A", f"r{i:05d}", agent(i))
            else:
                t.save_resource("A", f"r{i:05d}", agent(i))
            if i % 500 == 0:
                gc.collect()
        t.save_resource("A", "seed", Agent(model="y"), if_revision=rev0)
    assert s.stats().map_size > 1 << 20  # it grew: the log was replayed
    assert s.count("A") == 2501
    for r in s.iter_resources("A", Agent):
        if r.id == "seed":
            assert r.message == Agent(model="y")
        else:
            assert r.message == stored(int(r.id[1:])), r.id
            assert b"org" not in r.data and b"proj" not in r.data
    s.close()


def test_failed_write_spoils_the_txn_as_before(tmp_path: Path) -> None:
    """An error that leaves LMDB's txn unusable (here: the store's disk is
    not involved; a batch failing after its first put) makes the rest of the
    transaction fail, and its exit raises, as on the general path."""
    s = Store(tmp_path / "s", sync=False)
    s.create_index("U", "slug", field="metadata.slug", msg_type=Agent, unique=True)
    s.save_resource("U", "h", Agent(metadata=ResourceMetadata(slug="v")))
    with pytest.raises(pystore.StoreError), s.transaction() as t:
        with pytest.raises(pystore.UniqueViolationError):
            t.save_resources("U", [("a", Agent()), ("b", Agent(metadata=ResourceMetadata(
                slug="v")))])
        t.save_resource("U", "c", Agent())
    assert [r.id for r in s.iter_resources("U")] == ["h"]
    s.close()


def test_a_compiled_plan_stays_owned_when_two_threads_compile_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads meeting a message type for the first time at once each
    compile its strip plan.  The plan each one then hands to the core (and a
    one-call batch's log keeps until the txn ends) must be the one
    the Stripper's cache holds: a second compile replacing the cached one
    left the first thread's plan owned by nothing (its table freed while
    the log still pointed at it)."""
    from pystore._lmdb import hygiene

    s = Store(tmp_path / "s", sync=False)
    stripper = s._stripper
    compile_plan = hygiene.compile_plan
    meet = threading.Barrier(2, timeout=10)

    def both_compile(*a: Any) -> list[int]:  # both threads inside the compile
        meet.wait()
        return compile_plan(*a)

    monkeypatch.setattr(hygiene, "compile_plan", both_compile)
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(stripper.fw_entry(Agent)))
               for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert len(got) == 2 and got[0] is got[1] is stripper.fw_plans[Agent]
    wire = stripper.wire_plan(Agent.DESCRIPTOR)
    assert wire is not None and got[0][1] is wire.fw
    s.close()


def test_one_call_saves_mixed_with_every_other_write_survive_replays(tmp_path: Path) -> None:
    """One transaction of a 1 MiB map mixes the one-call saves (their
    payloads copied into the log's kept chunks) with writes of every other
    route -- batches (copied), general-path saves (a kind whose schema is
    new), update_resource, deletes, events, prefix deletes -- over indexed,
    history-keeping kinds;
    the map grows (the log is replayed mid-transaction and at the commit),
    the serialized messages are dropped by the caller and collected.  The
    result must be what a model says, every record stripped."""
    s = Store(tmp_path / "s", sync=False, map_size=1 << 20)
    s.create_index("U", "slug", field="metadata.slug", msg_type=Agent, unique=True)
    s.set_history("U", 2)
    s.save_resource("U", "seed", Agent(model="0"))
    pad = "q" * 900

    def msg(i: int, tag: str) -> Agent:
        return Agent(model=f"{tag}{i}", instructions=pad, metadata=ResourceMetadata(
            slug=f"{tag}{i}", org_id="org", project_id="proj"))

    want: dict[tuple[str, str], str] = {("U", "seed"): "0"}
    with s.transaction() as t:
        for i in range(1200):
            k = i % 6
            if k == 0:
                t.save_resource("U", f"k{i}", msg(i, "k"))
                want["U", f"k{i}"] = f"k{i}"
            elif k == 1:
                t.create_resource("New", f"n{i}", msg(i, "n"))  # general first, then one call
                want["New", f"n{i}"] = f"n{i}"
            elif k == 2:
                t.save_resources("U", [(f"b{i}", msg(i, "b")), (f"c{i}", msg(i, "c"))])
                want["U", f"b{i}"], want["U", f"c{i}"] = f"b{i}", f"c{i}"
            elif k == 3:
                t.update_resource("U", f"k{i - 3}", Agent, lambda m: setattr(m, "model", "u"))
                want["U", f"k{i - 3}"] = "u"
            elif k == 4:
                assert t.delete_resource("U", f"b{i - 2}")
                del want["U", f"b{i - 2}"]
                t.append_event("log", msg(i, "e"))
            else:
                rev = t.get_record("U", f"c{i - 3}").revision
                t.save_resource("U", f"c{i - 3}", msg(i, "r"), if_revision=rev)
                want["U", f"c{i - 3}"] = f"r{i}"
            if i % 200 == 0:
                gc.collect()
        t.delete_resources_by_prefix("New", "n11")
        for key in [k for k in want if k[0] == "New" and k[1].startswith("n11")]:
            del want[key]
    assert s.stats().map_size > 1 << 20  # it grew: the log was replayed
    got = {(kind, r.id): r.message.model for kind in ("U", "New")
           for r in s.iter_resources(kind, Agent)}
    assert got == want
    for kind in ("U", "New"):
        for r in s.iter_resources(kind):
            assert b"org" not in r.data and b"proj" not in r.data, r.id
    assert s.find_ids("U", "slug", "k6") == ["k6"]
    assert len(list(s.read_events("log", Agent))) == 200
    s.close()
