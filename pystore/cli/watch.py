"""``pystore watch``: print each change of a store as it is committed."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..records import Change

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["change_json", "watch"]


def _stamp(ch: Change) -> str:
    return ch.updated_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def change_json(ch: Change) -> dict[str, object]:
    """The JSON object of one change (the shape of ``pystore watch --json``);
    an event append also has ``stream`` and ``seq``."""
    obj: dict[str, object] = {"revision": ch.revision, "op": ch.op, "kind": ch.kind,
                              "id": ch.id, "updated_at": _stamp(ch)}
    if ch.stream is not None:
        obj["stream"], obj["seq"] = ch.stream, ch.seq
    return obj


def _text(ch: Change) -> str:
    if ch.stream is not None:  # an event append: STREAM#SEQ
        target = f"{ch.stream}#{ch.seq}"
    else:
        target = f"{ch.kind}" if ch.id is None else f"{ch.kind}/{ch.id}"
    return f"{ch.revision:>8}  {ch.op:<11}  {target}  {_stamp(ch)}"


def watch(
    store: Store, kinds: list[str] | None, after: int | None, as_json: bool,
    out: Callable[[str], None],
) -> int:
    """Follow ``store`` until interrupted: Ctrl-C or SIGTERM end it quietly (exit 0)."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        for ch in store.watch(after=after, kinds=kinds):
            out(json.dumps(change_json(ch), ensure_ascii=False) if as_json else _text(ch))
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    return 0
