"""Code that runs in the middle of a fast read of this very thread: a
finalizer run by the garbage collector, a signal handler's read at a check
point, a KeyboardInterrupt at a check point (pystore/_lmdb/reads.py).

The exact point is reached by wrapping a function reads.py calls at it (or
by the collector itself): a signal handler or an interrupt lands there when
the signal arrives during the C call before it (the check point right after
a call runs pending handlers)."""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from checkpoints import EXCEPTION_TABLE, interrupted_at, walk_check_points

from pystore import Store
from pystore._lmdb import reads
from pystore.samples.agent_pb2 import Agent


def _ser(m: Agent) -> bytes:
    return m.SerializeToString()


# -- a nested scan in the middle of this thread's held scan -------------------


def _once(
    real: Callable[..., Any], inner: Callable[[], object], seen: list[object], after: bool = False
) -> Any:
    """``real`` wrapped: its first call runs ``inner`` (what a signal
    handler would run at the check point after the C call) before it, or
    after it."""

    def wrapped(*args: Any) -> Any:
        if seen:
            return real(*args)
        seen.append(None)  # once: not again from inner's own calls
        if after:
            r = real(*args)
            seen[0] = inner()
            return r
        seen[0] = inner()
        return real(*args)

    return wrapped


NESTED: dict[str, Callable[[Store], object]] = {
    "list": lambda s: s.list_resources("B"),
    "parsed": lambda s: [_ser(m) for m in s.list_resources("B", Agent)],
    "iter": lambda s: [r.data for r in s.iter_resources("B")],
    "get": lambda s: s.get_bytes("B", "b0"),
}


@pytest.mark.parametrize("nested", sorted(NESTED))
@pytest.mark.parametrize("outer", ["list", "iter"])
def test_a_read_in_the_middle_of_a_held_scan_leaves_the_scan_whole(
    store: Store, monkeypatch: pytest.MonkeyPatch, outer: str, nested: str
) -> None:
    """A list or a page of an iteration holds its read txn while it copies
    the payloads out.  A read of the same store in the same thread in that
    window (a signal handler, a finalizer) failed on the held scan and then
    ended it in its own ``finally``: the outer list went on from a null
    base and returned empty ids and payloads."""
    want = [(f"a{i}", _ser(Agent(model=f"m{i}"))) for i in range(5)]
    store.save_resources("A", [(i, Agent.FromString(d)) for i, d in want])
    store.save_resources("B", [(f"b{i}", Agent(model=f"b{i}")) for i in range(3)])
    expect_inner = NESTED[nested](store)  # also makes this thread's context
    seen: list[object] = []
    # _unpack is the first call under the held txn in both scans
    monkeypatch.setattr(reads, "_unpack", _once(reads._unpack, lambda: NESTED[nested](store), seen))
    if outer == "list":
        assert store.list_resources("A") == [d for _, d in want]
    else:
        assert [(r.id, r.data) for r in store.iter_resources("A")] == want
    assert seen == [expect_inner]
    monkeypatch.undo()
    store.close()  # nothing of the scan is left held


