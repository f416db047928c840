"""Writers killed with SIGKILL at random moments lose nothing they acknowledged.

Each round starts a writer subprocess (tests/workers.py) on the same store,
lets it acknowledge a random number of operations, waits a random fraction
of a commit more, and SIGKILLs it.  Then the store is reopened: it must open
cleanly, hold every acknowledged write intact, hold each transaction all or
nothing, and keep working.  Rounds and seed: PYSTORE_CRASH_ROUNDS (default
15 per mode), PYSTORE_CRASH_SEED.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from workers import BATCH, DOOMED, TXN_SIZE, Child, payload

from pystore import NotFoundError, Store
from pystore.samples.agent_pb2 import Agent

ROUNDS = int(os.environ.get("PYSTORE_CRASH_ROUNDS", "15"))
SEED = int(os.environ.get("PYSTORE_CRASH_SEED", "20261126"))


def _kill_at_random(child: Child, rng: random.Random, max_acks: int) -> list[str]:
    """Read a random number of lines, sleep up to ~a commit, SIGKILL; all lines read."""
    assert child.line() == "ready", child.finish() or child.stderr
    lines = []
    for _ in range(rng.randint(1, max_acks)):
        line = child.line()
        if not line:
            break
        lines.append(line)
    time.sleep(rng.uniform(0, 0.004))
    lines += child.kill()
    assert child.proc.returncode == -9, child.stderr
    return lines


def _check_works(store: Store, tag: str) -> None:
    store.save_resource("AfterCrash", tag, payload("AfterCrash", tag))
    assert store.get_resource("AfterCrash", tag, Agent) == payload("AfterCrash", tag)


def _rounds(
    tmp_path: Path, mode: str, max_acks: int, sync: str = "sync"
) -> list[tuple[int, list[str]]]:
    """Run the killed rounds of one writer mode; (start index, acked lines) per round."""
    rng = random.Random(f"{SEED}-{mode}-{sync}")
    path = str(tmp_path / "store")
    out = []
    start = 0
    for r in range(ROUNDS):
        child = Child(mode, path, str(start), sync)
        out.append((start, _kill_at_random(child, rng, max_acks)))
        # A reopen after every kill: opens cleanly and keeps working.
        with Store(path) as store:
            _check_works(store, f"{mode}-{r}")
        start += 1_000_000
    return out


@pytest.mark.parametrize("sync", ["sync", "nosync"])
def test_save_resource_survives_sigkill(tmp_path: Path, sync: str) -> None:
    rounds = _rounds(tmp_path, "save", 40, sync)
    acked = [int(x) for _, lines in rounds for x in lines]
    assert len(acked) >= ROUNDS
    with Store(tmp_path / "store") as store:
        for i in acked:
            x = f"c{i:07d}"
            assert store.get_resource("Crash", x, Agent) == payload("Crash", x)
        # Whatever else is there (the save in flight at the kill) is intact too.
        for rec in store.iter_resources("Crash"):
            got = Agent()
            got.ParseFromString(rec.data)
            assert got == payload("Crash", rec.id)
        extra = store.count("Crash") - len(acked)
        assert extra <= ROUNDS
    print(f"crash-stats save/{sync}: rounds={ROUNDS} acked={len(acked)} in-flight-kept={extra}")


def test_save_resources_all_or_nothing_under_sigkill(tmp_path: Path) -> None:
    rounds = _rounds(tmp_path, "many", 15)
    acked = {int(x) for _, lines in rounds for x in lines}
    with Store(tmp_path / "store") as store:
        batches: dict[str, list[str]] = {}
        for rec in store.iter_resources("Batch"):
            got = Agent()
            got.ParseFromString(rec.data)
            assert got == payload("Batch", rec.id)
            batches.setdefault(rec.id.split("-")[0], []).append(rec.id)
        for i in acked:
            assert len(batches.pop(f"b{i:07d}")) == BATCH
        # At most one unacknowledged batch per kill, and it is whole.
        assert len(batches) <= ROUNDS
        assert all(len(ids) == BATCH for ids in batches.values())
    print(f"crash-stats many: rounds={ROUNDS} acked={len(acked)} in-flight-kept={len(batches)}")


def test_transaction_all_or_nothing_under_sigkill(tmp_path: Path) -> None:
    rounds = _rounds(tmp_path, "txn", 15)
    with Store(tmp_path / "store") as store:
        groups: dict[str, int] = {}
        for rec in store.iter_resources("Txn"):
            got = Agent()
            got.ParseFromString(rec.data)
            assert got == payload("Txn", rec.id)
            key = rec.id.split("-")[0]
            groups[key] = groups.get(key, 0) + 1
        assert set(groups.values()) <= {TXN_SIZE}
        for start, lines in rounds:
            for x in lines:
                assert groups[f"t{int(x):07d}"] == TXN_SIZE
            # The counter written in the same transactions agrees with the data.
            in_round = [int(k[1:]) for k in groups if start <= int(k[1:]) < start + 1_000_000]
            if lines:
                assert max(in_round) >= int(lines[-1])
        last = int(store.get_resource("TxnCounter", "last", Agent).model)
        assert f"t{last:07d}" in groups
        assert last == max(int(k[1:]) for k in groups)
    acked = sum(len(lines) for _, lines in rounds)
    print(f"crash-stats txn: rounds={ROUNDS} acked={acked} whole-groups={len(groups)}")


def test_delete_resources_by_kind_all_or_nothing_under_sigkill(tmp_path: Path) -> None:
    rounds = _rounds(tmp_path, "delkind", 6)
    with Store(tmp_path / "store") as store:
        kills_mid_delete = 0
        for start, lines in rounds:
            assert all(len(x.split()) in (2, 3) for x in lines), lines
            filled = {int(x.split()[1]) for x in lines if x.startswith("filled")}
            deleted = {int(x.split()[1]) for x in lines if x.startswith("deleted")}
            assert all(int(x.split()[2]) == DOOMED for x in lines if x.startswith("deleted"))
            for i in range(start, max(filled | {start}) + 2):
                n = store.count(f"Doomed{i:05d}")
                if i in deleted:
                    assert n == 0
                else:
                    assert n in (0, DOOMED)
                    if i in filled and n == DOOMED:
                        kills_mid_delete += 1
                        rec = store.get_record(f"Doomed{i:05d}", "d0123")
                        got = Agent()
                        got.ParseFromString(rec.data)
                        assert got == payload(f"Doomed{i:05d}", "d0123")
        with pytest.raises(NotFoundError):
            store.get_record("Doomed99999", "d0000")
        assert kills_mid_delete <= ROUNDS
    deletes = sum(1 for _, lines in rounds for x in lines if x.startswith("deleted"))
    print(f"crash-stats delkind: rounds={ROUNDS} acked-deletes={deletes} "
          f"filled-kind-kept-whole={kills_mid_delete}")
