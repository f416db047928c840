"""One-call reads (issue 12): each thread's read context, its buffers, and the
cases that leave the fast path (pystore/_lmdb/reads.py, csrc/ps_fastread.c)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pystore
from pystore import (
    ForkedError,
    NotFoundError,
    Store,
    StoreClosedError,
    TransactionError,
)
from pystore._lmdb import reads
from pystore.samples.agent_pb2 import Agent


def _payload(id: str, version: int, size: int = 300) -> bytes:
    return Agent(model=f"{id}:{version}", instructions="x" * size).SerializeToString()


def _check(data: bytes, id: str) -> int:
    """The version a payload written by _payload for ``id`` carries."""
    model = Agent.FromString(data).model
    got_id, version = model.rsplit(":", 1)
    assert got_id == id
    return int(version)


def test_each_thread_reads_with_its_own_context_while_the_map_grows(tmp_path: Path) -> None:
    # A 1 MiB map: the writer's ~3 MB of new records make it grow
    # while 4 readers get, list and iterate with their own buffers.
    s = Store(tmp_path / "s", sync=False, map_size=1 << 20)
    ids = [f"r{i:03d}" for i in range(40)]
    s.save_resources("R", [(i, Agent.FromString(_payload(i, 0))) for i in ids])
    info0 = s.stats().map_size
    stop = threading.Event()
    errors: list[BaseException] = []
    contexts: list[object] = []

    def reader(n: int) -> None:
        try:
            k = 0
            while not stop.is_set():
                i = ids[(k * 7 + n) % len(ids)]
                _check(s.get_bytes("R", i), i)
                rec = s.get_record("R", i)
                assert rec.revision >= 1 and _check(rec.data, i) >= 0
                _check(s.get_resource("R", i, Agent).SerializeToString(), i)
                if k % 10 == 0:
                    listed = s.list_resources("R")
                    assert len(listed) == len(ids)
                    for j, data in zip(ids, listed, strict=True):
                        _check(data, j)
                    assert [r.id for r in s.iter_resources("R")] == ids
                k += 1
            contexts.append(s._tls.rd)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        for v in range(1, 30):
            s.save_resources("Bulk", [(f"b{v:03d}-{j}", Agent(instructions="y" * 1000))
                                      for j in range(100)])
            s.save_resources("R", [(i, Agent.FromString(_payload(i, v))) for i in ids[::5]])
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert s.stats().map_size > info0  # it did grow under the readers
    assert len({id(c) for c in contexts}) == 4  # one context per thread
    assert s._tls.rd is None or s._tls.rd not in contexts
    s.close()


@pytest.mark.parametrize("size", [reads.BUF - 100, reads.BUF + 10, 300_000, reads.KEEP + 5000])
def test_records_larger_than_the_thread_buffer(store: Store, size: int) -> None:
    store.save_resource("A", "small", Agent(model="s"))
    store.get_bytes("A", "small")  # the thread's context exists, with its default buffer
    big = Agent(instructions="z" * size)
    store.save_resource("A", "big", big)
    want = big.SerializeToString()
    assert store.get_bytes("A", "big") == want
    assert store.get_resource("A", "big", Agent) == big
    rec = store.get_record("A", "big")
    assert rec.data == want and rec.revision == 2
    assert store.list_resources("A") == [want, Agent(model="s").SerializeToString()]
    assert store.list_resources("A", Agent) == [big, Agent(model="s")]
    small = Agent(model="s").SerializeToString()
    assert [r.data for r in store.iter_resources("A")] == [want, small]
    cap = store._tls.rd.cap
    # Kept only up to KEEP: a larger record is read the general way.
    assert cap <= reads.KEEP
    assert cap >= len(want) or len(want) > reads.KEEP
    assert store.get_bytes("A", "small") == Agent(model="s").SerializeToString()


def test_close_from_another_thread_while_threads_read(store_path: Path) -> None:
    s = Store(store_path, sync=False)
    s.save_resources("A", [(f"a{i}", Agent(model=str(i))) for i in range(300)])
    started = threading.Barrier(5)
    outcome: list[str] = []

    def reader(n: int) -> None:
        started.wait()
        try:
            while True:
                s.get_bytes("A", f"a{n}")
                s.get_record("A", f"a{n}")
                s.list_resources("A")
                for _ in s.iter_resources("A", limit=600):
                    pass
        except StoreClosedError:
            outcome.append("closed")
        except BaseException as exc:
            outcome.append(repr(exc))

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(0.2)
    t0 = time.monotonic()
    s.close()
    for t in threads:
        t.join(30)
    assert time.monotonic() - t0 < 30
    assert outcome == ["closed"] * 4


def test_a_paused_iteration_holds_no_read_txn(store: Store) -> None:
    store.save_resources("A", [(f"a{i:04d}", Agent()) for i in range(1500)])
    it = store.iter_resources("A")
    assert next(it).id == "a0000"
    closer = threading.Thread(target=store.close)
    closer.start()
    closer.join(10)
    assert not closer.is_alive()  # close waits for live txns: there is none
    with pytest.raises(StoreClosedError):
        list(it)  # the next page needs the store


def test_fast_reads_inside_a_transaction_and_after_it(store: Store) -> None:
    store.save_resource("A", "x", Agent(model="1"))
    assert store.get_bytes("A", "x")  # the context exists
    with store.transaction() as t:
        t.save_resource("A", "x", Agent(model="2"))
        t.save_resource("A", "y", Agent(model="3"))
        assert t.get_resource("A", "x", Agent).model == "2"  # own writes
        assert len(t.list_resources("A")) == 2
        with pytest.raises(TransactionError):
            store.get_bytes("A", "x")
        with pytest.raises(TransactionError):
            store.list_resources("A")
        with pytest.raises(TransactionError):
            store.get_resource("A", "x", Agent)
    assert store.get_resource("A", "x", Agent).model == "2"
    assert [r.id for r in store.iter_resources("A")] == ["x", "y"]


def count_general_reads(monkeypatch: pytest.MonkeyPatch, *names: str) -> list[str]:
    """The names of the general (ResourceOps) read methods called from now
    on, in order: the fast path declined those calls."""
    from pystore._ops import ResourceOps

    general: list[str] = []
    for name in names:
        real = getattr(ResourceOps, name)

        def counting(*args: object, _real: object = real, _name: str = name) -> object:
            general.append(_name)
            return _real(*args)  # type: ignore[operator]

        monkeypatch.setattr(ResourceOps, name, counting)
    return general


def test_fast_gets_stop_for_a_transaction_or_callback_and_resume_after(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gets' one thread-state read (``fast``) follows every way a thread
    enters and leaves a transaction: off inside, on again after."""
    general = count_general_reads(monkeypatch, "get_bytes", "get_resource")
    store.save_resource("A", "x", Agent(model="1"))
    assert store.get_resource("A", "x", Agent).model == "1"  # the type is now checked
    general.clear()

    def fast_reads() -> None:
        assert store._tls.fast is store._tls.rd is not None  # on again at once
        assert store.get_bytes("A", "x") == Agent(model="1").SerializeToString()
        assert store.get_resource("A", "x", Agent).model == "1"
        assert general == [], general

    fast_reads()
    with store.transaction():
        with pytest.raises(TransactionError):
            store.get_bytes("A", "x")
        with pytest.raises(TransactionError):
            store.get_resource("A", "x", Agent)
    assert general == ["get_bytes", "get_resource"]
    general.clear()
    fast_reads()
    with pytest.raises(ZeroDivisionError), store.transaction() as t:  # rolled back
        t.save_resource("A", "x", Agent(model="2"))
        1 / 0  # noqa: B018
    fast_reads()

    def inside(m: Agent) -> None:
        with pytest.raises(TransactionError):
            store.get_bytes("A", "x")
        m.model = "1"

    store.update_resource("A", "x", Agent, inside)
    assert general == ["get_bytes"]
    general.clear()
    fast_reads()
    t2 = store.transaction()
    t2.__enter__()
    t2.__exit__(None, None, None)
    fast_reads()


