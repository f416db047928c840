"""The two ways a put finds its record (docs/architecture.md, "Revisions
and the change log"): a put that needs nothing of the stored record goes
straight to LMDB's put, which finds the key itself; a conditional write,
a versioned kind or an indexed kind reads the stored record first.  Both,
in both write modes, over every shape of overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest

import pystore
from pystore.samples.agent_pb2 import Agent

SIZES = [0, 10, 3_000, 60_000, 10, 60_000, 61_000, 3_000]  # inline, overflow, same size


@pytest.fixture(params=["writemap", "pwrite"])
def store(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> pystore.Store:
    if request.param == "pwrite":
        monkeypatch.setenv("PYSTORE_WRITEMAP", "0")  # a new store in the pwrite mode
    s = pystore.Store(tmp_path / "s", sync=False)
    assert s.stats().write_mode == request.param or request.param == "writemap"
    request.addfinalizer(s.close)
    return s


def _msg(n: int, tag: str) -> Agent:
    return Agent(model=tag, instructions="x" * n)


@pytest.mark.parametrize("how", ["plain", "versioned", "indexed", "conditional"])
def test_overwrites_of_every_size_read_back(store: pystore.Store, how: str) -> None:
    if how == "versioned":
        store.set_history("K", 3)
    if how == "indexed":
        store.create_index("K", "model", field="model", msg_type=Agent)
    store.save_resource("Other", "z", _msg(5, "other"))  # a neighbour kind after K's keys
    rev = 0
    for i, n in enumerate(SIZES):
        tag = f"v{i}"
        if how == "conditional":
            new = store.save_resource("K", "r", _msg(n, tag), if_revision=rev)
        else:
            new = store.save_resource("K", "r", _msg(n, tag))
        assert new > rev
        rev = new
        got = store.get_record("K", "r")
        assert got.revision == rev
        assert Agent.FromString(got.data) == _msg(n, tag)
    assert store.count("K") == 1
    assert store.get_resource("Other", "z", Agent).model == "other"
    if how == "versioned":
        # the live version, then the 3 kept
        assert [Agent.FromString(v.data).model for v in store.history("K", "r")] == [
            "v7", "v6", "v5", "v4"]
    if how == "indexed":
        assert store.find_ids("K", "model", "v7") == ["r"]
        assert store.find_ids("K", "model", "v6") == []


def test_create_over_an_existing_record_leaves_it(store: pystore.Store) -> None:
    store.save_resource("K", "r", _msg(60_000, "big"))
    before = store.get_record("K", "r")
    with pytest.raises(pystore.AlreadyExistsError):
        store.create_resource("K", "r", _msg(5, "small"))
    after = store.get_record("K", "r")
    assert (after.revision, after.data) == (before.revision, before.data)
    assert store.create_resource("K", "s", _msg(5, "new")) > before.revision


@pytest.mark.parametrize("in_txn", [False, True])
def test_runs_of_new_ids_between_kinds(store: pystore.Store, in_txn: bool) -> None:
    # New ids after the last key of their page, with keys of other kinds on
    # both sides: the put finds each place itself.
    store.save_resources("A", [(f"{i:05d}", _msg(50, "a")) for i in range(300)])
    store.save_resources("C", [(f"{i:05d}", _msg(50, "c")) for i in range(300)])
    batch = [(f"{i:05d}", _msg(200 + i % 7, f"b{i}")) for i in range(2_000)]
    if in_txn:
        with store.transaction() as t:
            for id, m in batch:
                t.save_resource("B", id, m)
    else:
        store.save_resources("B", batch)
    assert store.list_resources("B", Agent) == [m for _, m in batch]
    assert (store.count("A"), store.count("C")) == (300, 300)
    # and again over them (all exist now), in the other order
    store.save_resources("B", [(id, _msg(10, "again")) for id, _ in reversed(batch)])
    assert {m.model for m in store.list_resources("B", Agent)} == {"again"}
    assert store.count("B") == 2_000
