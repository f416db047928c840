"""``Transaction``: several reads and writes committed together."""

from __future__ import annotations

import threading
import weakref
from types import TracebackType
from typing import TYPE_CHECKING

from ._lmdb.core import NO_SLOT, CTxn, finish
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
        self._id = id(self)
        self._done = False

    # Interrupt safety: a C call is followed by a check point where a
    # KeyboardInterrupt can be raised, so every state change of the Python
    # side comes BEFORE the C call that begins or ends the transaction, and
    # nothing but stores of attributes stands between them.

    def __enter__(self) -> Transaction:
        if self._txn is not None or self._done:
            raise TransactionError("a Transaction can be entered only once")
        txn = self._store._prepare(True)
        txn.slot = NO_SLOT  # per-call code leaves it alone; __exit__ ends it
        tls = self._store._tls
        self._thread = threading.get_ident()
        self._txn = txn
        tls.txn_id = self._id
        tls.txn = weakref.ref(self)
        try:
            txn.begin(self._store._env)
        except BaseException:
            self._txn = None
            tls.txn = None
            finish(txn.pp, 0, txn.rc, txn.revp)
            raise
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
        tls = self._store._tls
        if tls.txn_id != self._id:
            # LMDB's write lock belongs to the thread that began the txn.
            raise TransactionError(
                "a transaction must be ended by the thread that began it "
                "(it stays open for that thread)"
            )
        ok = exc_type is None
        txn.commit_asked = ok
        self._txn = None
        self._done = True
        tls.txn = None
        tls.txn_id = 0
        finish(txn.pp, ok, txn.rc, txn.revp)
        self.revision = txn.check_commit()
        if self.revision:
            self._store._signal.notify()
        if txn.schemas and txn.committed:
            self._schemas.settle(txn)

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

    _prepare = _begin  # the transaction's own txn, begun at __enter__

    def _start(self, txn: CTxn) -> None:
        pass

    def _after(self, txn: CTxn) -> int:
        return txn.pending()  # the revision this transaction will commit at

    def _callback(self) -> object:
        return None  # the store already refuses this thread: it holds the transaction

    def _callback_done(self, token: object) -> None:
        pass
