"""Issue 8, items 4, 6, 8: damaged sizes, symlinks, a map grown at open.

Damaged files are read in child processes, so a crash (a signal) fails
the test instead of killing the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import pystore
from pystore import Store
from pystore.samples.agent_pb2 import Agent

PAGE = 4096


def _child(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=timeout)


def _leaf_nodes(data: bytes, key: bytes) -> list[int]:
    """Offsets of the leaf nodes holding ``key`` (LMDB's MDB_node: u16 lo,
    u16 hi of the value size, u16 flags, u16 key size, then the key)."""
    out = []
    at = data.find(key)
    while at >= 0:
        node = at - 8
        page = node - node % PAGE
        if (node >= page + 16 and int.from_bytes(data[node + 6 : node + 8], "little") == len(key)
                and data[page + 10] & 0x02):  # P_LEAF
            out.append(node)
        at = data.find(key, at + 1)
    return out


READERS = """
import sys, pystore
from pystore.samples.agent_pb2 import Agent
path, which = sys.argv[1], sys.argv[2]
s = pystore.Store(path, readonly=True)
calls = {
    "get": lambda: s.get_resource("Agent", which, Agent),
    "bytes": lambda: s.get_bytes("Agent", which),
    "record": lambda: s.get_record("Agent", which),
    "list": lambda: s.list_resources("Agent", Agent),
    "list-bytes": lambda: s.list_resources("Agent"),
    "iter": lambda: list(s.iter_resources("Agent")),
}
for name, call in calls.items():
    try:
        call()
        print(name, "ok")
    except pystore.CorruptionError as exc:
        print(name, "CorruptionError", "Agent/" + which in str(exc))
s.close()
w = pystore.Store(path)
for name, call in (("save", lambda: w.save_resource("Agent", which, Agent())),
                   ("delete", lambda: w.delete_resource("Agent", which))):
    try:
        call()
        print(name, "ok")
    except pystore.CorruptionError as exc:
        print(name, "CorruptionError", "Agent/" + which in str(exc))
w.close()
"""


@pytest.mark.parametrize("which", ["small", "large"])
@pytest.mark.parametrize("flip", [0x80, 0x01])
def test_damaged_value_size_is_corruption_never_a_crash(
    tmp_path: Path, which: str, flip: int
) -> None:
    path = tmp_path / "store"
    with Store(path) as s:
        for i in range(20):
            s.save_resource("Agent", f"n{i:02d}", Agent(model=str(i)))
        s.save_resource("Agent", "small", Agent(model="s" * 100))
        s.save_resource("Agent", "large", Agent(instructions="L" * 50_000))  # overflow pages
    data = bytearray((path / "data.mdb").read_bytes())
    nodes = _leaf_nodes(bytes(data), f"Agent/{which}".encode())
    assert nodes
    for node in nodes:
        data[node + 3] ^= flip  # high byte of the stored size: +2^31 or +2^24
    (path / "data.mdb").write_bytes(bytes(data))
    r = _child(READERS, str(path), which)
    assert r.returncode == 0, f"reader died: {r.returncode} {r.stderr[-2000:]}"
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    for name in ("get", "bytes", "record", "list", "list-bytes", "iter", "save", "delete"):
        assert lines[name] == "CorruptionError True", (name, r.stdout)
    v = subprocess.run([sys.executable, "-m", "pystore", "verify", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert v.returncode == 1, (v.returncode, v.stdout, v.stderr)
    assert f"BAD Agent/{which}: stored size runs outside its pages" in v.stdout
    assert "21 record(s)" in v.stdout or "22 record(s)" in v.stdout


# -- item 6: symlinks and loose directories ----------------------------------


@pytest.mark.parametrize("name", ["lock.mdb", "data.mdb", "write.lock"])
@pytest.mark.parametrize("readonly", [False, True])
def test_symlinked_store_file_is_refused_and_target_untouched(
    tmp_path: Path, name: str, readonly: bool
) -> None:
    path = tmp_path / "store"
    with Store(path) as s:
        s.save_resource("Agent", "a", Agent())
    target = tmp_path / "victim"
    target.write_bytes(b"precious")
    os.chmod(target, 0o644)
    (path / name).unlink()
    (path / name).symlink_to(target)
    with pytest.raises(pystore.UnsafePathError, match="symlink"):
        Store(path, readonly=readonly)
    assert target.read_bytes() == b"precious"
    assert os.stat(target).st_mode & 0o777 == 0o644


def test_group_writable_directory_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "store"
    path.mkdir()
    os.chmod(path, 0o777)
    with Store(path) as s:
        s.save_resource("Agent", "a", Agent())
    assert os.stat(path).st_mode & 0o777 == 0o700


def test_writable_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the directory to another user")
    path = tmp_path / "store"
    path.mkdir()
    os.chown(path, 65534, 65534)
    os.chmod(path, 0o777)
    with pytest.raises(pystore.UnsafePathError, match="writable by other users"):
        Store(path)
    assert not (path / "data.mdb").exists()


# -- item 8: opening while another process grows the map ---------------------

GROWER = """
import sys, time
import pystore
from pystore.samples.agent_pb2 import Agent
path, seconds = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + seconds
i = 0
print("ready", flush=True)
while time.monotonic() < end:
    # A small map_size at every open: LMDB takes the size of the data, the
    # next write grows it (MAP_FULL, doubled), so the map size recorded in
    # the file changes on nearly every round.
    with pystore.Store(path, sync=False, map_size=64 << 10) as s:
        i += 1
        s.save_resource("Agent", f"g{i}", Agent(instructions="g" * 100_000))
print("rounds", i, flush=True)
"""


def test_open_while_another_process_grows_the_map(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store(path, sync=False, map_size=64 << 10) as s:
        s.save_resource("Agent", "seed", Agent())
    g = subprocess.Popen([sys.executable, "-c", GROWER, str(path), "4"],
                         stdout=subprocess.PIPE, text=True)
    assert g.stdout is not None
    assert g.stdout.readline().strip() == "ready"
    opens, errors = 0, []
    end = time.monotonic() + 3.5
    while time.monotonic() < end:
        for readonly in (False, True):
            try:
                with Store(path, readonly=readonly, sync=False) as s:
                    s.count("Agent")
                opens += 1
            except pystore.StoreError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    out, _ = g.communicate(timeout=60)
    assert g.returncode == 0
    assert errors == [], (len(errors), errors[:3])
    assert opens > 20 and int(out.split()[1]) > 20
