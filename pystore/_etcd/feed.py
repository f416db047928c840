"""``changes()`` and ``watch()`` on etcd: an etcd Watch over the store's root.

etcd's own MVCC history is the change log.  A watch from ``after + 1`` over
the key root yields every event since; events on ``R r/<Kind>/<ID>`` become
``put``/``delete`` changes, and the marker ``R c/kind/<Kind>`` that
``delete_resources_by_kind`` puts in its own Txn becomes ONE ``delete_kind``
change, which hides the deletes of that kind at the same revision.  Other
keys (meta, history) make no change.  A start revision that etcd compacted
raises ``CompactedError``: list again, then watch from the list's revision.

``changes()`` reads up to the last revision that changed the store when it
was called: the ``mod_revision`` of ``R c/last``, which every changing Txn
puts (see layout.py).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from ..records import Change, ns_to_datetime
from ..watch import _check_rev, _kinds, _streams
from . import _common as c
from . import etcd_api_pb2 as pb
from .layout import Layout, decode_ns, decode_record

if TYPE_CHECKING:
    from .client import Watch
    from .store import EtcdStore

__all__ = ["Follower", "changes", "follower", "watch"]



class _Converter:
    """etcd events to Changes, one revision at a time."""

    def __init__(
        self, lay: Layout, kinds: list[bytes] | None, streams: list[bytes] | None = None
    ) -> None:
        self.lay = lay
        every = not kinds and not streams  # empty lists filter nothing (as the C core)
        self.kinds = None if every else set(kinds or ())
        self.streams = None if every else set(streams or ())
        # revision -> {(kind, id prefix)}: kind/prefix deletes hide their N deletes
        # (etcd never splits one revision's events over two responses)
        self.dropped: dict[int, set[tuple[bytes, bytes]]] = {}

    def _marker(self, key: bytes) -> tuple[str, bytes, bytes] | None:
        lay = self.lay
        if key.startswith(lay.changes):
            return "delete_kind", key[len(lay.changes) :], b""
        if key.startswith(lay.prefixes):
            kind, _, prefix = key[len(lay.prefixes) :].partition(b"/")
            return "delete_prefix", kind, prefix
        return None

    def _hidden(self, rev: int, kind: bytes, id: bytes) -> bool:
        return any(k == kind and id.startswith(p) for k, p in self.dropped.get(rev, ()))

    def convert(self, events: Iterable[pb.Event]) -> list[Change]:
        lay = self.lay
        evs = list(events)
        out: list[Change] = []
        self.dropped = {}
        for ev in evs:  # markers first: they hide the deletes of their revision
            m = self._marker(ev.kv.key) if ev.type == pb.Event.PUT else None
            if m is not None:
                self.dropped.setdefault(ev.kv.mod_revision, set()).add((m[1], m[2]))
        now: int | None = None
        for ev in evs:
            key, rev = ev.kv.key, ev.kv.mod_revision
            m = self._marker(key)
            if m is not None:
                op, kind, prefix = m
                if ev.type == pb.Event.PUT and (self.kinds is None or kind in self.kinds):
                    out.append(Change(
                        rev, op, kind.decode("utf-8", "replace"),
                        None if op == "delete_kind" else prefix.decode("utf-8", "replace"),
                        ns_to_datetime(decode_ns(ev.kv.value)),
                    ))
                continue
            if key.startswith(lay.events):
                ek = lay.split_event(key)
                if ek is None or ev.type != pb.Event.PUT:
                    continue
                if self.streams is not None and ek[0] not in self.streams:
                    continue
                _, ns = decode_record(ev.kv.value, key)
                out.append(Change(rev, "append", None, None, ns_to_datetime(ns),
                                  ek[0].decode("utf-8", "replace"), ek[1]))
                continue
            split = lay.split(key)
            if split is None:
                continue
            kind, id = split
            if self.kinds is not None and kind not in self.kinds:
                continue
            if ev.type == pb.Event.PUT:
                _, ns = decode_record(ev.kv.value, key)
                out.append(Change(rev, "put", kind.decode("utf-8", "replace"),
                                  id.decode("utf-8", "replace"), ns_to_datetime(ns)))
            elif not self._hidden(rev, kind, id):
                if now is None:
                    now = time.time_ns()  # etcd keeps no time for a delete
                out.append(Change(rev, "delete", kind.decode("utf-8", "replace"),
                                  id.decode("utf-8", "replace"), ns_to_datetime(now)))
        return out


def _open(store: EtcdStore, start: int) -> Watch:
    root = store._layout.root
    return store._client.watch(root, c.prefix_end(root), start_revision=start)


def changes(
    store: EtcdStore, after: int, kinds: Iterable[str] | None,
    streams: Iterable[str] | None, limit: int | None,
) -> list[Change]:
    after = _check_rev(after, "after")
    if limit is not None:
        _check_rev(limit, "limit")
    names = _kinds(kinds)
    snames = _streams(streams)
    last = store._client.get(store._layout.last, serializable=store._serializable)
    upto = last.mod_revision if last is not None else 0
    if after >= upto or limit == 0:
        return []
    # The watch is read through a Follower: it must deliver the changes up to
    # ``upto`` within the store's timeout (a member that lags or stops
    # answering is StoreUnavailableError), where iterating the watch itself
    # waited for them for ever.
    f = Follower(store, _open(store, after + 1), _Converter(store._layout, names, snames),
                 0.0, upto)
    out: list[Change] = []
    try:
        while (batch := f.step(None)) is not None:
            out.extend(ch for ch in batch if ch.revision <= upto)
            if limit is not None and len(out) >= limit:
                return out[:limit]
            if f.upto == 0:  # every change up to ``upto`` handed out
                break
    finally:
        f.close()
    return out


def follower(
    store: EtcdStore, after: int | None, kinds: Iterable[str] | None,
    streams: Iterable[str] | None, timeout: float | None,
) -> Follower:
    """The etcd watch behind ``watch()`` (and ``AsyncStore.watch``), created:
    a compacted ``after`` raises CompactedError here, at the call."""
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
        if timeout < 0:
            raise ValueError("timeout must be >= 0")
    names, snames = _kinds(kinds), _streams(streams)
    start = 0 if after is None else _check_rev(after, "after") + 1
    store._check_usable()
    upto = 0  # the last change committed before the call: not idle time
    if start:  # CompactedError here, at the call (etcd would say so only later)
        lay = store._layout
        resp = store._client.range(lay.last, keys_only=True)
        now = resp.header.revision
        if start <= now:
            store._client.range(lay.last, keys_only=True, revision=start)
        if resp.kvs and resp.kvs[0].mod_revision >= start:
            upto = resp.kvs[0].mod_revision
    w = _open(store, start)
    return Follower(store, w, _Converter(store._layout, names, snames), timeout, upto)


def watch(
    store: EtcdStore, after: int | None, kinds: Iterable[str] | None,
    streams: Iterable[str] | None, timeout: float | None,
) -> Iterator[Change]:
    return _follow(follower(store, after, kinds, streams, timeout))


def _follow(f: Follower) -> Iterator[Change]:
    try:
        while (batch := f.step(None)) is not None:
            if batch:
                yield from batch
                f.idle_since = time.monotonic()
    finally:
        f.close()


class Follower:
    """The changes of one etcd watch, handed out by ``step``.

    A thread pumps the watch's responses into a queue; ``step(cap)`` waits
    for the next at most ``cap`` seconds, so AsyncStore.watch holds a
    worker thread a short step at a time (as on LMDB), never until a change
    comes.  ``timeout`` counts idle time only once the changes committed up
    to ``upto`` (before the call) were handed out, as on LMDB, where the
    first poll reads them at once (``watch(after=r, timeout=0)`` yields the
    backlog); etcd sends them at once too: waiting for them longer than the
    store's timeout is StoreUnavailableError."""

    def __init__(
        self, store: EtcdStore, w: Watch, conv: _Converter, timeout: float | None, upto: int
    ) -> None:
        self.store, self.w, self.conv, self.timeout, self.upto = store, w, conv, timeout, upto
        self.idle_since = time.monotonic()
        self.backlog_until = self.idle_since + store.timeout
        self.ended = False
        self.q: queue.SimpleQueue[pb.WatchResponse | BaseException | None] = queue.SimpleQueue()
        threading.Thread(target=self._pump, name="pystore-etcd-watch", daemon=True).start()

    def _pump(self) -> None:
        try:
            for resp in self.w:
                self.q.put(resp)
        except BaseException as exc:
            self.q.put(exc)
        self.q.put(None)

    def step(self, cap: float | None) -> list[Change] | None:
        """The next changes, waiting at most ``cap`` seconds (None: as long
        as the watch's timeout lets it): [] when none came, None once the
        watch ended (idle ``timeout``, store closed)."""
        if self.ended:
            return None
        now = time.monotonic()
        left: float | None = None
        if self.upto and self.timeout is not None:
            left = self.backlog_until - now
            if left <= 0:
                self.ended = True
                raise c.unavailable(
                    self.store._client.endpoints, self.store.timeout,
                    f"the watch did not deliver the changes up to revision {self.upto}",
                )
        elif self.timeout is not None:
            left = self.idle_since + self.timeout - now
            if left <= 0:
                self.ended = True
                return None
        wait = cap if left is None else (left if cap is None else min(cap, left))
        try:
            item = self.q.get() if wait is None else self.q.get(timeout=max(wait, 0.0))
        except queue.Empty:
            return []
        if item is None or self.store._closed:
            self.ended = True
            return None
        if isinstance(item, BaseException):
            self.ended = True
            raise item
        if self.upto and item.events and item.events[-1].kv.mod_revision >= self.upto:
            self.upto = 0
            self.idle_since = time.monotonic()
        batch = self.conv.convert(item.events)
        if batch:
            self.idle_since = time.monotonic()
        return batch

    def close(self) -> None:
        self.ended = True
        self.w.close()
