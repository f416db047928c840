"""Ctrl-C reaches a thread that waits for another thread's write transaction.

A write waits while another thread of the process holds the store's write
transaction (a ``transaction()`` block, a long batch).  It waited in one
uninterruptible lock call: a KeyboardInterrupt was raised only once the
other thread's transaction ended (5 s later in this file's first test,
for ever if it never ends).  Now the wait is in slices of
``PS_TXN_SLICE_MS``, each returning to Python, so the interrupt lands
within a slice.  Real threads, a real SIGINT, a real store.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pystore import Store
from pystore.samples.agent_pb2 import Agent

HOLD_S = 10.0  # how long the other thread would hold its transaction


class Holder:
    """A thread holding a write transaction of ``store`` until released."""

    def __init__(self, store: Store) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(store,))
        self.thread.start()
        assert self.held.wait(10)

    def _run(self, store: Store) -> None:
        with store.transaction() as t:
            t.save_resource("A", "held", Agent(model="held"))
            self.held.set()
            self.release.wait(HOLD_S)

    def stop(self) -> None:
        self.release.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def _write(store: Store, how: str, id: str) -> None:
    if how == "save":
        store.save_resource("A", id, Agent(model=id))
    elif how == "batch":
        store.save_resources("A", [(id, Agent(model=id))])
    elif how == "delete_kind":
        store.delete_resources_by_kind("B")
    else:
        with store.transaction() as t:
            t.save_resource("A", id, Agent(model=id))


WRITES = ["save", "batch", "delete_kind", "transaction"]


def _held_store(tmp_path: Path, sync: bool) -> tuple[Store, Holder]:
    """A store with kinds A and B typed (the one-call paths take them),
    whose write transaction another thread holds."""
    store = Store(tmp_path / "s", sync=sync)
    store.save_resource("A", "seed", Agent())
    store.save_resource("B", "b", Agent())
    return store, Holder(store)


@pytest.mark.parametrize("sync", [False, True], ids=["one-call", "durable"])
@pytest.mark.parametrize("how", WRITES)
def test_ctrl_c_interrupts_a_write_waiting_for_another_threads_transaction(
    tmp_path: Path, sync: bool, how: str
) -> None:
    store, holder = _held_store(tmp_path, sync)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    started = time.monotonic()
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            _write(store, how, "waiter")
        waited = time.monotonic() - started
    finally:
        timer.cancel()
        holder.stop()
    assert waited < 3.0, f"Ctrl-C landed after {waited:.1f} s (the holder's whole transaction)"
    # nothing leaked: the holder committed, the store takes writes and closes
    assert store.get_resource("A", "held", Agent).model == "held"
    assert store.count("A") == 2  # seed and held: the interrupted write did not happen
    _write(store, how, "after")
    store.close()


@pytest.mark.parametrize("sync", [False, True], ids=["one-call", "durable"])
@pytest.mark.parametrize("how", WRITES)
def test_a_write_waits_in_slices_for_as_long_as_the_other_transaction(
    tmp_path: Path, sync: bool, how: str
) -> None:
    store, holder = _held_store(tmp_path, sync)
    done: dict[str, Any] = {}

    def waiter() -> None:
        t0 = time.monotonic()
        _write(store, how, "waiter")
        done["after"] = time.monotonic() - t0

    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.3)  # ~15 slices
    assert "after" not in done  # still waiting for the holder
    holder.stop()
    th.join(30)
    assert done["after"] >= 0.25
    assert store.get_resource("A", "held", Agent).model == "held"
    if how == "delete_kind":
        assert store.count("B") == 0
    else:
        assert store.get_resource("A", "waiter", Agent).model == "waiter"
    store.close()
