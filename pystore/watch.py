"""The change feed: ``Store.revision()``, ``changes()`` and ``watch()``.

Every committed write transaction that changes something logs its changes
in the store's change log (C core, same LMDB transaction), under its
revision.  ``changes()`` reads the log in one read transaction; ``watch()``
replays it from a revision, then follows it live:

* writers of this process (any ``Store`` of the same path) signal a
  per-path condition after each commit, so a waiting watcher wakes at once;
* commits of other processes are seen by polling the last committed
  revision every ``POLL_S`` seconds: one C call over a reused read
  transaction (``ps_revision``), about a microsecond; the log is only read
  when the revision moved.  The cost of waiting is measured in
  docs/performance.md.

A watcher holds no read transaction while it waits, so it never pins old
pages, and it ends (normally) when its store is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._lmdb.events import encode_stream
from ._lmdb.index import check_kind
from ._lmdb.revs import END, env_revision, read_changes
from .errors import StoreClosedError
from .records import Change

if TYPE_CHECKING:
    from .store import Store

__all__ = ["POLL_S", "ChangeFeed", "Signal", "signal_for"]

POLL_S = 0.02  # how often a waiting watcher looks at the revision
_PAGE = 1024  # changes read per read transaction


class Signal:
    """Wakes this process's watchers of one store path after each commit.

    A writer, after its commit: ``generation += 1``, then ``wake()`` only if
    ``waiting`` (the one-call writes inline that; ``notify`` does both).  No
    lock unless someone waits (a commit pays ~0.05 us): a waiter counts
    itself in ``waiting`` before it compares the generation, so either it
    sees the increment or the writer sees it waiting.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self.generation = 0
        # threads in wait() plus asyncio waiters; changed under _cond only
        self.waiting = 0
        self._threads = 0
        # asyncio watchers (AsyncStore.watch): (loop, event) set at each commit
        self._loops: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def notify(self) -> None:
        self.generation += 1
        if self.waiting:
            self.wake()

    def wake(self) -> None:
        """Wake every waiter now (after ``generation`` moved)."""
        if self._threads:
            with self._cond:
                self._cond.notify_all()
        for loop, event in list(self._loops):
            with contextlib.suppress(RuntimeError):  # its loop is closed
                loop.call_soon_threadsafe(event.set)

    def add_async(self, waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        """Set ``waiter``'s event (in its loop) after every commit, until discarded."""
        with self._cond:
            if waiter not in self._loops:
                self._loops.add(waiter)
                self.waiting += 1

    def discard_async(self, waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._cond:
            if waiter in self._loops:
                self._loops.discard(waiter)
                self.waiting -= 1

    def wait(self, generation: int, timeout: float) -> None:
        """Wait up to ``timeout`` unless a commit came after ``generation``."""
        with self._cond:
            self._threads += 1
            self.waiting += 1
            try:
                if self.generation == generation:
                    self._cond.wait(timeout)
            finally:
                self._threads -= 1
                self.waiting -= 1


_signals: dict[str, Signal] = {}
_signals_lock = threading.Lock()


def signal_for(path: str) -> Signal:
    """The signal shared by every Store of ``path`` in this process."""
    key = os.path.realpath(path)
    with _signals_lock:
        sig = _signals.get(key)
        if sig is None:
            sig = _signals[key] = Signal()
        return sig


def _kinds(kinds: Iterable[str] | None) -> list[bytes] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        raise TypeError("kinds must be an iterable of kinds, not a str")
    # a kind as every other method checks it: InvalidKeyError when empty,
    # with '/' or NUL, or longer than a key allows
    return [check_kind(k) for k in kinds]


def _streams(streams: Iterable[str] | None) -> list[bytes] | None:
    if streams is None:
        return None
    if isinstance(streams, str):
        raise TypeError("streams must be an iterable of streams, not a str")
    return [encode_stream(s) for s in streams]


def _check_rev(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be int, not {type(value).__name__}")
    if not 0 <= value < 2**64:
        raise ValueError(f"{what} must be in 0..2**64-1, not {value}")
    return value


class Watcher:
    """Follows the change log from a position; ``poll`` hands out the next changes."""

    def __init__(
        self, store: Store, after: int | None, kinds: Iterable[str] | None,
        streams: Iterable[str] | None = None,
    ) -> None:
        self._store = store
        self._kinds = _kinds(kinds)
        self._streams = _streams(streams)
        start = store.revision() if after is None else _check_rev(after, "after")
        self._rev, self._idx = start, END
        self._signal = store._signal
        with store._reading() as t:  # CompactedError now, not at the first change
            read_changes(t, start, END, None, 1)

    def _read(self) -> list[Change]:
        with self._store._reading() as t:
            batch, self._rev, self._idx = read_changes(
                t, self._rev, self._idx, self._kinds, _PAGE, self._streams
            )
        return batch

    def moved(self) -> bool:
        """Whether ``poll`` has something to read (or the store closed): one
        C call, a microsecond; an asyncio watcher asks it on the loop."""
        if self._store._closed or self._idx != END:
            return True
        try:
            return env_revision(self._store._env) > self._rev
        except StoreClosedError:
            return True

    def poll(self, wait: float) -> list[Change] | None:
        """The next changes (waiting up to ``wait`` seconds for some); [] when none
        came, None once the store is closed."""
        deadline = time.monotonic() + wait
        store = self._store
        while True:
            if store._closed:
                return None
            generation = self._signal.generation
            try:
                # the cheap check first: one C call, no log read unless it moved
                if self._idx != END or env_revision(store._env) > self._rev:
                    batch = self._read()
                    if batch:
                        return batch
            except StoreClosedError:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            self._signal.wait(generation, min(POLL_S, left))


class ChangeFeed:
    """Mixed into ``Store``: revisions and the change log."""

    _env: Any
    _signal: Signal

    def _check_usable(self) -> None:
        raise NotImplementedError

    def revision(self) -> int:
        """The revision of the last committed write; 0 for a new store."""
        self._check_usable()
        return env_revision(self._env)

    def changes(
        self,
        after: int = 0,
        *,
        kinds: Iterable[str] | None = None,
        streams: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[Change]:
        """Committed changes with revision > ``after``, oldest first, at most
        ``limit``.  With neither ``kinds`` nor ``streams`` every change; else
        the resource changes of ``kinds`` and the appends to ``streams``
        (both: the union).  CompactedError if the log no longer holds them."""
        rev, idx = _check_rev(after, "after"), END
        if limit is not None:
            _check_rev(limit, "limit")
        names = _kinds(kinds)
        snames = _streams(streams)
        out: list[Change] = []
        with self._reading() as t:  # type: ignore[attr-defined]
            while limit is None or len(out) < limit:
                want = _PAGE if limit is None else min(_PAGE, limit - len(out))
                batch, rev, idx = read_changes(t, rev, idx, names, want, snames)
                out.extend(batch)
                if idx == END:
                    break
        return out

    def watch(
        self,
        after: int | None = None,
        *,
        kinds: Iterable[str] | None = None,
        streams: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> Iterator[Change]:
        """Every change after ``after`` (None: from now), then each new one as it
        is committed, by this or another process.  Ends when ``timeout`` seconds
        pass with no new change, or when the store is closed."""
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
            if timeout < 0:
                raise ValueError("timeout must be >= 0")
        watcher = Watcher(self, after, kinds, streams)  # type: ignore[arg-type]
        return _follow(watcher, timeout)


def _follow(watcher: Watcher, timeout: float | None) -> Iterator[Change]:
    idle_since = time.monotonic()
    while True:
        wait = 1.0 if timeout is None else max(0.0, idle_since + timeout - time.monotonic())
        batch = watcher.poll(wait)
        if batch is None:
            return
        if batch:
            yield from batch
            idle_since = time.monotonic()
        elif timeout is not None and time.monotonic() - idle_since >= timeout:
            return
