"""``Store``: a directory holding one LMDB environment of protobuf resources."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable
from functools import partial
from types import TracebackType
from typing import Any

from ._etcd.url import is_etcd_url
from ._lmdb._native import ffi, lib
from ._lmdb.admin import AdminOps
from ._lmdb.core import CTxn, check_key_held, finish
from ._lmdb.fast import env_get
from ._lmdb.fastwrite import FastWriter
from ._lmdb.files import denied_file, make_dirs
from ._lmdb.group import GroupCommit, Op
from ._lmdb.hygiene import Stripper
from ._lmdb.index import find_first_env
from ._lmdb.reads import FastReads
from ._lmdb.schema import SchemaRecorder
from ._ops import ResourceOps
from ._options import check_options
from ._query import IndexAdminOps
from .errors import (
    ForkedError,
    ReadOnlyError,
    StoreClosedError,
    StoreError,
    StoreOSError,
    TransactionError,
    check,
)
from .watch import ChangeFeed, signal_for

__all__ = ["Store"]

# Bumped in every child after fork(): a store opened before must not be used.
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)

# In Store._tls.txn while this thread runs update_resource()'s fn.
_IN_CALLBACK = object()


class _ThreadState(threading.local):
    """Per thread: the open Transaction (a weak reference, so one abandoned
    by an interrupt that skipped its ``__exit__`` is collected, and its
    transaction aborted, with the traceback that held it) and its id."""

    txn: Any = None
    txn_id: int = 0
    rd: Any = None  # this thread's read context (pystore/_lmdb/reads.py)
    # rd while txn is None, else None: the one attribute the fast gets read.
    # Whoever sets txn sets fast first (to None) and after (back to rd), so
    # an interrupt in between can only leave it None: the general path.
    fast: Any = None

    def __init__(self) -> None:
        # Set per thread: an attribute found in the instance is read in
        # ~30 ns, one that falls back to the class default in ~45.
        self.txn = None
        self.rd = None
        self.fast = None


def _held(tls: _ThreadState) -> object:
    """This thread's open Transaction, _IN_CALLBACK, or None."""
    held = tls.txn
    if held is None or held is _IN_CALLBACK:
        return held
    return held()