def test_bad_keys_and_missing_records_keep_their_errors(store: Store) -> None:
    store.save_resource("A", "x", Agent())
    assert store.get_bytes("A", "x") == b""
    with pytest.raises(NotFoundError, match="A/nope"):
        store.get_bytes("A", "nope")
    with pytest.raises(pystore.InvalidKeyError):
        store.get_bytes("A", "")
    with pytest.raises(pystore.InvalidKeyError):
        store.get_bytes("A", "a\0b")
    with pytest.raises(pystore.InvalidKeyError):
        store.get_bytes("A/B", "x")
    with pytest.raises(pystore.InvalidKeyError):
        store.get_bytes("A", "x" * 600)
    with pytest.raises(pystore.InvalidKeyError):
        store.get_bytes("A", "\udc80")
    with pytest.raises(TypeError):
        store.get_bytes("A", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.get_bytes(["A"], "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.list_resources(b"A")  # type: ignore[arg-type]


def test_signed_stamps_and_revisions_through_iter_and_get(store: Store) -> None:
    store._put_raw("A", "neg", b"\x08\x01", -5_000)
    store._put_raw("A", "pos", b"", 2**62)
    got = {r.id: (r.updated_ns, r.revision, r.data) for r in store.iter_resources("A")}
    assert got == {"neg": (-5_000, 1, b"\x08\x01"), "pos": (2**62, 2, b"")}
    rec = store.get_record("A", "neg")
    assert (rec.updated_ns, rec.revision) == (-5_000, 1)
    # Distinct stamps, within a second and across seconds: the same datetimes.
    for i, ns in enumerate([10**18 + 1, 10**18 + 999_999_999, 10**18 + 10**9, -(10**15) + 7]):
        store._put_raw("B", f"b{i}", b"", ns)
    for r in store.iter_resources("B"):
        assert r.updated_at == store.get_record("B", r.id).updated_at
        assert r.updated_at == pystore.records.ns_to_datetime(r.updated_ns)


def test_fork_after_reads_gives_forked_error_in_the_child(store_path: Path) -> None:
    code = f"""
import os, sys
import pystore
from pystore.samples.agent_pb2 import Agent
s = pystore.Store({str(store_path)!r}, sync=False)
s.save_resource("A", "x", Agent(model="m"))
assert s.get_bytes("A", "x") and s.list_resources("A")  # contexts exist before fork
pid = os.fork()
if pid == 0:
    out = []
    for call in (lambda: s.get_bytes("A", "x"), lambda: s.list_resources("A"),
                 lambda: list(s.iter_resources("A")), lambda: s.get_record("A", "x")):
        try:
            call()
            out.append("ok")
        except pystore.ForkedError:
            out.append("forked")
    os.write(1, (" ".join(out) + "\\n").encode())
    os._exit(0)
os.waitpid(pid, 0)
print("parent", s.get_resource("A", "x", Agent).model)
s.close()
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=os.path.dirname(__file__))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["forked forked forked forked", "parent m"]
    assert ForkedError is pystore.ForkedError


_ids = st.sampled_from([f"k{i}" for i in range(12)])
_sizes = st.sampled_from([0, 10, reads.BUF - 30, reads.BUF + 30, reads.KEEP + 100])
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("save"), _ids, _sizes),
        st.tuples(st.just("delete"), _ids, st.just(0)),
    ),
    max_size=25,
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops, after=st.one_of(st.none(), _ids), limit=st.one_of(st.none(), st.integers(0, 13)))
def test_fast_reads_match_a_model(tmp_path: Path, ops: list[tuple[str, str, int]],
                                  after: str | None, limit: int | None) -> None:
    path = tmp_path / f"m{time.monotonic_ns()}"
    with Store(path, sync=False) as s:
        model: dict[str, bytes] = {}
        for n, (op, id, size) in enumerate(ops):
            if op == "save":
                msg = Agent(model=f"{id}:{n}", instructions="q" * size)
                s.save_resource("K", id, msg)
                model[id] = msg.SerializeToString()
            else:
                s.delete_resource("K", id)
                model.pop(id, None)
            for probe in (id, "k0"):
                if probe in model:
                    assert s.get_bytes("K", probe) == model[probe]
                    assert s.get_record("K", probe).data == model[probe]
                    assert s.get_resource("K", probe, Agent).SerializeToString() == model[probe]
                else:
                    with pytest.raises(NotFoundError):
                        s.get_bytes("K", probe)
        keys = sorted(model)
        assert s.list_resources("K") == [model[k] for k in keys]
        assert [m.SerializeToString() for m in s.list_resources("K", Agent)] == [
            model[k] for k in keys]
        want = [k for k in keys if after is None or k > after]
        if limit is not None:
            want = want[:limit]
        got = list(s.iter_resources("K", Agent, after=after, limit=limit))
        assert [r.id for r in got] == want
        assert [r.data for r in got] == [model[k] for k in want]
        assert [r.message.SerializeToString() for r in got] == [model[k] for k in want]


def test_scan_buffers_are_kept_only_up_to_the_limit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reads, "SCAN_KEEP", 50_000)  # for contexts made from now on
    store.save_resources("Big", [(f"b{i:03d}", Agent(instructions="w" * 1000))
                                 for i in range(100)])
    store.save_resources("Small", [(f"s{i}", Agent(model="m")) for i in range(10)])
    seen: dict[str, int] = {}

    def fresh_thread() -> None:  # a new thread: a new context, with the patched limit
        assert len(store.list_resources("Small", Agent)) == 10
        seen["small"] = len(store._tls.rd.wire)
        assert len(store.list_resources("Big", Agent)) == 100  # ~100 KB of wire bytes
        seen["big"] = len(store._tls.rd.wire)
        assert len(store.list_resources("Small", Agent)) == 10  # a buffer again
        seen["again"] = len(store._tls.rd.wire)

    t = threading.Thread(target=fresh_thread)
    t.start()
    t.join(30)
    assert 0 < seen["small"] <= 50_000  # kept
    assert seen["big"] == 0  # grown past the limit: let go
    assert seen["again"] == seen["small"]


def test_parsed_lists_of_kinds_of_other_sizes_and_a_list_in_between(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wire bytes of a parsed list sit in the thread's kept bytearray,
    # cut to each list's length: bigger, smaller and bigger again, and a
    # list made in the middle of another (a signal handler's) gets its own.
    kinds = {"Big": 300, "Mid": 40, "Tiny": 2}
    for kind, n in kinds.items():
        store.save_resources(kind, [
            (f"{kind}{i:03d}", Agent(model=kind, instructions="i" * (i % 50))) for i in range(n)])
    want = {k: [m.SerializeToString() for m in store.list_resources(k, Agent)] for k in kinds}
    for kind in ("Big", "Tiny", "Mid", "Big", "Mid", "Tiny", "Big"):
        got = store.list_resources(kind, Agent)
        assert [m.SerializeToString() for m in got] == want[kind]
        assert len(want[kind]) == kinds[kind] and all(m.model == kind for m in got)
    real = reads._decode
    inner: list[int] = []

    def decode_after_another_list(parser: object, data: object) -> bool:
        if not inner:
            inner.append(0)
            inner[0] = len(store.list_resources("Mid", Agent))
        return real(parser, data)  # type: ignore[arg-type]

    monkeypatch.setattr(reads, "_decode", decode_after_another_list)
    got = store.list_resources("Big", Agent)
    assert inner == [40]
    assert [m.SerializeToString() for m in got] == want["Big"]


def test_iterated_resources_are_plain_frozen_resources(store: Store) -> None:
    from dataclasses import FrozenInstanceError

    from pystore.records import Resource

    store.save_resource("A", "x", Agent(model="m"))
    (r,) = list(store.iter_resources("A", Agent))
    assert reads._TWIN  # the fast construction is in use on this interpreter
    assert type(r) is Resource and r == store.get_record("A", "x")
    assert r.message == Agent(model="m") and r.updated_ns == store.get_record("A", "x").updated_ns
    with pytest.raises(FrozenInstanceError):
        r.id = "y"  # type: ignore[misc]
    assert hash(r) == hash(store.get_record("A", "x"))


def test_close_from_inside_this_threads_held_scan_is_refused(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a signal handler calling close() in the middle of a list would do:
    # close would wait for the scan's read txn, held by this very thread.
    store.save_resources("A", [(f"a{i}", Agent(model=str(i))) for i in range(3)])
    store.get_bytes("A", "a0")  # this thread's context exists
    seen: list[str] = []
    real = reads._buffer

    def buffer_then_close(*args: object) -> object:
        assert store._tls.rd.held  # only the scans call it now
        try:
            store.close()
            seen.append("closed")
        except TransactionError as exc:
            seen.append("refused" if "while this thread is reading" in str(exc) else repr(exc))
        return real(*args)

    monkeypatch.setattr(reads, "_buffer", buffer_then_close)
    assert len(store.list_resources("A")) == 3
    assert [r.id for r in store.iter_resources("A")] == ["a0", "a1", "a2"]
    assert seen == ["refused", "refused"]
    monkeypatch.undo()
    store.close()  # after the read: fine
    assert store.closed


def test_find_one_fast_path_keeps_its_errors(store: Store) -> None:
    store.create_index("A", "slug", field="model", msg_type=Agent, unique=True)
    store.save_resource("A", "x", Agent(model="m1"))
    assert store.find_one("A", "slug", "m1", Agent).model == "m1"
    with pytest.raises(NotFoundError, match="no A with slug = 'zz'"):
        store.find_one("A", "slug", "zz", Agent)
    with pytest.raises(TypeError, match="msg_type"):
        store.find_one("A", "slug", "m1", Agent())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.find_one("A", "slug", 1.5, Agent)
    with pytest.raises(NotFoundError):
        store.find_one("A", "nope", "m1", Agent)  # no such index
    with pytest.raises(NotFoundError):
        store.find_one("A", "slug", "\udc80", Agent)  # no stored value can be this
    big = Agent(model="big", instructions="b" * (reads.BUF + 100))
    store.save_resource("A", "y", big)
    assert store.find_one("A", "slug", "big", Agent) == big  # past the thread's buffer
    with store.transaction() as t:
        t.save_resource("A", "z", Agent(model="m3"))
        assert t.find_one("A", "slug", "m3", Agent).model == "m3"  # its own write
        with pytest.raises(TransactionError):
            store.find_one("A", "slug", "m1", Agent)


def test_a_thread_that_only_parses_or_finds_takes_the_fast_path(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_index("A", "slug", field="model", msg_type=Agent, unique=True)
    store.save_resources("A", [(f"a{i}", Agent(model=f"m{i}")) for i in range(5)])
    general = count_general_reads(monkeypatch, "get_resource", "find_one")
    got: list[str] = []

    def reader() -> None:  # a new thread: no read context yet
        for i in range(5):
            got.append(store.get_resource("A", f"a{i}", Agent).model)
            got.append(store.find_one("A", "slug", f"m{i}", Agent).model)

    t = threading.Thread(target=reader)
    t.start()
    t.join(30)
    assert got == [f"m{i}" for i in range(5) for _ in (0, 1)]
    # At most the first get_resource checks the kind's type the general way.
    assert general in ([], ["get_resource"]), general


def test_iter_stamps_match_ns_to_datetime() -> None:
    import random

    from pystore.records import ns_to_datetime

    rng = random.Random(3)
    stamps = reads._Stamps()
    values = [0, -1, -999, -1000, -1001, 999, 1000, 10**9 - 1, 10**9, -(2**63), 2**63 - 1]
    values += sorted(rng.randrange(-(2**62), 2**62) for _ in range(300))
    values += [1_765_000_000_000_000_000 + rng.randrange(3 * 10**9) for _ in range(300)]
    # records listed in key order alternate between the seconds they were
    # saved in: each second is kept (a cache hit), and the cache is bounded
    base = 1_765_000_000_000_000_000
    values += [base + (i % 3) * 10**9 + i for i in range(60)]
    values += [base + i * 10**9 + 7 for i in range(reads._Stamps.KEEP + 10)]
    values += [base + 5, base + 2 * 10**9 + 5]
    for ns in values:
        assert stamps.at(ns) == ns_to_datetime(ns), ns
        assert stamps.at(ns).tzinfo is ns_to_datetime(ns).tzinfo
    assert len(stamps.known) <= reads._Stamps.KEEP


def test_records_around_the_buffer_sizes_change_under_threads_while_the_map_grows(
    tmp_path: Path,
) -> None:
    """A writer rewrites records between sizes around the thread buffer
    (BUF) and the kept limit (KEEP), in a 1 MiB map that grows meanwhile;
    reader threads get them every way (bytes, parsed, record, find_one).
    Every read is one whole version (PS_RBIG: grow, read again, the size
    may have changed in between), never a cut or mixed payload."""
    s = Store(tmp_path / "s", sync=False, map_size=1 << 20)
    s.create_index("A", "by_model", field="model", msg_type=Agent)
    sizes = [reads.BUF - 40, reads.BUF - 1, reads.BUF, reads.BUF + 1, reads.KEEP - 40,
             reads.KEEP + 1, 10]

    def version(v: int, i: int) -> Agent:
        return Agent(model=f"r{i}", instructions=chr(97 + v % 26) * sizes[(v + i) % len(sizes)])

    def whole(m: Agent, i: int) -> None:
        assert m.model == f"r{i}"
        text = m.instructions
        assert len(text) in sizes and text == text[0] * len(text), (i, len(text))

    for i in range(3):
        s.save_resource("A", f"r{i}", version(0, i))
    stop = threading.Event()
    errors: list[BaseException] = []
    counts = [0] * 3

    def reader(n: int) -> None:
        try:
            while not stop.is_set():
                for i in range(3):
                    whole(Agent.FromString(s.get_bytes("A", f"r{i}")), i)
                    whole(s.get_resource("A", f"r{i}", Agent), i)
                    whole(Agent.FromString(s.get_record("A", f"r{i}").data), i)
                    whole(s.find_one("A", "by_model", f"r{i}", Agent), i)
                counts[n] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    v = 0
    while (v < 60 or min(counts) < 5) and time.monotonic() < deadline and not errors:
        v += 1
        s.save_resource("A", f"r{v % 3}", version(v, v % 3))
        s.save_resource("Fill", f"f{v}", Agent(instructions="f" * 30_000))  # grows the map
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors[0]
    assert min(counts) >= 5 and s.stats().map_size > 1 << 20
    s.close()


def test_an_interrupt_as_the_update_callback_returns_leaves_the_thread_usable(
    store: Store,
) -> None:
    """A SIGINT that arrives while update_resource()'s fn runs is handled at
    the next check point after it; a Python function's entry is one (3.11+:
    RESUME).  Landing at the entry of the code that marks the thread as out
    of the callback again, it left the thread marked as inside fn for good:
    every later call of the store in that thread raised TransactionError.
    The KeyboardInterrupt is raised here (sys.settrace) at the entry of
    the first Python function called after fn returns."""
    store.save_resource("A", "x", Agent(model="1"))
    returned: list[bool] = []

    def fn(m: Agent) -> None:
        m.model = "2"
        returned.append(True)

    def trace(frame: object, event: str, arg: object) -> None:
        if event == "call" and returned:
            sys.settrace(None)
            raise KeyboardInterrupt
        return None

    sys.settrace(trace)
    try:
        with pytest.raises(KeyboardInterrupt):
            store.update_resource("A", "x", Agent, fn)
    finally:
        sys.settrace(None)
    assert returned
    # the thread is out of the callback: the store answers, writes, transacts
    assert store.get_resource("A", "x", Agent).model in ("1", "2")
    store.save_resource("A", "x", Agent(model="3"))
    with store.transaction() as t:
        t.save_resource("A", "y", Agent(model="4"))
        with pytest.raises(TransactionError):
            store.get_bytes("A", "x")  # inside a transaction: never the fast path
    assert store.get_bytes("A", "y") == Agent(model="4").SerializeToString()
    assert store._tls.fast is None or store._tls.fast is store._tls.rd


def test_a_transaction_collected_without_its_exit_leaves_the_fast_reads_on(
    store: Store,
) -> None:
    """A Transaction entered and never exited (the one gap of
    docs/durability.md: an interrupt on the entry of __exit__) is rolled
    back when collected; the thread then holds no transaction, and its
    gets take the fast path again (they stayed on the general path for the
    thread's life: its state still held the dead weak reference)."""
    import gc

    store.save_resource("A", "x", Agent(model="1"))
    t = store.transaction()
    t.__enter__()
    t.save_resource("A", "x", Agent(model="2"))
    del t
    gc.collect()
    assert store.get_bytes("A", "x") == Agent(model="1").SerializeToString()  # rolled back
    assert store.get_resource("A", "x", Agent).model == "1"
    assert store._tls.fast is store._tls.rd is not None
    with store.transaction() as t2:  # and a new one still keeps the gets off
        assert store._tls.fast is None
        t2.save_resource("A", "x", Agent(model="3"))
    assert store._tls.fast is store._tls.rd


def test_a_kind_read_by_class_is_checked_again_once_its_type_changes(store: Store) -> None:
    # A fast get remembers the class it checked for a kind (read_ok_cls);
    # a write recording another type for the kind drops it, in every thread.
    from pystore import InvalidMessageError
    from pystore.samples.session_pb2 import Session

    store.save_resource("Thing", "1", Agent(model="a"))
    for _ in range(2):  # checked, then by class
        assert store.get_resource("Thing", "1", Agent).model == "a"
    seen: list[object] = []

    def other_thread() -> None:
        seen.append(store.get_resource("Thing", "1", Agent).model)

    t = threading.Thread(target=other_thread)
    t.start()
    t.join(30)
    assert seen == ["a"]
    store.save_resource("Thing", "2", Session())  # the kind now holds Sessions
    with pytest.raises(InvalidMessageError, match="Session"):
        store.get_resource("Thing", "1", Agent)
    def other_thread_again() -> None:
        try:
            store.get_resource("Thing", "1", Agent)
        except InvalidMessageError as exc:
            seen.append(type(exc).__name__)

    t = threading.Thread(target=other_thread_again)
    t.start()
    t.join(30)
    assert seen == ["a", "InvalidMessageError"]
    assert store.get_resource("Thing", "2", Session) == Session()
