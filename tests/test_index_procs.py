"""Indexes across processes: a writer opened before the index existed keeps
it, and writers killed with SIGKILL mid-batch leave every index consistent."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from index_workers import Child, payload

from pystore import Store
from pystore._lmdb.indexcheck import check_indexes
from pystore.samples.session_pb2 import Session


def _problems(store: Store) -> list[str]:
    problems: list[str] = store._run(False, check_indexes)
    return problems


def _scan_answer(store: Store, agent: str) -> list[str]:
    return [r.id for r in store.iter_resources("Session")
            if Session.FromString(r.data).agent_id == agent]


def test_index_created_while_another_process_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "store")
    with Store(path, sync=False) as st:
        st.save_resource("Session", "seed", payload(10**6))
    child = Child("write", path, "0")
    try:
        assert child.line() == "ready"
        for _ in range(10):
            assert child.line()
        with Store(path, sync=False) as st:
            st.create_index("Session", "agent", field="agent_id", msg_type=Session)
            st.create_index("Session", "execs", field="execution_ids", msg_type=Session)
            st.create_index("Session", "ctx", field="context", msg_type=Session)
        for _ in range(40):  # the child goes on writing under the new indexes
            assert child.line(), "writer died"
    except BaseException as exc:
        exc.add_note(f"the writer's stderr:\n{child.kill()}")
        raise
    err = child.kill()
    assert "Traceback" not in err, err
    with Store(path, readonly=True) as st:
        assert _problems(st) == []
        assert st.count("Session") > 100
        for a in ("agent-0", "agent-5", "agent-12"):
            assert st.find_ids("Session", "agent", a) == _scan_answer(st, a)


def test_sigkill_mid_batch_leaves_indexes_consistent(tmp_path: Path) -> None:
    path = str(tmp_path / "store")
    with Store(path, sync=False) as st:
        st.create_index("Session", "agent", field="agent_id", msg_type=Session)
        st.create_index("Session", "execs", field="execution_ids", msg_type=Session)
        st.create_index("Session", "slug", field="metadata.slug", msg_type=Session, unique=True)
    rng = random.Random(20261206)
    start = 0
    for _ in range(6):
        child = Child("crash", path, str(start))
        assert child.line() == "ready"
        for _ in range(rng.randint(1, 12)):
            assert child.line()
        time.sleep(rng.uniform(0, 0.004))
        child.kill()
        assert child.proc.returncode == -9
        start += 100_000
        with Store(path, sync=False) as st:
            assert _problems(st) == []
            assert st.find_ids("Session", "agent", "agent-3") == _scan_answer(st, "agent-3")


_OTHER = """
import sys
from pystore import Store
from pystore.samples.session_pb2 import Session
with Store(sys.argv[1], sync=False) as st:
    if sys.argv[2] == "create":
        st.create_index("Session", "agent", field="agent_id", msg_type=Session)
    else:
        st.drop_index("Session", "agent")
"""


def _other(path: str, what: str) -> None:
    subprocess.run([sys.executable, "-c", _OTHER, path, what], check=True, timeout=60)


def test_index_changed_by_another_process_between_two_saves(tmp_path: Path) -> None:
    """A writer keeps its index definitions from commit to commit; another
    process's create or drop in between is seen at its next write."""
    path = str(tmp_path / "store")
    with Store(path, sync=False) as st:
        st.save_resource("Session", "a", payload(1))  # this process's view: no index
        _other(path, "create")
        st.save_resource("Session", "b", payload(2))
        st.save_resource("Session", "a", payload(2))  # moves a's entry
        assert st.find_ids("Session", "agent", "agent-2") == ["a", "b"]
        assert st.find_ids("Session", "agent", "agent-1") == []
        _other(path, "drop")
        st.save_resource("Session", "c", payload(3))  # no entry for a dropped index
        _other(path, "create")  # backfilled from the records, c included
        st.save_resource("Session", "c", payload(4))
        st.delete_resource("Session", "b")
        assert st.find_ids("Session", "agent", "agent-4") == ["c"]
        assert st.find_ids("Session", "agent", "agent-2") == ["a"]
        assert _problems(st) == []