class Store(AdminOps, IndexAdminOps, ChangeFeed, FastReads, ResourceOps):
    """An embedded store of protobuf resources keyed ``<Kind>/<ID>``.

    ``path`` is a directory (created with parents, mode 0700) that holds
    LMDB's ``data.mdb`` and ``lock.mdb`` and pystore's ``write.lock`` (the
    writers' queue; mode 0600).  ``sync=False`` skips
    the fsync at commit (safe against a process crash, not a power loss).
    ``map_size`` is the initial memory map in bytes; the map grows by
    itself (on ext4, XFS and tmpfs a new store is written through the map,
    which is then allocated on disk: keep ``map_size`` unset there, see
    docs/durability.md "Write modes").  ``readonly=True`` opens an existing store, which another
    process may be writing, and refuses writes.  Fields named in
    ``strip_fields`` are cleared at every depth before anything is
    persisted.  The change log keeps at least the newest ``keep_changes``
    revisions (and at most twice as many).  A Store may be shared by
    threads; use it as a context manager or call ``close()``.

    Several Stores on one directory in one process share one LMDB
    environment (LMDB allows only one per process), closed with the last
    of them: ``map_size`` counts only for the first; ``sync`` and
    ``readonly`` are per Store.  ``data.mdb``/``lock.mdb``/``write.lock`` symlinks are
    refused (UnsafePathError); a writable open makes a directory that
    others can write 0700 if this user owns it, else refuses it.
    ``path`` may instead be an ``etcd://`` or ``etcds://`` URL: the same API
    on an etcd cluster (an ``EtcdStore``, see ``pystore/_etcd/store.py``);
    ``timeout`` (seconds) bounds each of its calls.  An LMDB store, local
    and never waiting on a network, ignores ``timeout``.
    """

    _remote = False  # True for a networked backend (etcd): AsyncStore never calls inline

    def __new__(
        cls,
        path: str | os.PathLike[str],
        *,
        sync: bool = True,
        map_size: int | None = None,
        readonly: bool = False,
        strip_fields: Iterable[str] = ("org_id", "project_id"),
        keep_changes: int = 100_000,
        timeout: float | None = None,
    ) -> Store:
        # The backend seam: an etcd:// or etcds:// URL opens the etcd backend
        # (pystore/_etcd/store.py, a Store subclass); anything else is a path.
        if cls is Store and is_etcd_url(path):
            try:
                from ._etcd.store import EtcdStore
            except ImportError as exc:
                raise StoreError(
                    f"{path!r} needs the etcd backend: pip install 'pystore-lmdb[etcd]' "
                    f"({exc})"
                ) from None
            return super().__new__(EtcdStore)
        return super().__new__(cls)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sync: bool = True,
        map_size: int | None = None,
        readonly: bool = False,
        strip_fields: Iterable[str] = ("org_id", "project_id"),
        keep_changes: int = 100_000,
        timeout: float | None = None,
    ) -> None:
        self._env: Any = None
        self._closed = True
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be str or os.PathLike, not {type(path).__name__}")
        fspath = os.fspath(path)
        if not isinstance(fspath, str):
            raise TypeError("path must be a str path")
        names = check_options(map_size, keep_changes, timeout, strip_fields)
        self.path = fspath
        self.readonly = bool(readonly)
        self.sync = bool(sync)
        self._stripper = Stripper(names)
        self._schemas = SchemaRecorder()
        if self.readonly:
            if not os.path.isfile(os.path.join(fspath, "data.mdb")):
                raise StoreError(f"no store at {fspath!r} (readonly=True never creates one)")
        else:
            try:
                make_dirs(fspath)
            except OSError as exc:  # e.g. ENOTDIR: a regular file on the path
                raise StoreOSError(exc.errno, f"open {fspath!r}: {exc.strerror}") from None
        flags = (lib.PS_OPEN_READONLY if self.readonly else 0) | (
            0 if self.sync else lib.PS_OPEN_NOSYNC
        )
        out = ffi.new("ps_env **")
        rc = lib.ps_env_open(os.fsencode(fspath), map_size or 0, flags, out)
        check(rc, f"open {fspath!r}{denied_file(fspath, self.readonly, rc)}")
        self._env = ffi.gc(out[0], lib.ps_env_free)
        check(lib.ps_env_set_keep_changes(self._env, keep_changes), "keep_changes")
        self.keep_changes = keep_changes
        self._signal = signal_for(fspath)
        self._snapshots: weakref.WeakSet[Snapshot] = weakref.WeakSet()
        self._closed = False
        self._generation = _fork_generation
        self._tls = _ThreadState()
        if self.sync and not self.readonly:
            self._group = GroupCommit(self)  # concurrent durable writes share commits
        elif not self.readonly:
            self._fw = FastWriter(  # one C call per write
                self._env, self._stripper, self._schemas.known, self._signal
            )

    # -- lifecycle --------------------------------------------------------

    def close(self) -> None:
        """Close the store (idempotent).  Waits for transactions of other
        threads to finish; every later call raises StoreClosedError."""
        if self._closed:
            return
        if _held(self._tls) is not None:
            raise TransactionError(
                "close() inside this thread's open transaction() or update_resource() callback"
            )
        self._check_close()  # nor in the middle of this thread's read
        self._closed = True
        for snap in list(self._snapshots):  # each holds a read txn close would wait for
            snap.close()
        lib.ps_env_close(self._env)
        self._signal.notify()  # watchers of this store end

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("readonly" if self.readonly else "open")
        return f"<pystore.Store {self.path!r} {state}>"

    def _schema_epoch(self) -> int | None:
        env = self.__dict__.get("_env")  # (an etcd store has none)
        return None if env is None else int(lib.ps_env_schema_epoch(env))

    # -- transactions -----------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store {self.path!r} is closed")
        if self._generation != _fork_generation:
            raise ForkedError(
                "store was opened before fork(): open a new Store in the child process"
            )
        held = _held(self._tls)
        if held is _IN_CALLBACK:
            raise TransactionError(
                "update_resource()'s fn runs inside the write transaction: it must not "
                "use the store (return, and write after update_resource returns)"
            )
        if held is not None:
            raise TransactionError(
                "this thread holds an open transaction(): use the transaction's "
                "methods, or finish it first"
            )

    def _prepare(self, write: bool) -> CTxn:
        """A transaction object, not begun yet: ``_start`` begins it inside
        the caller's ``try`` (see ``CTxn`` on interrupt safety)."""
        self._check_usable()
        if write and self.readonly:
            raise ReadOnlyError(f"store {self.path!r} was opened with readonly=True")
        return CTxn(write)

    def _start(self, txn: CTxn) -> None:
        txn.begin(self._env)

    def _after(self, txn: CTxn) -> int:
        """After ``finish``: a failed commit's error, else the revision."""
        rev = txn.check_commit()
        if rev:
            self._signal.notify()  # this process's watchers wake at once
        if txn.schemas and txn.committed:
            self._schemas.settle(txn)
        return rev

    def _callback(self) -> Callable[[], object]:
        tls = self._tls
        prev = getattr(tls, "txn", None)  # EtcdStore's is a plain threading.local
        # The way back, made before anything changes: one C call that sets
        # this thread's attributes (txn, and fast again when no transaction
        # is held) in one step, with no check point for a signal before it.
        back: dict[str, Any] = {"txn": prev}
        if prev is None:
            back["fast"] = getattr(tls, "rd", None)
        done = partial(tls.__dict__.update, back)
        tls.fast = None
        tls.txn = _IN_CALLBACK
        return done

    def _begin(self, write: bool) -> CTxn:
        """A begun transaction (for callers that hold it in a ``with``)."""
        t = self._prepare(write)
        t.begin(self._env)
        return t

    def _group_write(self, op: Op) -> Any:
        self._check_usable()  # this thread's own checks, before it queues
        check_key_held(op.kb, op.ib)  # a bad key must fail alone, not its whole batch
        assert self._group is not None
        return self._group.run(op)

    def _read_one(self, kb: bytes, ib: bytes) -> tuple[bytes, int, int]:
        self._check_usable()
        return env_get(self._env, kb, ib)  # one C call, reused read txn

    def _find_first(self, kb: bytes, nb: bytes, value: object, q: Any) -> bytes | None:
        self._check_usable()
        return find_first_env(self._env, kb, nb, value, q)  # one C call, reused read txn

    def _end(self, txn: CTxn, ok: bool) -> int:
        commit = ok and txn.write
        txn.commit_asked = commit
        finish(txn.slot, commit, txn.rc, txn.revp)
        return self._after(txn)

    def snapshot(self) -> Snapshot:
        """One consistent read view, as a context manager.

        ``with store.snapshot() as snap:`` -- ``snap`` has the store's read
        methods, all answered from one LMDB read transaction, and
        ``snap.revision``, the revision it sees.  ``store.watch(after=
        snap.revision)`` then follows every later change, with no gap.
        Writes -- from other threads or this one -- proceed while it is
        open, even those that grow the map.
        """
        self._check_usable()
        return Snapshot(self)

    def transaction(self) -> Transaction:
        """A write transaction over several resources, as a context manager.

        ``with store.transaction() as t:`` -- ``t`` has the store's data
        methods; everything commits at exit, or nothing if the block raises.
        Reads in ``t`` see its own writes.  Other threads' writes wait until
        it ends; this thread must use ``t``, not the store, until then.
        """
        if self.readonly:
            raise ReadOnlyError(f"store {self.path!r} was opened with readonly=True")
        return Transaction(self)


# The fast reads carry the documentation of the general methods they stand for.
for _name in FastReads._FAST:
    getattr(FastReads, _name).__doc__ = getattr(ResourceOps, _name).__doc__

from .snapshot import Snapshot  # noqa: E402  (circular: Snapshot needs Store)
from .transaction import Transaction  # noqa: E402  (circular: Transaction needs Store)
