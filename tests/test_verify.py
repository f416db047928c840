"""verify names every record whose header is damaged, wherever it sits.

The core never hands out the key of a damaged record, so verify finds it by
search; these stores mix ids that are prefixes of each other, multi-byte
UTF-8 and runs of damaged neighbours, with a fixed random seed.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

import pytest

import pystore
from pystore._verify import verify
from pystore.samples import session_pb2

ALPHABET = ["a", "b", "z", "0", "9", "-", "\u00e9", "\u00fc", "\u4e2d", "~"]


def _marker(i: int) -> bytes:
    return f"<<marker-{i:04d}>>".encode()


def _damage(data: Path, marker: bytes) -> None:
    raw = bytearray(data.read_bytes())
    at = raw.find(marker)
    assert at >= 0
    while at >= 0:  # every copy, LMDB keeps old page copies in free pages
        header = at - 2 - 12  # field tag + length, then the 12-byte record header
        assert raw[header] == 1
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
    lines = out.getvalue().splitlines()
    named = [line[len("BAD K/"):-len(": damaged record header")] for line in lines
             if line.endswith(": damaged record header")]
    hidden = [int(m.group(1)) for line in lines
              if (m := re.fullmatch(r"BAD K: (\d+) record\(s\) not reached .*", line))]
    assert len(named) + len(hidden) == len(lines)  # nothing else reported
    # No false alarm, and every record accounted for: read and checked, or
    # named as damaged, or counted as not reached (damaged neighbours can
    # hide one another from the search, and the good records between them).
    assert set(named) <= {order[n] for n in damaged}
    assert len(named) + sum(hidden) >= len(damaged)
    assert checked == len(order) + 1 - sum(hidden)
    assert problems == len(lines) >= 1


def test_damage_in_fixed_width_ids(tmp_path: Path) -> None:
    order = [f"agt-{i:06d}" for i in range(0, 3000, 7)]
    path = tmp_path / "store"
    with pystore.Store(path, sync=False) as s:
        s.save_resources("Agent", [(id, session_pb2.Session(agent_id=_marker(n).decode()))
                                   for n, id in enumerate(order)])
    alone = [0, 5, len(order) - 1]  # the first, one among good ones, the last
    for n in alone:
        _damage(path / "data.mdb", _marker(n))
    out = io.StringIO()
    with pystore.Store(path, readonly=True) as s:
        assert verify(s, out) == (len(order), len(alone))
    assert out.getvalue().splitlines() == [
        f"BAD Agent/{order[n]}: damaged record header" for n in alone]
    for n in (200, 202, 203):  # close together: may hide one another, never lost
        _damage(path / "data.mdb", _marker(n))
    out = io.StringIO()
    with pystore.Store(path, readonly=True) as s:
        checked, problems = verify(s, out)
    lines = out.getvalue().splitlines()
    named = [line for line in lines if line.endswith("damaged record header")]
    hidden = [int(m.group(1)) for line in lines
              if (m := re.fullmatch(r"BAD Agent: (\d+) record\(s\) not reached .*", line))]
    assert named[:2] == lines[:2] == [f"BAD Agent/{order[n]}: damaged record header"
                                      for n in alone[:2]]
    assert len(named) - 3 + sum(hidden) >= 3 and checked == len(order) - sum(hidden)
    assert problems == len(lines)