def test_a_list_in_the_middle_of_a_parsed_list_leaves_its_wire_bytes_whole(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """list_resources parsed: the wire bytes are written (by a second
    ps_rscan_wire call) into the thread's kept bytearray after it is cut to
    length.  A nested list between the two calls ended the held scan, the
    second call failed unchecked, and the list parsed what the bytearray
    still held: the previous list's records (old values, stale count)."""
    store.save_resources("A", [(f"a{i}", Agent(model=f"old{i}")) for i in range(10)])
    assert len(store.list_resources("A", Agent)) == 10  # the kept bytearray: 10 records
    store.delete_resource("A", "a9")
    store.save_resource("A", "a0", Agent(model="new0"))  # same size as old0
    seen: list[object] = []
    monkeypatch.setattr(
        reads, "_rwire", _once(reads._rwire, lambda: store.list_resources("B"), seen, after=True)
    )
    got = store.list_resources("A", Agent)
    assert seen == [[]]
    assert [m.model for m in got] == ["new0"] + [f"old{i}" for i in range(1, 9)]


def test_a_parsed_list_of_an_empty_kind_keeps_the_wire_buffer(store: Store) -> None:
    """The kept bytearray was taken for the list and not given back when
    the kind was empty: the next list of a big kind allocated it anew."""
    store.save_resources("Big", [(f"b{i}", Agent(instructions="w" * 1000)) for i in range(50)])
    store.save_resource("Empty", "e", Agent())
    store.delete_resource("Empty", "e")  # its type recorded, no records
    assert len(store.list_resources("Big", Agent)) == 50
    kept = store._tls.rd.wire
    assert len(kept) > 50_000
    assert store.list_resources("Empty", Agent) == []
    assert store._tls.rd.wire is kept


@pytest.mark.parametrize("how", ["list", "parsed", "iter"])
def test_an_interrupt_as_a_scan_ends_leaves_close_working(
    store: Store, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A KeyboardInterrupt at the check point after ps_rscan_end (in the
    scan's ``finally``) skipped the line that marks the thread as out of
    its scan: every later close() in this thread raised TransactionError
    ("close() while this thread is reading the store")."""
    store.save_resources("A", [(f"a{i}", Agent(model=f"m{i}")) for i in range(3)])
    store.get_bytes("A", "a0")
    real = reads._rend

    def end_then_interrupt(ctx: object) -> None:
        real(ctx)
        raise KeyboardInterrupt

    monkeypatch.setattr(reads, "_rend", end_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        if how == "list":
            store.list_resources("A")
        elif how == "parsed":
            store.list_resources("A", Agent)
        else:
            list(store.iter_resources("A"))
    monkeypatch.undo()
    store.close()  # raised TransactionError
    assert store.closed


# -- a finalizer in the middle of a get ---------------------------------------


class _ReadsWhenCollected:
    """Cyclic garbage whose finalizer reads the store (what any ``__del__``
    or weakref callback touching the store does when the collector runs on
    an allocation in the middle of a read), and leaves another such object
    for the next collection while ``armed``."""

    def __init__(self, read: Callable[[], object], hits: list[object], armed: list[bool]) -> None:
        self.me = self
        self.read = read
        self.hits = hits
        self.armed = armed

    def __del__(self) -> None:
        if self.armed[0]:
            self.hits.append(self.read())
            _ReadsWhenCollected(self.read, self.hits, self.armed)


@pytest.fixture
def collector_at_every_allocation() -> Iterator[None]:
    old = gc.get_threshold()
    was = gc.isenabled()
    gc.collect()
    try:
        yield
    finally:
        gc.set_threshold(*old)
        if was:
            gc.enable()


def _with_finalizer(read: Callable[[], object], op: Callable[[], object]) -> tuple[object, bool]:
    """``op()`` while the collector runs at every other allocation of a
    tracked object, each time with cyclic garbage whose finalizer runs
    ``read()``: its result, and whether a finalizer ran."""
    hits: list[object] = []
    armed = [True]
    gc.disable()
    _ReadsWhenCollected(read, hits, armed)  # garbage now
    counted = [[], [], []]  # counted allocations (kept: a free uncounts them)
    gc.set_threshold(1)
    gc.enable()
    try:
        got = op()
    finally:
        gc.disable()
        armed[0] = False
    del counted
    gc.collect()
    return got, bool(hits)


def _in_thread(fn: Callable[[], object]) -> object:
    out: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    if errors:
        raise errors[0]
    return out[0]


GETS: dict[str, Callable[[Store], object]] = {
    "get_resource": lambda s: s.get_resource("A", "x", Agent).model,
    "get_resource_big": lambda s: s.get_resource("A", "big", Agent).instructions[-3:],
    "find_one": lambda s: s.find_one("A", "m", "xx", Agent).model,
    "get_record": lambda s: (lambda r: (r.data, r.revision, r.updated_ns))(s.get_record("A", "x")),
    "get_bytes": lambda s: s.get_bytes("A", "x"),
}


@pytest.mark.parametrize("other", ["y", "bigger"])
@pytest.mark.parametrize("what", sorted(GETS))
def test_a_finalizer_reading_the_store_in_the_middle_of_a_get_changes_nothing(
    store: Store, collector_at_every_allocation: None, what: str, other: str
) -> None:
    """The payload sits in the thread's buffer from the C call until it is
    sliced or parsed; an allocation in between (the message made after the
    read, the (reader, length) tuple of the first read of a kind or of a
    big record) ran the collector, whose finalizer's read of this store
    overwrote the buffer (or grew it): the get returned another record's
    bytes or raised InvalidMessageError.  Each get runs in a new thread
    (its own buffer), as the kind's first read there, then again."""
    store.create_index("A", "m", field="model", msg_type=Agent, unique=True)
    store.save_resource("A", "x", Agent(model="xx"))
    store.save_resource("A", "y", Agent(model="y" * 40, instructions="i" * 40))
    store.save_resource("A", "big", Agent(model="big", instructions="B" * 200_000))
    store.save_resource("A", "bigger", Agent(model="bigger", instructions="C" * 700_000))
    store.save_resource("Z", "z", Agent(model="z"))
    want = GETS[what](store)

    def run() -> object:
        store.get_bytes("Z", "z")  # the thread's Reader, with kind A new to it
        return [_with_finalizer(lambda: store.get_bytes("A", other), lambda: GETS[what](store))
                for _ in range(2)]

    results = cast("list[tuple[object, bool]]", _in_thread(run))
    assert [got for got, _ in results] == [want, want]
    assert any(ran for _, ran in results)  # (the hot get_bytes allocates nothing tracked)


def test_a_read_between_the_get_and_its_stamp_leaves_the_revision(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """get_record took the revision from the thread's context after
    ns_to_datetime (a Python function: its entry is a check point where a
    signal handler runs); a read there in the same thread changed it."""
    store.save_resource("A", "x", Agent(model="x"))
    store.save_resource("A", "y", Agent(model="y"))
    want = store.get_record("A", "x")
    real = reads.ns_to_datetime

    def stamp_after_a_read(ns: int) -> object:
        store.get_bytes("A", "y")
        return real(ns)

    monkeypatch.setattr(reads, "ns_to_datetime", stamp_after_a_read)
    got = store.get_record("A", "x")
    assert (got.revision, got.data, got.updated_ns) == (want.revision, want.data, want.updated_ns)


# -- an interrupt while the payload buffer grows ------------------------------


class _LibInterruptedAfter:
    """reads.lib with ``name`` raising KeyboardInterrupt after its C call
    returns (an interrupt at the check point after it)."""

    def __init__(self, real: Any, name: str) -> None:
        self._real = real
        self._name = name

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._real, name)
        if name != self._name:
            return fn

        def call(*args: Any) -> Any:
            fn(*args)
            raise KeyboardInterrupt

        return call


def test_an_interrupt_as_the_buffer_grows_leaves_no_view_of_the_old_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyboardInterrupt right after ps_rctx_reserve (a realloc) left the
    Reader's views on the freed buffer: later gets sliced freed memory
    (65,536 bytes of it for a 300 KB record; InvalidMessageError when
    parsed)."""
    big = Agent(model="big", instructions="b" * 300_000)
    store.save_resource("A", "big", big)
    store.save_resource("A", "x", Agent(model="x"))
    store.get_bytes("A", "x")  # this thread's context, 64 KiB
    monkeypatch.setattr(reads, "lib", _LibInterruptedAfter(reads.lib, "ps_rctx_reserve"))
    with pytest.raises(KeyboardInterrupt):
        store.get_bytes("A", "big")
    monkeypatch.undo()
    assert store.get_bytes("A", "big") == _ser(big)
    assert store.get_resource("A", "big", Agent) == big
    assert store.get_bytes("A", "x") == _ser(Agent(model="x"))
    rd = store._tls.rd
    assert rd.cap == rd.ctx.cap == len(rd.view) >= len(_ser(big))


# -- a KeyboardInterrupt at every check point of every fast read --------------

def _interrupted_at(point: int, call: Callable[[], object]) -> str | None:
    """``call`` with a KeyboardInterrupt at its ``point``-th check point
    inside pystore/_lmdb/reads.py (see checkpoints.py)."""
    return interrupted_at(point, call, reads.__file__)


@pytest.mark.skipif(not EXCEPTION_TABLE, reason="needs dis._parse_exception_table")
def test_an_interrupt_at_any_check_point_of_a_fast_read_leaves_the_store_right(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each fast read, from a new Reader (its first read, its buffer's
    growth), with a KeyboardInterrupt at each of its check points in turn;
    after each, no scan is left marked, the fast path's views are the
    buffer's, every read answers right, and close() works at the end.
    On main: 36 failures (an interrupt after ps_rctx_reserve: views of the
    freed buffer; after ps_rscan_end: the thread marked as scanning)."""
    monkeypatch.setattr(reads, "PAGE", 8)  # iter: pages and their ends, in few records
    store.create_index("A", "m", field="model", msg_type=Agent, unique=True)
    store.save_resources("A", [(f"a{i:04d}", Agent(model=f"m{i}", instructions="x" * (i % 7 * 10)))
                               for i in range(20)])
    store.save_resource("A", "big", Agent(model="big", instructions="B" * 300_000))
    store.save_resource("A", "bigger", Agent(model="bigger", instructions="C" * 700_000))
    store.save_resource("C", "c", Agent(model="c"))
    s = store
    reads_: dict[str, Callable[[], object]] = {
        "get_bytes": lambda: s.get_bytes("A", "a0005"),
        "get_bytes_big": lambda: s.get_bytes("A", "bigger"),
        "get_resource": lambda: _ser(s.get_resource("A", "a0007", Agent)),
        "get_resource_instance": lambda: _ser(s.get_resource("A", "a0007", Agent())),
        "get_resource_big": lambda: _ser(s.get_resource("A", "big", Agent)),
        "get_record": lambda: (lambda r: (r.data, r.revision, r.updated_at))(
            s.get_record("A", "a0009")),
        "find_one": lambda: _ser(s.find_one("A", "m", "m11", Agent)),
        "list": lambda: s.list_resources("A"),
        "list_parsed": lambda: [_ser(m) for m in s.list_resources("A", Agent)],
        "iter": lambda: [(r.id, r.data, r.revision) for r in s.iter_resources("A", Agent)],
        "cold_kind": lambda: s.get_bytes("C", "c"),
    }
    want = {name: read() for name, read in reads_.items()}
    problems: list[tuple[str, str, str]] = []
    points = 0
    for name, read in reads_.items():
        point = 1
        while True:
            store._tls.rd = store._tls.fast = None  # a new Reader: its growth too
            where = _interrupted_at(point, read)
            if where is None:
                break
            points += 1
            rd = store._tls.rd
            if rd is not None and rd.held:
                problems.append((name, where, "left marked as scanning"))
                rd.held = False
            if rd is not None and store._tls.fast is rd and rd.cap != rd.ctx.cap:
                problems.append((name, where, "views of a freed buffer on the fast path"))
            for other, again in reads_.items():
                try:
                    ok = again() == want[other]
                except Exception as exc:
                    ok = False
                    other += f" {type(exc).__name__}"
                if not ok:
                    problems.append((name, where, f"then {other} answered wrong"))
            point += 1
    assert points > 200  # the trace reached the check points
    assert problems == []
    store.close()
    assert store.closed


def test_a_read_at_any_check_point_of_a_get_leaves_its_result(store: Store) -> None:
    """What a signal handler reading the same store does in the main thread:
    at each check point of each fast get (right after the C call filled the
    thread's buffer, too), other reads of the store run; the get still
    returns its own record (they went the general way while it was busy)."""
    store.create_index("A", "m", field="model", msg_type=Agent, unique=True)
    store.save_resources("A", [(f"a{i:04d}", Agent(model=f"m{i}", instructions="x" * (i * 10)))
                               for i in range(20)])
    store.save_resource("A", "big", Agent(model="big", instructions="B" * 300_000))
    s = store
    gets: dict[str, Callable[[], object]] = {
        "get_bytes": lambda: s.get_bytes("A", "a0005"),
        "get_resource": lambda: _ser(s.get_resource("A", "a0007", Agent)),
        "get_resource_instance": lambda: _ser(s.get_resource("A", "a0007", Agent())),
        "get_record": lambda: (lambda r: (r.id, r.data, r.revision))(s.get_record("A", "a0009")),
        "find_one": lambda: _ser(s.find_one("A", "m", "m11", Agent)),
        "get_bytes_big": lambda: s.get_bytes("A", "big"),
    }
    want = {name: get() for name, get in gets.items()}

    def others() -> None:  # other records, every kind of get
        assert s.get_bytes("A", "a0013") == _ser(Agent(model="m13", instructions="x" * 130))
        assert s.get_resource("A", "a0015", Agent).model == "m15"
        assert s.find_one("A", "m", "m17", Agent).model == "m17"
        assert s.get_record("A", "a0002").id == "a0002"

    def read_then_not_busy(read: Callable[[], object]) -> object:
        got = read()
        assert not getattr(store._tls.rd, "busy", False)
        return got

    wrong, points = [], 0
    for name, get in gets.items():
        n, bad = walk_check_points(functools.partial(read_then_not_busy, get), reads.__file__,
                                   others, want[name])
        points += n
        wrong += [(name, point) for point, _, _ in bad]
    assert points > 20
    assert wrong == []
