"""verify names every record whose header is damaged, wherever it sits:
ids that are prefixes of each other, multi-byte UTF-8, runs of damaged
neighbours (random stores with fixed seeds)."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

import pystore
from pystore.cli.verify import header_problem, verify
from pystore.samples import session_pb2

WHY = "damaged record header (format version 127, expected 2)"
ALPHABET = ["a", "b", "z", "0", "9", "-", "\u00e9", "\u00fc", "\u4e2d", "~"]


def _marker(i: int) -> bytes:
    return f"<<marker-{i:04d}>>".encode()


def _damage(data: Path, marker: bytes) -> None:
    raw = bytearray(data.read_bytes())
    at = raw.find(marker)
    assert at >= 0
    while at >= 0:  # every copy, LMDB keeps old page copies in free pages
        header = at - 2 - 20  # field tag + length, then the 20-byte record header
        assert raw[header] == 2
        raw[header] = 0x7F
        at = raw.find(marker, at + 1)
    data.write_bytes(bytes(raw))


@pytest.mark.parametrize("seed", range(8))
def test_every_damaged_header_is_named(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    ids: set[str] = set()
    while len(ids) < 40:
        ids.add("".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(1, 4))))
    order = sorted(ids, key=lambda s: s.encode())
    path = tmp_path / "store"
    with pystore.Store(path, sync=False) as s:
        s.save_resources("K", [(id, session_pb2.Session(agent_id=_marker(n).decode()))
                               for n, id in enumerate(order)])
        s.save_resource("Other", "x", session_pb2.Session())
    damaged = sorted(rnd.sample(range(len(order)), rnd.randint(1, 12)))
    if seed == 0:
        damaged = list(range(len(order)))  # all of them
    for n in damaged:
        _damage(path / "data.mdb", _marker(n))
    out = io.StringIO()
    with pystore.Store(path, readonly=True) as s:
        checked, problems = verify(s, out)
    assert out.getvalue().splitlines() == [f"BAD K/{order[n]}: {WHY}" for n in damaged]
    assert (checked, problems) == (len(order) + 1, len(damaged))


def test_damage_in_fixed_width_ids(tmp_path: Path) -> None:
    order = [f"agt-{i:06d}" for i in range(0, 3000, 7)]
    path = tmp_path / "store"
    with pystore.Store(path, sync=False) as s:
        s.save_resources("Agent", [(id, session_pb2.Session(agent_id=_marker(n).decode()))
                                   for n, id in enumerate(order)])
    damaged = [0, 5, 200, 201, 202, 204, len(order) - 1]  # first, alone, a run, last
    for n in damaged:
        _damage(path / "data.mdb", _marker(n))
    out = io.StringIO()
    with pystore.Store(path, readonly=True) as s:
        assert verify(s, out) == (len(order), len(damaged))
    assert out.getvalue().splitlines() == [f"BAD Agent/{order[n]}: {WHY}" for n in damaged]


def test_short_value_and_bad_payload_are_named(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with pystore.Store(path, sync=False) as s:
        s.save_resource("S", "a", session_pb2.Session(agent_id="ok"))
        s._put_raw("S", "b", b"\x0a\x05ab", 1)  # length past the end
        s.save_resource("S", "c", session_pb2.Session(agent_id="ok"))
    out = io.StringIO()
    with pystore.Store(path, readonly=True) as s:
        assert verify(s, out) == (3, 1)
    assert out.getvalue().startswith("BAD S/b: payload does not decode (its schema "
                                      "pystore.samples.Session)")
    assert header_problem(b"\x02" * 19).startswith("damaged record header (19 bytes")
    assert header_problem(b"\x02" + b"\x00" * 19) == ""


def test_damaged_btree_pages_are_reported_never_a_crash(tmp_path: Path) -> None:
    """Random bytes over B-tree pages: LMDB, which follows page numbers
    without checksums, may skip the records under them or abort the reader.
    `pystore verify` (a child process reads the store) says so and exits 1,
    whichever happens: a walk that finds fewer records than the resources
    table's own count is a problem, and a reader killed by a signal is
    reported as damage in one line."""
    import subprocess
    import sys

    from pystore.samples.agent_pb2 import Agent

    cli = str(Path(sys.executable).parent / "pystore")
    outcomes = set()
    for seed in range(6):
        path = tmp_path / f"s{seed}"
        with pystore.Store(path) as s:
            s.save_resources("A", [(f"a{i:05d}", Agent(model=f"m{i}", instructions="x" * 300))
                                   for i in range(3000)])
            assert s.stats().entries == 3000
        rnd = random.Random(seed)
        with open(path / "data.mdb", "r+b") as f:
            for page in range(20, 51):
                f.seek(page * 4096)
                f.write(rnd.randbytes(4096))
        r = subprocess.run([cli, "verify", str(path)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 1, (seed, r.returncode, r.stdout[-500:], r.stderr[-500:])
        if "BAD " in r.stdout:  # the walk went on and named what it met
            outcomes.add("reported")
            assert "problem" in r.stdout, (seed, r.stdout[-500:])
        else:  # stopped: LMDB's error, or the reader killed by a signal
            outcomes.add("killed" if "killed the reader" in r.stderr else "error")
            last = r.stderr.strip().splitlines()[-1]
            assert last.startswith("pystore: error: ") and "damaged" in last, (seed, r.stderr)
    assert outcomes  # (which ones depends on where the pages fall)
