"""save_resources joins its batch in a buffer its thread keeps (batchbuf.py).

The buffer is overwritten by the next batch, so nothing may read it after
its call: not the transaction's log (a replay after map growth), not an
outer batch whose join a nested one (a signal handler's) ran in the middle
of.  Each test shows one of those, with real stores.
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import pytest

from pystore import Store
from pystore._lmdb import batchbuf, fastwrite, txnwrite
from pystore.samples.agent_pb2 import Agent


def _batch(prefix: str, n: int, fill: str) -> list[tuple[str, Agent]]:
    return [(f"{prefix}{i:04d}", Agent(model=f"{prefix}{i}", instructions=fill)) for i in range(n)]


def _check(s: Store, kind: str, items: list[tuple[str, Agent]]) -> None:
    for id, msg in items:
        assert s.get_resource(kind, id, Agent) == msg, id


def test_batches_of_other_sizes_in_turn_store_exactly_their_records(tmp_path: Path) -> None:
    with Store(tmp_path / "s", sync=False) as s:
        s.save_resource("A", "seed", Agent())  # the kind's schema: the one-call path
        big, small = _batch("b", 300, "x" * 900), _batch("s", 3, "y")
        big2 = _batch("c", 200, "z" * 50)
        assert s.save_resources("A", big) == 300
        kept = batchbuf._kept.bio
        assert kept is not None  # kept for the thread's next batch
        assert s.save_resources("A", small) == 3  # shorter: the rest of the buffer is old
        assert batchbuf._kept.bio is kept
        with s.transaction() as t:
            assert t.save_resources("A", big2) == 200
        assert batchbuf._kept.bio is kept
        for items in (big, small, big2):
            _check(s, "A", items)
        assert s.count("A") == 504


def test_each_thread_keeps_its_own_buffer(tmp_path: Path) -> None:
    with Store(tmp_path / "s", sync=False) as s:
        s.save_resource("A", "seed", Agent())
        got: dict[str, Any] = {}

        def worker(name: str) -> None:
            for round in range(20):
                items = _batch(f"{name}{round}-", 50, name * (round * 10))
                assert s.save_resources("A", items) == 50
                _check(s, "A", items)
            got[name] = batchbuf._kept.bio

        threads = [threading.Thread(target=worker, args=(n,)) for n in "pq"]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert got["p"] is not None and got["q"] is not None and got["p"] is not got["q"]
        assert s.count("A") == 1 + 2 * 20 * 50


@pytest.mark.parametrize("where", ["store", "transaction"])
def test_a_batch_saved_in_the_middle_of_another_gets_its_own_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A signal handler (or a finalizer) that saves a batch between the
    outer batch's join and its C call (into another store: a thread in a
    transaction() cannot write its store outside it): the inner batch must
    not write into the outer one's buffer, whose bytes the outer call is
    about to store."""
    s = Store(tmp_path / "s", sync=False)
    s2 = Store(tmp_path / "s2", sync=False)
    s.save_resource("A", "seed", Agent())
    s2.save_resource("B", "seed", Agent())
    s.save_resources("A", _batch("w", 10, "warm"))  # the thread has a kept buffer
    outer, inner = _batch("o", 40, "o" * 700), _batch("i", 60, "i" * 900)
    module: Any = fastwrite if where == "store" else txnwrite
    real = module._save_many
    ran: list[bool] = []

    def nested_first(*args: Any) -> Any:
        if not ran:
            ran.append(True)
            assert s2.save_resources("B", inner) == 60  # a handler's own batch
        return real(*args)

    monkeypatch.setattr(module, "_save_many", nested_first)
    if where == "store":
        assert s.save_resources("A", outer) == 40
    else:
        with s.transaction() as t:
            assert t.save_resources("A", outer) == 40
    monkeypatch.undo()
    assert ran == [True]
    _check(s, "A", outer)
    _check(s2, "B", inner)
    s.close()
    s2.close()


