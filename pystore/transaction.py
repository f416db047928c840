"""``Transaction``: several reads and writes committed together."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING

from ._lmdb.core import CTxn
from ._ops import ResourceOps
from ._query import IndexAdminOps
from .errors import TransactionError

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Transaction"]


class Transaction(IndexAdminOps, ResourceOps):
    """A write transaction of a Store; see ``Store.transaction()``.

    It has the store's data methods.  It is bound to the thread that
    entered it, commits when the ``with`` block ends normally and rolls
    back when it raises.  After the block, ``revision`` is the revision
    it committed at (0 if it changed nothing or rolled back).
    """

    revision: int = 0

    def __init__(self, store: Store) -> None:
        self._store = store
        self._stripper = store._stripper
        self._schemas = store._schemas
        self._txn: CTxn | None = None
        self._thread: int | None = None
        self._done = False

    def __enter__(self) -> Transaction:
        if self._txn is not None or self._done:
            raise TransactionError("a Transaction can be entered only once")
        txn = self._store._begin(True)
        self._txn = txn
        self._thread = threading.get_ident()
        self._store._tls.txn = self
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        txn = self._txn
        if txn is None:
            return
        self._txn = None
        self._done = True
        self._store._tls.txn = None
        if exc_type is None:
            self.revision = txn.commit()
            if self.revision:
                self._store._signal.notify()
            if txn.schemas:
                self._schemas.settle(txn)
        else:
            txn.abort()

    def _begin(self, write: bool) -> CTxn:
        if self._txn is None:
            raise TransactionError(
                "transaction is finished" if self._done else "use the transaction in a with block"
            )
        if threading.get_ident() != self._thread:
            raise TransactionError("a transaction must be used by the thread that began it")
        return self._txn

    def _end(self, txn: CTxn, ok: bool) -> int:
        # errors that spoil the transaction are remembered by the core
        return txn.pending() if ok else 0
