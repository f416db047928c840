"""iter_resources: key order, ``after`` (strictly), ``limit``, paging across pages."""

from __future__ import annotations

import pytest

import pystore
from pystore.samples import agent_pb2


@pytest.fixture
def filled(store: pystore.Store) -> pystore.Store:
    ids = [f"agt-{i:06d}" for i in range(1300)]  # more than two internal pages
    store.save_resources("Agent", [(i, agent_pb2.Agent(model=i)) for i in reversed(ids)])
    store.save_resource("Agents", "agt-000000", agent_pb2.Agent())
    store.save_resource("Agen", "zzz", agent_pb2.Agent())
    return store


def test_iterates_whole_kind_in_key_order(filled: pystore.Store) -> None:
    got = list(filled.iter_resources("Agent"))
    assert [r.id for r in got] == [f"agt-{i:06d}" for i in range(1300)]
    assert all(r.kind == "Agent" for r in got)
    assert agent_pb2.Agent.FromString(got[7].data).model == "agt-000007"


def test_after_is_strict_and_need_not_exist(filled: pystore.Store) -> None:
    assert [r.id for r in filled.iter_resources("Agent", after="agt-001297")] == [
        "agt-001298", "agt-001299"]
    assert [r.id for r in filled.iter_resources("Agent", after="agt-0012975")] == [
        "agt-001298", "agt-001299"]
    assert list(filled.iter_resources("Agent", after="agt-001299")) == []
    assert list(filled.iter_resources("Agent", after="zzzz")) == []
    assert len(list(filled.iter_resources("Agent", after="a"))) == 1300


def test_limit(filled: pystore.Store) -> None:
    assert [r.id for r in filled.iter_resources("Agent", limit=3)] == [
        "agt-000000", "agt-000001", "agt-000002"]
    assert len(list(filled.iter_resources("Agent", limit=1000))) == 1000
    assert len(list(filled.iter_resources("Agent", limit=5000))) == 1300
    assert list(filled.iter_resources("Agent", limit=0)) == []
    page = [r.id for r in filled.iter_resources("Agent", after="agt-000599", limit=2)]
    assert page == ["agt-000600", "agt-000601"]


def test_paging_by_after_visits_everything_once(filled: pystore.Store) -> None:
    seen: list[str] = []
    after = None
    while True:
        page = list(filled.iter_resources("Agent", after=after, limit=97))
        if not page:
            break
        seen.extend(r.id for r in page)
        after = page[-1].id
    assert seen == [f"agt-{i:06d}" for i in range(1300)]


def test_bad_arguments(filled: pystore.Store) -> None:
    with pytest.raises(TypeError):
        filled.iter_resources("Agent", limit="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        filled.iter_resources("Agent", limit=True)
    with pytest.raises(ValueError):
        filled.iter_resources("Agent", limit=-1)
    with pytest.raises(TypeError):
        filled.iter_resources("Agent", after=5)  # type: ignore[arg-type]
    with pytest.raises(pystore.InvalidKeyError):
        filled.iter_resources("Agent", after="a\x00")
    for kind in ("", "A/B", "x" * 510):  # raised at the call, before any next()
        with pytest.raises(pystore.InvalidKeyError):
            filled.iter_resources(kind)


def test_iterator_survives_writes_between_pages(filled: pystore.Store) -> None:
    it = filled.iter_resources("Agent")
    first = next(it)
    filled.delete_resource("Agent", "agt-000001")
    filled.save_resource("Agent", "agt-009999", agent_pb2.Agent())
    rest = [r.id for r in it]
    assert first.id == "agt-000000"
    assert rest[-1] == "agt-009999"
    assert len(set(rest)) == len(rest)
