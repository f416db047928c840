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
from ..watch import _check_rev, _kinds
from . import _common as c
from . import etcd_api_pb2 as pb
from .layout import Layout, decode_ns, decode_record

if TYPE_CHECKING:
    from .client import Watch
    from .store import EtcdStore

__all__ = ["changes", "watch"]



class _Converter:
    """etcd events to Changes, one revision at a time."""

    def __init__(self, lay: Layout, kinds: list[bytes] | None) -> None:
        self.lay = lay
        self.kinds = None if kinds is None else set(kinds)
        self.dropped: tuple[int, set[bytes]] = (0, set())

    def convert(self, events: Iterable[pb.Event]) -> list[Change]:
        lay = self.lay
        evs = list(events)
        out: list[Change] = []
        # markers first: a delete_kind hides the deletes of its kind at its revision
        for ev in evs:
            if ev.kv.key.startswith(lay.changes) and ev.type == pb.Event.PUT:
                rev = ev.kv.mod_revision
                kind = ev.kv.key[len(lay.changes) :]
                if self.dropped[0] != rev:
                    self.dropped = (rev, set())
                self.dropped[1].add(kind)
        now: int | None = None
        for ev in evs:
            key, rev = ev.kv.key, ev.kv.mod_revision
            if key.startswith(lay.changes):
                if ev.type != pb.Event.PUT:
                    continue
                kind = key[len(lay.changes) :]
                if self.kinds is None or kind in self.kinds:
                    out.append(Change(rev, "delete_kind", kind.decode("utf-8", "replace"), None,
                                      ns_to_datetime(decode_ns(ev.kv.value))))
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
            else:
                if self.dropped[0] == rev and kind in self.dropped[1]:
                    continue
                if now is None:
                    now = time.time_ns()  # etcd keeps no time for a delete
                out.append(Change(rev, "delete", kind.decode("utf-8", "replace"),
                                  id.decode("utf-8", "replace"), ns_to_datetime(now)))
        return out


def _open(store: EtcdStore, start: int) -> Watch:
    root = store._layout.root
    return store._client.watch(root, c.prefix_end(root), start_revision=start)


def changes(
    store: EtcdStore, after: int, kinds: Iterable[str] | None, limit: int | None
) -> list[Change]:
    after = _check_rev(after, "after")
    if limit is not None:
        _check_rev(limit, "limit")
    names = _kinds(kinds)
    last = store._client.get(store._layout.last, serializable=store._serializable)
    upto = last.mod_revision if last is not None else 0
    if after >= upto or limit == 0:
        return []
    conv = _Converter(store._layout, names)
    out: list[Change] = []
    with _open(store, after + 1) as w:
        for resp in w:
            evs = [e for e in resp.events if e.kv.mod_revision <= upto]
            out.extend(conv.convert(evs))
            if limit is not None and len(out) >= limit:
                return out[:limit]
            if len(evs) < len(resp.events) or (evs and evs[-1].kv.mod_revision >= upto):
                return out
    return out


def watch(
    store: EtcdStore, after: int | None, kinds: Iterable[str] | None, timeout: float | None
) -> Iterator[Change]:
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
        if timeout < 0:
            raise ValueError("timeout must be >= 0")
    names = _kinds(kinds)
    start = 0 if after is None else _check_rev(after, "after") + 1
    store._check_usable()
    w = _open(store, start)  # CompactedError here, at the call
    return _follow(store, w, _Converter(store._layout, names), timeout)


def _follow(
    store: EtcdStore, w: Watch, conv: _Converter, timeout: float | None
) -> Iterator[Change]:
    q: queue.SimpleQueue[pb.WatchResponse | BaseException | None] = queue.SimpleQueue()

    def pump() -> None:
        try:
            for resp in w:
                q.put(resp)
        except BaseException as exc:
            q.put(exc)
        q.put(None)

    t = threading.Thread(target=pump, name="pystore-etcd-watch", daemon=True)
    t.start()
    idle_since = time.monotonic()
    try:
        while True:
            wait = None if timeout is None else idle_since + timeout - time.monotonic()
            if wait is not None and wait <= 0:
                return
            try:
                item = q.get(timeout=wait)
            except queue.Empty:
                return
            if item is None or store._closed:
                return
            if isinstance(item, BaseException):
                raise item
            batch = conv.convert(item.events)
            if batch:
                yield from batch
                idle_since = time.monotonic()
    finally:
        w.close()
