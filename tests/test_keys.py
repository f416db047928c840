"""Key rules: what a kind and an id may be, and typed errors for everything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pystore
from pystore.samples import agent_pb2

BAD_KINDS = ["", "A/B", "/", "A\x00", "x" * 511]
BAD_IDS = ["", "a\x00b", "x" * 600, "\ud800"]


def _all_methods(store: pystore.Store, kind: object, id: object):  # type: ignore[no-untyped-def]
    msg = agent_pb2.Agent()
    return {
        "save_resource": lambda: store.save_resource(kind, id, msg),  # type: ignore[arg-type]
        "create_resource": lambda: store.create_resource(kind, id, msg),  # type: ignore[arg-type]
        "get_resource": lambda: store.get_resource(kind, id, agent_pb2.Agent),  # type: ignore[arg-type]
        "get_record": lambda: store.get_record(kind, id),  # type: ignore[arg-type]
        "delete_resource": lambda: store.delete_resource(kind, id),  # type: ignore[arg-type]
        "update_resource": lambda: store.update_resource(kind, id, agent_pb2.Agent, lambda m: None),  # type: ignore[arg-type]
        "save_resources": lambda: store.save_resources(kind, [(id, msg)]),  # type: ignore[arg-type,list-item]
    }


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_kind_raises_invalid_key_everywhere(store: pystore.Store, kind: str) -> None:
    store.save_resource("Agent", "keep", agent_pb2.Agent(model="kept"))
    for name, call in _all_methods(store, kind, "id-1").items():
        with pytest.raises(pystore.InvalidKeyError) as info:
            call()
        assert isinstance(info.value, ValueError), name
    for call in (
        lambda: store.list_resources(kind),
        lambda: store.count(kind),
        lambda: store.delete_resources_by_kind(kind),
        lambda: list(store.iter_resources(kind)),
    ):
        with pytest.raises(pystore.InvalidKeyError):
            call()
    assert store.get_resource("Agent", "keep", agent_pb2.Agent).model == "kept"
    assert store.kinds() == ["Agent"]


@pytest.mark.parametrize("id", BAD_IDS)
def test_bad_id_raises_invalid_key_everywhere(store: pystore.Store, id: str) -> None:
    store.save_resource("Agent", "keep", agent_pb2.Agent(model="kept"))
    for name, call in _all_methods(store, "Agent", id).items():
        with pytest.raises(pystore.InvalidKeyError):
            call()
        assert store.count("Agent") == 1, name


@pytest.mark.parametrize("bad", [None, 1, b"Agent", 1.5, ["A"], object()])
def test_non_str_kind_or_id_is_type_error(store: pystore.Store, bad: object) -> None:
    for call in list(_all_methods(store, bad, "x").values()) + list(
        _all_methods(store, "Agent", bad).values()
    ):
        with pytest.raises(TypeError):
            call()
    with pytest.raises(TypeError):
        store.list_resources(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.count(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.delete_resources_by_kind(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.iter_resources(bad)  # type: ignore[arg-type]
    assert store.kinds() == []


def test_key_length_limit_is_511_utf8_bytes(store: pystore.Store) -> None:
    kind = "K"
    store.save_resource(kind, "x" * 509, agent_pb2.Agent())  # 1 + 1 + 509 = 511
    with pytest.raises(pystore.InvalidKeyError, match="511"):
        store.save_resource(kind, "x" * 510, agent_pb2.Agent())
    # 'é' is two bytes in UTF-8: 254 of them + "K/" = 510 bytes, 255 = 512
    store.save_resource(kind, "é" * 254, agent_pb2.Agent())
    with pytest.raises(pystore.InvalidKeyError):
        store.save_resource(kind, "é" * 255, agent_pb2.Agent())
    assert store.count(kind) == 2


def test_ids_may_hold_slashes_and_any_unicode(store: pystore.Store) -> None:
    ids = ["a/b/c", "/leading", "trailing/", "日本語", "emoji-🚀", "sp ace", "é", "\t\n"]
    for i, id in enumerate(ids):
        store.save_resource("Agent", id, agent_pb2.Agent(model=str(i)))
    for i, id in enumerate(ids):
        assert store.get_resource("Agent", id, agent_pb2.Agent).model == str(i)
        assert store.get_record("Agent", id).id == id
    got = [r.id for r in store.iter_resources("Agent")]
    assert got == sorted(ids, key=lambda s: s.encode("utf-8"))
    assert store.kinds() == ["Agent"]


def test_prefix_isolation(store: pystore.Store) -> None:
    for kind in ("Agent", "Agents", "Agent0", "AgentExecution", "Agen", "agent"):
        store.save_resource(kind, "1", agent_pb2.Agent(model=kind))
    assert [m.model for m in store.list_resources("Agent", agent_pb2.Agent)] == ["Agent"]
    assert store.count("Agen") == 1
    assert [r.kind for r in store.iter_resources("Agent")] == ["Agent"]


def test_non_message_is_type_error(store: pystore.Store) -> None:
    for bad in (None, b"bytes", "str", {"a": 1}, agent_pb2.Agent):
        with pytest.raises(TypeError):
            store.save_resource("Agent", "a", bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            store.create_resource("Agent", "a", bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            store.save_resources("Agent", [("a", bad)])  # type: ignore[list-item]
    store.save_resource("Agent", "a", agent_pb2.Agent())
    for bad in (None, "Agent", 3, agent_pb2.Agent.DESCRIPTOR):
        with pytest.raises(TypeError):
            store.get_resource("Agent", "a", bad)  # type: ignore[call-overload]
        if bad is not None:  # None asks list_resources for raw bytes
            with pytest.raises(TypeError):
                store.list_resources("Agent", bad)  # type: ignore[call-overload]
        with pytest.raises(TypeError):
            store.update_resource("Agent", "a", bad, lambda m: None)  # type: ignore[arg-type]
    assert store.get_record("Agent", "a").data == b""
    assert store.kinds() == ["Agent"]


def test_save_resources_bad_item_writes_nothing(store: pystore.Store) -> None:
    good = agent_pb2.Agent(model="m")
    for items in (
        [("a", good), ("", good)],
        [("a", good), ("b", "not a message")],
        [("a", good), ("b",)],
        [("a", good), "ab"],
    ):
        with pytest.raises((TypeError, ValueError)):
            store.save_resources("Agent", items)  # type: ignore[arg-type]
    assert store.count("Agent") == 0


def test_bytes_that_do_not_parse_as_the_class_give_typed_error(store: pystore.Store) -> None:
    from pystore.samples import agent_execution_pb2

    # ToolCall field 3 is bytes; agent Tool field 3 is a map (length-delimited
    # entries): random bytes there cannot parse, so the read must fail typed.
    # Written raw (no recorded type), so the read gets as far as parsing.
    store._put_raw("ToolCall", "t",
                   agent_execution_pb2.ToolCall(output=b"\xff\xfe\x00").SerializeToString(), 0)
    with pytest.raises(pystore.InvalidMessageError, match="ToolCall/t"):
        store.get_resource("ToolCall", "t", agent_pb2.Tool)
    with pytest.raises(pystore.InvalidMessageError):
        store.list_resources("ToolCall", agent_pb2.Tool)
    got = store.get_resource("ToolCall", "t", agent_execution_pb2.ToolCall)
    assert got.output == b"\xff\xfe\x00"


@settings(max_examples=60, deadline=None)
@given(
    kind=st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]),
                 min_size=1, max_size=40),
    id=st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]),
               min_size=1, max_size=60),
)
def test_any_valid_key_round_trips(
    tmp_path_factory: pytest.TempPathFactory, kind: str, id: str
) -> None:
    path = tmp_path_factory.mktemp("keys")
    with pystore.Store(path, sync=False) as s:
        s.save_resource(kind, id, agent_pb2.Agent(model=id))
        assert s.get_resource(kind, id, agent_pb2.Agent).model == id
        assert s.kinds() == [kind]
        assert [r.id for r in s.iter_resources(kind)] == [id]
        assert s.delete_resource(kind, id)
