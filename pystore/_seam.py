"""The backend seam, in one function: which implementation of a core call to run.

``ResourceOps`` (and the query, kind and history mixins) call the C core
through ``CTxn`` methods and functions taking a ``CTxn`` first.  Another
backend's transaction object carries ``OPS``, a table from those callables
to its own versions (the etcd backend: ``pystore._etcd.txn.EtcdTxn.OPS``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._lmdb.core import CTxn

__all__ = ["nothing", "op_for"]


def nothing(t: object) -> None:
    """No work: ``_run(write, nothing)`` of a call that has nothing to read
    or write (a limit of 0, an empty batch) still begins a transaction, so
    a closed, forked or read-only store refuses it like any other call."""


def op_for(t: object, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` itself for the C core's ``CTxn``; else ``t.OPS[fn]`` (or ``fn``)."""
    if t.__class__ is CTxn:
        return fn
    table: dict[Callable[..., Any], Callable[..., Any]] = t.OPS  # type: ignore[attr-defined]
    return table.get(fn, fn)