def test_a_join_never_closed_costs_the_thread_only_its_kept_buffer(tmp_path: Path) -> None:
    """An interrupt between the join and its close leaves the buffer
    exported: it is not given back, and the next batch joins into a new one
    (a BytesIO still exported cannot be written)."""
    with Store(tmp_path / "s", sync=False) as s:
        s.save_resource("A", "seed", Agent())
        s.save_resources("A", _batch("w", 5, "warm"))
        left = batchbuf.Joined([b"id", b"payload"])  # never closed
        assert batchbuf._kept.bio is None
        items = _batch("n", 30, "n" * 300)
        assert s.save_resources("A", items) == 30
        _check(s, "A", items)
        assert batchbuf._kept.bio is not None
        assert bytes(batchbuf.ffi.buffer(left.data, left.size)) == b"idpayload"
        left.close()


def test_a_buffer_grown_past_keep_is_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batchbuf, "KEEP", 20_000)
    monkeypatch.setattr(batchbuf._kept, "bio", None)  # not an earlier test's
    with Store(tmp_path / "s", sync=False) as s:
        s.save_resource("A", "seed", Agent())
        assert s.save_resources("A", _batch("s", 5, "y")) == 5
        small = batchbuf._kept.bio
        assert small is not None
        assert s.save_resources("A", _batch("b", 100, "x" * 500)) == 100  # ~50 KB
        assert batchbuf._kept.bio is None  # let go after its call
        assert s.save_resources("A", _batch("t", 5, "y")) == 5
        assert batchbuf._kept.bio is not None
        _check(s, "A", _batch("b", 100, "x" * 500))


def test_batches_in_one_transaction_survive_a_replay_after_map_growth(tmp_path: Path) -> None:
    """Two batches in one transaction of a 1 MiB map: the second overwrites
    the kept buffer, then the map grows and the core replays the txn's log.
    The first batch comes back whole: the log copied it, it did not borrow
    the buffer."""
    s = Store(tmp_path / "s", sync=False, map_size=1 << 20)
    s.save_resource("A", "seed", Agent())
    first, second = _batch("f", 400, "f" * 1500), _batch("g", 400, "g" * 1500)
    with s.transaction() as t:
        assert t.save_resources("A", first) == 400
        assert t.save_resources("A", second) == 400  # same sizes: the same buffer
        gc.collect()
        for i in range(1500):  # ~2.3 MB more: the map grows, the log is replayed
            t.save_resource("A", f"r{i:05d}", Agent(instructions="r" * 1500))
    assert s.stats().map_size > 1 << 20
    _check(s, "A", first)
    _check(s, "A", second)
    assert s.count("A") == 2301
    s.close()


def _required_class() -> type[Any]:
    """A proto2 message with a required field: SerializeToString raises
    EncodeError while it is unset."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="bbreq.proto", package="bbreq", syntax="proto2")
    rec = fdp.message_type.add(name="Rec")
    rec.field.add(name="name", number=1, type=F.TYPE_STRING, label=F.LABEL_REQUIRED)
    rec.field.add(name="note", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("bbreq.Rec"))


@pytest.mark.parametrize("in_txn", [False, True])
def test_a_message_that_does_not_serialize_mid_batch_fails_it_whole(
    tmp_path: Path, in_txn: bool
) -> None:
    """Messages are serialized as the batch is joined: one that cannot be
    (a required field unset) raises InvalidMessageError as the general path
    words it, nothing of the batch is written, and the thread keeps its
    buffer for the next batch."""
    from pystore import InvalidMessageError

    Rec = _required_class()
    with Store(tmp_path / "s", sync=False) as s:
        s.save_resource("R", "seed", Rec(name="seed"))
        s.save_resources("R", [("warm", Rec(name="warm"))])
        kept = batchbuf._kept.bio
        assert kept is not None
        items = [(f"r{i}", Rec(name=f"r{i}", note="n" * 200)) for i in range(50)]
        items[30] = ("bad", Rec(note="no name"))
        with pytest.raises(InvalidMessageError, match="cannot serialize"):
            if in_txn:
                with s.transaction() as t:
                    t.save_resources("R", items)
            else:
                s.save_resources("R", items)
        assert batchbuf._kept.bio is kept
        assert s.count("R") == 2
        good = [(f"g{i}", Rec(name=f"g{i}")) for i in range(40)]
        assert s.save_resources("R", good) == 40
        assert batchbuf._kept.bio is kept
        assert s.get_resource("R", "g39", Rec) == Rec(name="g39")
