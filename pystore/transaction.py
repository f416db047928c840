"""``Transaction``: several reads and writes committed together."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from google.protobuf.message import EncodeError, Message

from ._lmdb._native import lib
from ._lmdb.core import NO_SLOT, CTxn, finish
from ._lmdb.schema import schema_epoch
from ._lmdb.txnwrite import delete_failed, save_failed, save_many_in, txn_del, txn_save
from ._ops import ResourceOps, _check_revision
from ._query import IndexAdminOps
from .errors import TransactionError

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Transaction"]

_CREATE: int = lib.PS_PUT_NOOVERWRITE
_IF_REV: int = lib.PS_PUT_IF_REVISION


class Transaction(IndexAdminOps, ResourceOps):
    """A write transaction of a Store; see ``Store.transaction()``.

    It has the store's data methods.  It is bound to the thread that
    entered it, commits when the ``with`` block ends normally and rolls
    back when it raises.  After the block, ``revision`` is the revision
    it committed at (0 if it changed nothing or rolled back).
    """

    revision: int = 0
    # The live txn's slot (``CTxn.pp``) while entered on LMDB: the one-call
    # writes of _lmdb/txnwrite.py; None: every call takes the general path.
    _slot: Any = None

    def __init__(self, store: Store) -> None:
        self._store = store
        self._stripper = store._stripper
        self._schemas = store._schemas
        self._known = store._schemas.known
        self._txn: CTxn | None = None
        self._thread: int | None = None
        self._id = id(self)
        self._done = False

    def _schema_epoch(self) -> int | None:
        # The epoch its write txn sees, read once (write txns do not note
        # it: that would cost every one-call write a meta read).
        epoch: int | None = self.__dict__.get("_epoch")
        if epoch is None:
            epoch = self._epoch = int(self._run(False, schema_epoch))
        return epoch

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
        self._slot = txn.pp  # empty until begun, and again once finished
        tls.txn_id = self._id
        tls.fast = None  # the fast gets leave this thread's reads to the txn
        tls.txn = weakref.ref(self)
        try:
            txn.begin(self._store._env)
        except BaseException:
            self._txn = None
            self._slot = None
            tls.txn = None
            finish(txn.pp, 0, txn.rc, txn.revp)
            tls.fast = tls.rd
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
        self._slot = None
        self._done = True
        tls.txn = None
        tls.txn_id = 0
        finish(txn.pp, ok, txn.rc, txn.revp)
        tls.fast = tls.rd
        self.revision = txn.check_commit()
        if self.revision:
            self._store._signal.notify()
        if txn.schemas and txn.committed:
            self._schemas.settle(txn)

    # -- one C call per write (see _lmdb/txnwrite.py) ------------------------
    # Each method tries the one call and otherwise runs the general method of
    # ResourceOps, which raises (or does) exactly what it always did.

    def save_resource(
        self, kind: str, id: str, msg: Message, *, if_revision: int | None = None
    ) -> int:
        """Upsert ``kind/id`` in this transaction (as ``Store.save_resource``);
        the revision the transaction will commit at."""
        slot = self._slot
        if slot is not None and type(kind) is str and type(id) is str:
            if if_revision is not None:
                rev = self._save(slot, kind, id, msg, _IF_REV, _check_revision(if_revision))
                if rev is not None:
                    return rev
                return ResourceOps.save_resource(self, kind, id, msg, if_revision=if_revision)
            # the hot path, inline: _save's steps for an unconditional save
            entry = self._stripper.fw_plans.get(type(msg))
            if entry is not None and self._known.get(kind) is entry[0]:
                try:
                    kb = kind.encode()
                    ib = id.encode()
                    data = msg.SerializeToString()
                except (UnicodeEncodeError, EncodeError):
                    pass
                else:
                    r: int = txn_save(slot, kb, len(kb), ib, len(ib), data, len(data),
                                      entry[1], 0, 0)
                    if r >= 0:
                        return r
                    save_failed(r, slot, kb, ib, None)
            else:
                rev = self._save(slot, kind, id, msg, 0, None)
                if rev is not None:
                    return rev
        return ResourceOps.save_resource(self, kind, id, msg, if_revision=if_revision)

    def create_resource(self, kind: str, id: str, msg: Message) -> int:
        """Create ``kind/id`` in this transaction; AlreadyExistsError if it
        exists.  The revision the transaction will commit at."""
        slot = self._slot
        if slot is not None and type(kind) is str and type(id) is str:
            rev = self._save(slot, kind, id, msg, _CREATE, None)
            if rev is not None:
                return rev
        return ResourceOps.create_resource(self, kind, id, msg)

    def _save(
        self, slot: Any, kind: str, id: str, msg: object, flags: int, expected: int | None
    ) -> int | None:
        """The one call of a save; None: take the general path."""
        entry = self._stripper.fw_plans.get(type(msg)) or self._stripper.fw_entry(type(msg))
        if entry is None:
            return None
        if self._known.get(kind) is not entry[0]:
            txn = self._txn
            pending = None if txn is None else txn.schemas
            if pending is None or pending.get(kind) is not entry[0]:
                return None  # the general path records the kind's schema
        try:
            kb = kind.encode()
            ib = id.encode()
            data = msg.SerializeToString()  # type: ignore[attr-defined]
        except (UnicodeEncodeError, EncodeError):
            return None
        rev: int = txn_save(slot, kb, len(kb), ib, len(ib), data, len(data), entry[1],
                            flags, expected or 0)
        if rev >= 0:
            return rev
        save_failed(rev, slot, kb, ib, expected)
        return None

    def delete_resource(self, kind: str, id: str, *, if_revision: int | None = None) -> bool:
        """Delete ``kind/id`` in this transaction; True if it existed."""
        slot = self._slot
        if slot is not None and type(kind) is str and type(id) is str:
            try:
                kb = kind.encode()
                ib = id.encode()
            except UnicodeEncodeError:
                pass
            else:
                expected = _check_revision(if_revision)  # after the key, as in general
                r: int = txn_del(slot, kb, len(kb), ib, len(ib),
                                 0 if expected is None else _IF_REV, expected or 0)
                if r >= 0:
                    return r > 0
                delete_failed(r, slot, kb, ib, expected)
        return ResourceOps.delete_resource(self, kind, id, if_revision=if_revision)

    def save_resources(self, kind: str, items: Iterable[tuple[str, Message]]) -> int:
        """Upsert ``(id, msg)`` pairs of ``kind`` in this transaction (all or
        nothing with it); how many."""
        slot = self._slot
        if slot is not None:
            txn = self._txn
            n = save_many_in(slot, slot[0], self._stripper, self._known,
                             None if txn is None else txn.schemas, kind, items)
            if n is not None:
                return n
        return ResourceOps.save_resources(self, kind, items)

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

    def _callback(self) -> Callable[[], object]:
        # the store already refuses this thread (it holds the transaction):
        # nothing to mark, and nothing to undo (a builtin: no check point)
        return tuple
