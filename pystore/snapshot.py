"""``Snapshot``: one consistent read view of a Store (one LMDB read transaction)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._lmdb._native import lib
from ._lmdb.core import CTxn
from ._lmdb.schema import schema_epoch
from ._ops import ResourceOps
from ._seam import op_for
from .errors import ReadOnlyError, StoreClosedError, error_for

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Snapshot"]

# Between its calls a snapshot's LMDB read txn is parked (csrc/ps_park.c):
# open, its view pinned, but map growth does not wait for it -- so a thread
# holding a snapshot never blocks a write that must grow the map, in
# another thread or its own.  Each call unparks it for its C work.
_park = lib.ps_txn_park
_unpark = lib.ps_txn_unpark


class Snapshot(ResourceOps):
    """A read-only view of a Store as of one revision; see ``Store.snapshot()``.

    It has the store's read methods (``get_resource``, ``get_record``,
    ``get_bytes``, ``list_resources``, ``iter_resources``, ``count``,
    ``kinds``, ``history``, ``get_record_at``), all answered from the same
    LMDB read transaction; ``revision`` is the revision it sees.  Threads
    may share it (calls take turns).  Writes, in any thread (this one
    too), proceed while it is open, even when they grow the map; the
    snapshot still sees its own revision.  While it is open, LMDB cannot reuse
    the pages it sees, so keep it short.  Closing the store closes it.
    """

    revision: int

    def __init__(self, store: Store) -> None:
        self._store = store
        self._stripper = store._stripper
        self._schemas = store._schemas
        self._lock = threading.Lock()
        self._txn: CTxn | None = None
        self._used = False
        self._epoch: int | None = None  # the schema epoch its txn sees (read once)

    def _schema_epoch(self) -> int | None:
        # The snapshot's own view: a type another process recorded after it
        # began is checked against the type recorded as of the snapshot.
        if self._epoch is None:
            self._epoch = int(self._run(False, schema_epoch))
        return self._epoch

    def __enter__(self) -> Snapshot:
        if self._used:
            raise StoreClosedError("a Snapshot can be entered only once")
        self._used = True
        store = self._store
        # Interrupt safety: the txn object is made (no C call) and the
        # snapshot registered with the store BEFORE the C call that begins
        # it, inside the ``try``: wherever a KeyboardInterrupt lands, either
        # the ``except`` ends the txn, or (past it) Store.close() finds the
        # snapshot and ends it -- close never waits for a txn nobody can
        # reach (it did when the interrupt hit between the begin and the
        # ``try``, and the handler's traceback still held the txn).
        # The C calls run under the snapshot's lock, as every read's do: a
        # Store.close() in another thread (which ends the snapshot under that
        # lock) waits for them instead of freeing the txn they use; one that
        # came first leaves _txn None, and nothing is begun.
        txn = store._prepare(False)
        self._txn = txn
        store._snapshots.add(self)
        try:
            with self._lock:
                if self._txn is not txn:
                    raise StoreClosedError(f"store {store.path!r} is closed")
                store._start(txn)
                self.revision = txn.revision()
                if txn.__class__ is CTxn:  # (an etcd store's txn holds no map)
                    rc = _park(txn.pp[0])
                    if rc:
                        raise error_for(rc, "snapshot")
        except BaseException:  # close() aborts it, begun, parked or not
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the read transaction (idempotent); later reads raise StoreClosedError."""
        with self._lock:
            txn, self._txn = self._txn, None
            if txn is not None:
                txn.abort()
        self._store._snapshots.discard(self)

    def __repr__(self) -> str:
        state = "open" if self._txn is not None else "closed"
        rev = getattr(self, "revision", "?")
        return f"<pystore.Snapshot {self._store.path!r} revision {rev} {state}>"

    def _begin(self, write: bool) -> CTxn:
        if write:
            raise ReadOnlyError("a snapshot is read-only: write through the store")
        raise NotImplementedError("a snapshot reads through _run")

    def _end(self, txn: CTxn, ok: bool) -> int:
        raise NotImplementedError

    def _run(self, write: bool, op: Callable[..., Any], *args: Any) -> Any:
        # Reads in the snapshot's own read txn (it ends at the block's exit),
        # under its lock.  Interrupt safety: ``with`` takes the lock with no
        # signal check between acquire and the block; the txn is unparked by
        # a C call inside the ``try`` and parked by the first call of its
        # ``finally`` (both idempotent), so a KeyboardInterrupt at any point
        # never leaves it counted live (growth would wait for it) nor parks
        # it twice.
        if write:
            raise ReadOnlyError("a snapshot is read-only: write through the store")
        with self._lock:
            t = self._txn
            if t is None:
                raise StoreClosedError("snapshot is closed (use it inside its with block)")
            c = t.__class__ is CTxn
            try:
                if c:
                    rc = _unpark(t.pp[0])
                    if rc:
                        raise error_for(rc, "snapshot")
                return op_for(t, op)(t, *args)
            finally:
                if c:
                    _park(t.pp[0])
