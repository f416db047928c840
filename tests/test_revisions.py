"""Store revisions, conditional writes and the change log (issue 9)."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path

import pytest

import pystore
from pystore import Change, CompactedError, ConflictError, Store, StoreError
from pystore.samples.agent_pb2 import Agent


def ops(changes: list[Change]) -> list[tuple[int, str, str | None, str | None]]:
    return [(c.revision, c.op, c.kind, c.id) for c in changes]


def test_public_signatures() -> None:
    def params(fn: object) -> dict[str, inspect.Parameter]:
        return dict(inspect.signature(fn).parameters)  # type: ignore[arg-type]

    p = params(Store.save_resource)
    assert list(p)[1:] == ["kind", "id", "msg", "if_revision"]
    assert p["if_revision"].kind is inspect.Parameter.KEYWORD_ONLY
    assert p["if_revision"].default is None
    p = params(Store.delete_resource)
    assert list(p)[1:] == ["kind", "id", "if_revision"]
    assert p["if_revision"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(params(Store.create_resource))[1:] == ["kind", "id", "msg"]
    p = params(Store.changes)
    assert list(p)[1:] == ["after", "kinds", "streams", "limit"] and p["after"].default == 0
    assert p["kinds"].kind is p["limit"].kind is inspect.Parameter.KEYWORD_ONLY
    p = params(Store.watch)
    assert list(p)[1:] == ["after", "kinds", "streams", "timeout"] and p["after"].default is None
    assert p["timeout"].kind is inspect.Parameter.KEYWORD_ONLY and p["timeout"].default is None
    assert params(Store)["keep_changes"].default == 100_000
    assert list(params(Store.set_history))[1:] == ["kind", "keep"]
    p = params(Store.history)
    assert list(p)[1:] == ["kind", "id", "limit"]
    assert p["limit"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(params(Store.get_record_at))[1:] == ["kind", "id", "revision"]
    assert list(params(Store.delete_history))[1:] == ["kind", "id"]
    assert list(params(Store.revision))[1:] == [] and list(params(Store.snapshot))[1:] == []
    for name in ("Change", "ConflictError", "CompactedError"):
        assert name in pystore.__all__
    assert issubclass(ConflictError, StoreError) and issubclass(CompactedError, StoreError)


def test_every_committed_write_gets_one_new_revision(store: Store) -> None:
    assert store.revision() == 0
    r1 = store.save_resource("A", "x", Agent(model="1"))
    assert r1 == 1 and store.revision() == 1
    assert store.get_record("A", "x").revision == 1
    r2 = store.create_resource("A", "y", Agent())
    assert r2 == 2 and store.get_record("A", "y").revision == 2
    store.update_resource("A", "x", Agent, lambda m: setattr(m, "model", "2"))
    assert store.revision() == 3 and store.get_record("A", "x").revision == 3
    assert store.save_resources("B", [("b1", Agent()), ("b2", Agent())]) == 2
    assert store.revision() == 4
    assert [r.revision for r in store.iter_resources("B")] == [4, 4]
    with store.transaction() as t:
        assert t.save_resource("C", "c1", Agent()) == 5  # the revision it will commit at
        t.delete_resource("A", "y")
        t.save_resource("C", "c0", Agent())
    assert t.revision == 5 and store.revision() == 5
    assert store.delete_resources_by_kind("B") == 2
    assert ops(store.changes(3)) == [
        (4, "put", "B", "b1"), (4, "put", "B", "b2"),
        (5, "put", "C", "c1"), (5, "delete", "A", "y"), (5, "put", "C", "c0"),
        (6, "delete_kind", "B", None),
    ]
    assert all(isinstance(c, Change) and c.updated_at.tzinfo is not None
               for c in store.changes())


def test_writes_that_change_nothing_make_no_revision(store: Store) -> None:
    store.save_resource("A", "x", Agent())
    assert store.delete_resource("A", "missing") is False
    assert store.delete_resources_by_kind("Nothing") == 0
    with pytest.raises(RuntimeError), store.transaction() as t:
        t.save_resource("A", "z", Agent())
        raise RuntimeError("roll back")
    with store.transaction():
        pass
    store.set_history("A", 3)
    store.delete_history("A", "x")
    with pytest.raises(pystore.AlreadyExistsError):
        store.create_resource("A", "x", Agent())
    assert store.revision() == 1 and len(store.changes()) == 1


def test_revisions_survive_reopen_and_are_never_reused(store_path: Path) -> None:
    with Store(store_path, sync=False) as s:
        s.save_resource("A", "x", Agent())
        s.save_resource("A", "x", Agent())
    with Store(store_path) as s:
        assert s.revision() == 2 and s.get_record("A", "x").revision == 2
        assert s.save_resource("A", "y", Agent()) == 3
        s.delete_resource("A", "y")
        assert s.save_resource("A", "y", Agent()) == 5


def test_readonly_store_reads_revisions_snapshots_and_changes(store_path: Path) -> None:
    with Store(store_path, sync=False) as s:
        s.save_resource("A", "x", Agent())
    with Store(store_path, readonly=True) as ro:
        assert ro.revision() == 1 and ro.get_record("A", "x").revision == 1
        with ro.snapshot() as snap:
            assert snap.revision == 1 and snap.count("A") == 1
        assert ops(ro.changes()) == [(1, "put", "A", "x")]
        assert ops(list(ro.watch(after=0, timeout=0))) == [(1, "put", "A", "x")]


@pytest.mark.parametrize("sync", [False, True])
def test_if_revision(store_path: Path, sync: bool) -> None:
    with Store(store_path, sync=sync) as s:
        with pytest.raises(ConflictError) as info:
            s.save_resource("A", "x", Agent(model="no"), if_revision=3)
        e = info.value
        assert (e.kind, e.id, e.expected, e.actual) == ("A", "x", 3, 0)
        assert "A/x" in str(e) and "3" in str(e)
        r = s.save_resource("A", "x", Agent(model="v1"), if_revision=0)  # only if absent
        with pytest.raises(ConflictError) as info:
            s.save_resource("A", "x", Agent(model="no"), if_revision=0)
        assert info.value.actual == r
        with pytest.raises(ConflictError):
            s.save_resource("A", "x", Agent(model="no"), if_revision=r + 7)
        assert s.get_resource("A", "x", Agent).model == "v1" and s.revision() == r
        r2 = s.save_resource("A", "x", Agent(model="v2"), if_revision=r)
        assert r2 > r
        with pytest.raises(ConflictError) as info:
            s.delete_resource("A", "x", if_revision=r)
        assert (info.value.expected, info.value.actual) == (r, r2)
        assert s.delete_resource("A", "x", if_revision=r2) is True
        assert s.delete_resource("A", "x", if_revision=0) is False  # absent: matches, no-op
        assert s.revision() == r2 + 1
        # the same keywords inside a transaction; a conflict leaves it usable
        with s.transaction() as t:
            with pytest.raises(ConflictError):
                t.save_resource("A", "t", Agent(), if_revision=5)
            rt = t.save_resource("A", "t", Agent(), if_revision=0)
            t.save_resource("A", "t", Agent(model="again"), if_revision=rt)
            with pytest.raises(ConflictError):
                t.delete_resource("A", "t", if_revision=1)
        assert s.get_resource("A", "t", Agent).model == "again"
        assert s.get_record("A", "t").revision == t.revision == rt


@pytest.mark.parametrize("sync", [False, True])
def test_exactly_one_of_n_conditional_writers_wins(store_path: Path, sync: bool) -> None:
    with Store(store_path, sync=sync) as s:
        base = s.save_resource("A", "x", Agent(model="base"))
        for round in range(5):
            n = 8
            barrier = threading.Barrier(n)
            wins: list[int] = []
            conflicts: list[ConflictError] = []

            def writer(
                i: int, expected: int = base, barrier: threading.Barrier = barrier,
                wins: list[int] = wins, conflicts: list[ConflictError] = conflicts,
            ) -> None:
                barrier.wait()
                try:
                    wins.append(s.save_resource("A", "x", Agent(model=str(i)),
                                                if_revision=expected))
                except ConflictError as exc:
                    conflicts.append(exc)

            threads = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            assert len(wins) == 1 and len(conflicts) == n - 1, round
            assert all(c.actual == wins[0] and c.expected == base for c in conflicts)
            assert s.get_record("A", "x").revision == wins[0]
            base = wins[0]


def test_concurrent_durable_saves_share_the_revision_of_their_commit(store_path: Path) -> None:
    with Store(store_path) as s:
        results: dict[str, int] = {}

        def save(i: int) -> None:
            for j in range(20):
                results[f"t{i}-{j}"] = s.save_resource("A", f"t{i}-{j}", Agent())

        threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for id, rev in results.items():
            assert s.get_record("A", id).revision == rev
        by_rev: dict[int, set[str]] = {}
        for c in s.changes():
            by_rev.setdefault(c.revision, set()).add(c.id or "")
        assert {i for ids in by_rev.values() for i in ids} == set(results)
        for id, rev in results.items():
            assert id in by_rev[rev]
        assert len(by_rev) == s.revision()  # one revision per commit, +1 each


def test_change_log_retention_and_compacted(store_path: Path) -> None:
    keep = 10
    with Store(store_path, sync=False, keep_changes=keep) as s:
        for i in range(100):
            s.save_resource("A", f"x{i % 7}", Agent())
            oldest = next(a for a in range(s.revision() + 1) if _kept(s, a))
            kept = s.revision() - oldest
            assert kept >= min(keep, s.revision()) and kept <= 2 * keep, (i, kept)
        with pytest.raises(CompactedError) as info:
            s.changes(0)
        assert "list again" in str(info.value)
        with pytest.raises(CompactedError):
            s.watch(after=0)
        after = next(a for a in range(101) if _kept(s, a))
        got = s.changes(after)
        assert [c.revision for c in got] == list(range(after + 1, 101))
        assert s.changes(after, limit=3) == got[:3]
        assert s.changes(after, kinds=["B"]) == []


def _kept(s: Store, after: int) -> bool:
    try:
        s.changes(after, limit=1)
    except CompactedError:
        return False
    return True


def test_a_commit_that_wrote_nothing_keeps_no_stale_cache(tmp_path: Path) -> None:
    """A write txn that changes nothing leaves its LMDB txn id unused; when
    another process's commit takes that id, this process must still see
    that commit's revision and its new index (no cache keyed by the id)."""
    import subprocess
    import sys

    from pystore.samples.agent_pb2 import Agent

    path = str(tmp_path / "s")
    other = (
        "import sys\nfrom pystore import Store\nfrom pystore.samples.agent_pb2 import Agent\n"
        "with Store(sys.argv[1], sync=False) as s:\n"
        "    s.create_index('Agent', 'm', field='model', msg_type=Agent)\n"
        "    print(s.save_resource('Agent', 'other', Agent(model='x')))\n"
    )
    with Store(path, sync=False) as s:
        r1 = s.save_resource("Agent", "a", Agent(model="x"))
        assert s.delete_resource("Agent", "missing") is False  # commits nothing
        out = subprocess.run([sys.executable, "-c", other, path], capture_output=True,
                             text=True, timeout=60, check=True).stdout
        r_other = int(out)
        r2 = s.save_resource("Agent", "b", Agent(model="x"))
        assert r1 < r_other < r2
        assert s.find_ids("Agent", "m", "x") == ["a", "b", "other"]
        assert [c.revision for c in s.changes(after=0)] == sorted({r1, r_other, r2})
