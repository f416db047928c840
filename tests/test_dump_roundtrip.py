"""Property: whatever a store holds, dump -> load -> dump gives the same
lines (a kept version's ``revision`` is informational), and a second load of
the same dump changes nothing."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pystore import Store, UniqueViolationError
from pystore.cli import dump as dump_mod
from pystore.samples.session_pb2 import Session

KINDS = st.sampled_from(["A", "B"])
IDS = st.sampled_from(["x", "y", "z"])
VALUES = st.sampled_from(["", "p", "q"])
OPS = st.one_of(
    st.tuples(st.just("save"), KINDS, IDS, VALUES),
    st.tuples(st.just("delete"), KINDS, IDS),
    st.tuples(st.just("keep"), KINDS, st.integers(0, 3)),
    st.tuples(st.just("clean"), KINDS),
    st.tuples(st.just("index"), KINDS, st.booleans()),
    st.tuples(st.just("append"), st.sampled_from(["e", "f"]), st.integers(1, 6)),
    st.tuples(st.just("forget"), st.sampled_from(["e", "f"]), st.none() | st.integers(0, 8)),
)


def _apply(s: Store, op: tuple[Any, ...]) -> None:
    what = op[0]
    try:
        if what == "save":
            s.save_resource(op[1], op[2], Session(agent_id=op[3], subject=op[2]))
        elif what == "delete":
            if s.exists(op[1], op[2]):
                s.delete_resource(op[1], op[2])
        elif what == "keep":
            s.set_history(op[1], op[2])
        elif what == "clean":
            s.delete_resources_by_kind(op[1])
        elif what == "index":
            if not any(i.kind == op[1] and i.name == "ag" for i in s.indexes()):
                s.create_index(op[1], "ag", field="agent_id", msg_type=Session, unique=op[2])
        elif what == "append":
            s.append_events(op[1], [(op[2], Session(subject=str(op[2])))])
        else:
            s.delete_events(op[1], upto=op[2])
    except UniqueViolationError:
        pass


def _dump(s: Store) -> list[str]:
    out = io.StringIO()
    dump_mod.dump(s, out, progress=False)
    lines = []
    for text in out.getvalue().splitlines():
        obj = json.loads(text)
        if "history" in obj:
            obj["history"].pop("revision")
        lines.append(json.dumps(obj, sort_keys=True))
    return lines


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OPS, max_size=25))
def test_dump_load_dump_is_the_same(ops: list[tuple[Any, ...]]) -> None:
    root = Path(tempfile.mkdtemp(prefix="pystore-rt-"))
    try:
        with Store(root / "a", sync=False) as a, Store(root / "b", sync=False) as b:
            for op in ops:
                _apply(a, op)
            text = io.StringIO()
            dump_mod.dump(a, text, progress=False)
            first = _dump(a)
            dump_mod.load(b, io.StringIO(text.getvalue()))
            assert _dump(b) == first
            dump_mod.load(b, io.StringIO(text.getvalue()))
            assert _dump(b) == first
    finally:
        shutil.rmtree(root)
