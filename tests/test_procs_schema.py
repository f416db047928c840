"""A kind's recorded message type changed by another process: readers that
checked the kind before must not go on parsing its records as the old type
(they did: the check was cached for good, so Session records read as Agents
without an error)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pystore import InvalidMessageError, Store
from pystore.samples.agent_pb2 import Agent
from pystore.samples.common_pb2 import ResourceMetadata
from pystore.samples.session_pb2 import Session


def retype(path: Path, to: str) -> None:
    """Another process replaces kind K's records with ``to`` messages."""
    code = textwrap.dedent(f"""
        from pystore import Store
        from pystore.samples.agent_pb2 import Agent
        from pystore.samples.common_pb2 import ResourceMetadata
        from pystore.samples.session_pb2 import Session
        with Store({str(path)!r}, sync=False) as s:
            s.delete_resources_by_kind("K")
            if {to!r} == "Session":
                s.save_resource("K", "a", Session(agent_id="zz",
                                                  metadata=ResourceMetadata(slug="q")))
            else:
                s.save_resource("K", "a", Agent(model="back"))
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


READS = {
    "get_resource": lambda s: s.get_resource("K", "a", Agent),
    "get_into_instance": lambda s: s.get_resource("K", "a", Agent()),
    "list_resources": lambda s: s.list_resources("K", Agent),
    "iter_resources": lambda s: [r.message for r in s.iter_resources("K", Agent)],
    "collection_get": lambda s: s.collection("K", Agent).get("a"),
    "collection_items": lambda s: s.collection("K", Agent).items(),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_a_kind_retyped_by_another_process_is_not_read_as_the_old_type(
    tmp_path: Path, read: str
) -> None:
    path = tmp_path / "s"
    fn = READS[read]
    with Store(path, sync=False) as s, Store(path, readonly=True) as ro:
        s.save_resource("K", "a", Agent(model="m", instructions="hello"))
        for store in (s, ro):
            fn(store)  # checked and remembered
            with s.transaction() as t:
                assert t.get_resource("K", "a", Agent).model == "m"
        retype(path, "Session")
        for store in (s, ro):
            with pytest.raises(InvalidMessageError, match="Session"):
                fn(store)
            with pytest.raises(InvalidMessageError, match="Session"), store.snapshot() as snap:
                snap.get_resource("K", "a", Agent)
        with pytest.raises(InvalidMessageError, match="Session"), s.transaction() as t:
            t.get_resource("K", "a", Agent)
        assert s.get_resource("K", "a", Session).agent_id == "zz"
        retype(path, "Agent")  # and back: read as Agent again
        for store in (s, ro):
            fn(store)
            assert store.get_resource("K", "a", Agent).model == "back"


def test_a_snapshot_reads_the_type_recorded_as_of_its_revision(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Store(path, sync=False) as s:
        s.save_resource("K", "a", Agent(model="m"))
        s.get_resource("K", "a", Agent)
        with s.snapshot() as snap:
            retype(path, "Session")
            with pytest.raises(InvalidMessageError):
                s.get_resource("K", "a", Agent)
            # the snapshot still sees the Agent it began with
            assert snap.get_resource("K", "a", Agent).model == "m"
            assert snap.list_resources("K", Agent)[0].model == "m"
        assert s.get_resource("K", "a", Session).metadata.slug == "q"


def test_only_a_replaced_type_raises_the_schema_epoch(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with Store(path, sync=False) as s:
        s.save_resource("K", "a", Agent(model="m"))  # first types of kinds: no
        s.save_resource("K", "b", Agent(model="m"))
        s.save_resource("L", "a", Session(metadata=ResourceMetadata(slug="q")))
        s.revision()  # any txn notes the epoch it sees
        assert s._schema_epoch() == 0
        retype(path, "Session")
        s.revision()
        assert s._schema_epoch() == 1
        retype(path, "Session")  # the same type again
        s.revision()
        assert s._schema_epoch() == 1
