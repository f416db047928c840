"""Version history: set_history, history, get_record_at, delete_history, and
dump/load carrying it (issue 9)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pystore import NotFoundError, Store
from pystore.cli import dump as dump_mod
from pystore.samples.agent_pb2 import Agent


def models(store: Store, kind: str, id: str, **kw: int) -> list[tuple[int, str]]:
    return [(r.revision, Agent.FromString(r.data).model) for r in store.history(kind, id, **kw)]


def test_history_keeps_the_last_versions(store: Store) -> None:
    assert store.history_keep("V") == 0
    store.save_resource("V", "a", Agent(model="0"))
    store.save_resource("V", "a", Agent(model="1"))
    assert models(store, "V", "a") == [(2, "1")]  # keep 0: only the live one
    before = store.revision()
    store.set_history("V", 2)
    assert store.revision() == before and store.history_keep("V") == 2
    for i in range(2, 6):
        store.save_resource("V", "a", Agent(model=str(i)))
    assert models(store, "V", "a") == [(6, "5"), (5, "4"), (4, "3")]
    assert models(store, "V", "a", limit=2) == [(6, "5"), (5, "4")]
    assert store.history("V", "a", limit=0) == []
    old = store.get_record_at("V", "a", 4)
    assert Agent.FromString(old.data).model == "3" and old.revision == 4
    assert old.updated_ns < store.get_record("V", "a").updated_ns
    assert store.get_record_at("V", "a", 6) == store.get_record("V", "a")
    with pytest.raises(NotFoundError):
        store.get_record_at("V", "a", 3)
    assert store.history("V", "missing") == []
    # other kinds keep nothing
    store.save_resource("W", "a", Agent())
    store.save_resource("W", "a", Agent())
    assert len(store.history("W", "a")) == 1


def test_a_lowered_keep_count_keeps_at_most_that_many(store: Store) -> None:
    store.set_history("V", 3)
    for i in range(5):
        store.save_resource("V", "a", Agent(model=str(i)))
    assert len(store.history("V", "a")) == 4  # live + 3 kept
    store.set_history("V", 0)  # "0 keeps none"
    store.save_resource("V", "a", Agent(model="5"))
    assert models(store, "V", "a") == [(6, "5")]
    with pytest.raises(NotFoundError):
        store.get_record_at("V", "a", 3)


def test_a_lowered_keep_count_applies_at_once_to_every_resource(store: Store) -> None:
    store.set_history("V", 4)
    store.set_history("W", 4)
    for id in ("a", "b"):
        for i in range(4):
            store.save_resource("V", id, Agent(model=f"{id}{i}"))
            store.save_resource("W", id, Agent(model=f"{id}{i}"))
    before = store.revision()
    store.set_history("V", 1)  # no write of V/a or V/b after it
    assert store.revision() == before  # an administrative call: no revision
    for id in ("a", "b"):
        assert [m for _, m in models(store, "V", id)] == [f"{id}3", f"{id}2"]  # live + 1 kept
        assert len(store.history("W", id)) == 4  # another kind: untouched
    store.set_history("V", 0)
    assert [m for _, m in models(store, "V", "a")] == ["a3"]
    with pytest.raises(RuntimeError), store.transaction() as t:  # rolled back: nothing dropped
        t.set_history("W", 0)
        assert t.history("W", "a") == t.history("W", "a")[:1]  # the txn sees its own trim
        raise RuntimeError("roll back")
    assert len(store.history("W", "a")) == 4


def test_delete_moves_the_last_version_into_history(store: Store) -> None:
    store.set_history("V", 3)
    store.save_resource("V", "a", Agent(model="1"))
    store.save_resource("V", "a", Agent(model="2"))
    store.delete_resource("V", "a")
    assert models(store, "V", "a") == [(2, "2"), (1, "1")]
    store.save_resource("V", "a", Agent(model="3"))
    assert models(store, "V", "a") == [(4, "3"), (2, "2"), (1, "1")]
    before = store.revision()
    assert store.delete_history("V", "a") == 2
    assert store.revision() == before
    assert models(store, "V", "a") == [(4, "3")]
    assert store.delete_history("V", "a") == 0


def test_kind_delete_drops_history_and_txn_versions_are_not_kept(store: Store) -> None:
    store.set_history("V", 5)
    store.save_resource("V", "a", Agent(model="1"))
    with store.transaction() as t:
        t.save_resource("V", "a", Agent(model="2"))
        t.save_resource("V", "a", Agent(model="3"))  # "2" was never committed
        assert [r.revision for r in t.history("V", "a")] == [2, 1]
    assert models(store, "V", "a") == [(2, "3"), (1, "1")]
    store.save_resource("V", "b", Agent())
    store.save_resource("V", "b", Agent())
    assert store.delete_resources_by_kind("V") == 2
    assert store.history("V", "a") == [] and store.history("V", "b") == []
    with pytest.raises(NotFoundError):
        store.get_record_at("V", "a", 1)


def test_keep_count_is_persisted_and_seen_by_other_processes(store_path: Path) -> None:
    with Store(store_path, sync=False) as s:
        s.save_resource("V", "a", Agent(model="1"))
        script = textwrap.dedent("""
            import sys, pystore
            with pystore.Store(sys.argv[1]) as s:
                s.set_history("V", 4)
        """)
        subprocess.run([sys.executable, "-c", script, str(store_path)], check=True, timeout=60)
        s.save_resource("V", "a", Agent(model="2"))  # this process sees keep=4 at once
        assert models(s, "V", "a") == [(2, "2"), (1, "1")]
    with Store(store_path, readonly=True) as ro:
        assert ro.history_keep("V") == 4 and len(ro.history("V", "a")) == 2
        with ro.snapshot() as snap:
            assert [r.revision for r in snap.history("V", "a")] == [2, 1]


def test_dump_and_load_carry_history(store_path: Path, tmp_path: Path) -> None:
    with Store(store_path, sync=False) as s:
        s.set_history("V", 3)
        for i in range(4):
            s.save_resource("V", "a", Agent(model=f"a{i}"))
        s.save_resource("V", "gone", Agent(model="g0"))
        s.save_resource("V", "gone", Agent(model="g1"))
        s.delete_resource("V", "gone")
        s.save_resource("P", "plain", Agent(model="p"))
        before = {id: [(r.data, r.updated_ns) for r in s.history("V", id)] for id in ("a", "gone")}
        out = io.StringIO()
        dump_mod.dump(s, out, progress=False)
    text = out.getvalue()
    assert '"history_keep"' in text and text.count('"history"') == 3 + 2
    with Store(tmp_path / "copy", sync=False) as c:
        c.save_resource("X", "x", Agent())  # the loaded store has revisions of its own
        dump_mod.load(c, io.StringIO(text))
        assert c.history_keep("V") == 3
        for id in ("a", "gone"):
            got = c.history("V", id)
            assert [(r.data, r.updated_ns) for r in got] == before[id]
            revs = [r.revision for r in got]
            assert revs == sorted(revs, reverse=True) and len(set(revs)) == len(revs)
            assert all(c.get_record_at("V", id, r.revision).data == r.data for r in got)
        live, *kept = c.history("V", "a")
        assert live.revision == c.revision() > max(r.revision for r in kept)
        again = io.StringIO()
        dump_mod.dump(c, again, progress=False)
    strip = [line for line in again.getvalue().splitlines() if '"X"' not in line]
    assert [ln for ln in strip if '"history"' not in ln] == [
        ln for ln in text.splitlines() if '"history"' not in ln]


def test_a_lowered_keep_count_trims_large_versions_of_many_resources(store: Store) -> None:
    # versions over a page each (LMDB's overflow pages), a kind whose name
    # starts with the trimmed one's ("VV"), and enough ids to fill pages
    store.set_history("V", 3)
    store.set_history("VV", 3)
    ids = [f"id{n:03d}" for n in range(40)]
    for i in range(4):
        store.save_resources("V", [(id, Agent(model=f"{id}-{i}", instructions="x" * (3000 + i)))
                                   for id in ids])
        store.save_resources("VV", [(id, Agent(model=f"{id}-{i}")) for id in ids])
    store.set_history("V", 1)
    for id in ids:
        got = [(Agent.FromString(r.data).model, len(Agent.FromString(r.data).instructions))
               for r in store.history("V", id)]
        assert got == [(f"{id}-3", 3003), (f"{id}-2", 3002)]
        assert [m for _, m in models(store, "VV", id)] == [f"{id}-{i}" for i in (3, 2, 1, 0)]
    store.close()
    with Store(store.path, readonly=True) as again:  # committed as it was read
        assert len(again.history("V", "id039")) == 2


def test_a_trim_in_a_transaction_survives_the_replay_of_a_map_growth(tmp_path: Path) -> None:
    path = str(tmp_path / "small")
    with Store(path, sync=False, map_size=1 << 16) as s:
        s.set_history("V", 3)
        for i in range(4):
            s.save_resource("V", "a", Agent(model=str(i)))
        size = os.path.getsize(os.path.join(path, "data.mdb"))
        with s.transaction() as t:
            t.set_history("V", 1)
            for n in range(1000):  # ~3 MB more: the map grows, the txn's log is replayed
                t.save_resource("Big", f"b{n}", Agent(instructions="y" * 3000))
        assert os.path.getsize(os.path.join(path, "data.mdb")) > size
        assert [m for _, m in models(s, "V", "a")] == ["3", "2"]
        assert s.count("Big") == 1000


@pytest.mark.parametrize("mode", ["pwrite", "writemap"])
def test_a_keep_count_set_in_a_transaction_holds_after_its_map_growth_replay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """A write of the kind before set_history in the same transaction, then a
    map growth: the replay wrote that record (reading the old keep count)
    before it wrote the new count, and the rest of the transaction used the
    old one: a version it superseded afterwards was not kept."""
    if mode == "pwrite":
        monkeypatch.setenv("PYSTORE_WRITEMAP", "0")
    with Store(tmp_path / "s", sync=False, map_size=1 << 16) as s:
        monkeypatch.delenv("PYSTORE_WRITEMAP", raising=False)
        assert s.stats().write_mode == mode
        map0 = s.stats().map_size
        first = s.save_resource("V", "a", Agent(model="v1"))
        with s.transaction() as t:
            t.save_resource("V", "b", Agent())  # reads V's keep count (0)
            t.set_history("V", 1)
            t.save_resource("Big", "x", Agent(instructions="L" * 3_000_000))  # grows the map
            assert t.history_keep("V") == 1
            t.save_resource("V", "a", Agent(model="v2"))  # supersedes v1: kept
        assert s.stats().map_size > map0
        assert models(s, "V", "a") == [(first + 1, "v2"), (first, "v1")]
