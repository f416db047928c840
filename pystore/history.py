"""Version history of "versioned" kinds (``set_history``, ``history``, ...).

A kind with a keep count keeps the last ``keep`` superseded versions of each
of its resources; the C core copies a version into the history in the same
transaction as the write that supersedes it (or deletes it).  None of these
calls makes a revision.  Mixed into ``ResourceOps`` (Store, Transaction,
Snapshot).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._lmdb import revs
from ._lmdb.core import encode_id, encode_kind
from ._seam import nothing
from .records import Resource

__all__ = ["HistoryOps"]


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be int, not {type(value).__name__}")
    if not 0 <= value < 2**64:
        raise ValueError(f"{what} must be >= 0")
    return value


class HistoryOps:
    """History methods, over the ``_run`` hook of ResourceOps."""

    def _run(self, write: bool, op: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    def set_history(self, kind: str, keep: int) -> None:
        """Keep the last ``keep`` superseded versions of each resource of ``kind``
        (0, the default, keeps none).  Persisted; makes no revision.  A lower
        count drops the oldest of the versions kept already, at once."""
        kb = encode_kind(kind)
        self._run(True, revs.history_set, kb, _count(keep, "keep"))

    def history_keep(self, kind: str) -> int:
        """The keep count of ``kind`` (0: no history)."""
        n: int = self._run(False, revs.history_keep, encode_kind(kind))
        return n

    def history(self, kind: str, id: str, *, limit: int | None = None) -> list[Resource]:
        """The versions of ``kind/id``, newest first: the live one (when it
        exists), then the kept ones, each with its revision and updated_at."""
        kb, ib = encode_kind(kind), encode_id(id)
        n = 0 if limit is None else _count(limit, "limit")
        if limit == 0:
            self._run(False, nothing)  # a closed store refuses it all the same
            return []
        out: list[Resource] = self._run(False, revs.history, kind, kb, id, ib, n)
        return out

    def get_record_at(self, kind: str, id: str, revision: int) -> Resource:
        """The version of ``kind/id`` written at ``revision`` (live or kept);
        NotFoundError when that version is not kept."""
        kb, ib = encode_kind(kind), encode_id(id)
        rev = _count(revision, "revision")
        out: Resource = self._run(False, revs.get_at, kind, kb, id, ib, rev)
        return out

    def delete_history(self, kind: str, id: str) -> int:
        """Drop the kept versions of ``kind/id`` (not the live one); how many."""
        kb, ib = encode_kind(kind), encode_id(id)
        n: int = self._run(True, revs.history_delete, kb, ib)
        return n


