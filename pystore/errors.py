"""The exception tree of pystore and the one table that maps core codes to it.

Every exception raised by pystore for a storage problem derives from
:class:`StoreError`.  Codes come from the C core (``PS_ERR_*``), from LMDB
(passed through by the core) or from the OS (positive errno values); the
table below turns each into an exception class and a hint.
"""

from __future__ import annotations

import errno as _errno

from ._lmdb._native import ffi, lib

__all__ = [
    "AlreadyExistsError",
    "CompactedError",
    "ConflictError",
    "CorruptionError",
    "ForkedError",
    "IncompatibleStoreError",
    "InvalidKeyError",
    "InvalidMessageError",
    "MapFullError",
    "NotFoundError",
    "ReadOnlyError",
    "ReadersFullError",
    "StorageFullError",
    "StoreClosedError",
    "StoreError",
    "StoreInUseError",
    "StoreOSError",
    "StoreUnavailableError",
    "TransactionError",
    "UniqueViolationError",
    "UnsafePathError",
    "ValueTooLargeError",
]


class StoreError(Exception):
    """Root of every pystore error.  ``code`` is the core's code, if any."""

    code: int | None = None

    def __str__(self) -> str:  # KeyError subclasses would repr() the message
        return Exception.__str__(self)


class NotFoundError(StoreError, KeyError):
    """No resource under that ``<Kind>/<ID>``."""


class AlreadyExistsError(StoreError):
    """``create_resource`` found the key already present."""


class UniqueViolationError(AlreadyExistsError):
    """A write would give a second resource the same value of a unique index."""

    def __init__(self, kind: str, index: str, value: object, holder: str) -> None:
        self.kind, self.index, self.value, self.holder = kind, index, value, holder
        super().__init__(
            f"unique index {kind}.{index}: value {value!r} is already held by {kind}/{holder}"
        )


class ConflictError(StoreError):
    """A conditional write (``if_revision``) found another revision stored.

    ``expected`` is the revision asked for, ``actual`` the stored one (0 when
    the resource is absent).
    """

    def __init__(self, kind: str, id: str, expected: int, actual: int) -> None:
        self.kind, self.id, self.expected, self.actual = kind, id, expected, actual
        super().__init__(
            f"conflict on {kind}/{id}: expected revision {expected}, "
            f"found {actual if actual else 'no resource (0)'}"
        )


class CompactedError(StoreError):
    """Changes from that revision are no longer kept: list again, then watch
    from the list's revision (etcd's "compacted", Kubernetes' 410 Gone)."""


class StoreUnavailableError(StoreError):
    """The store's servers could not be reached, or lost quorum, within the timeout."""


class InvalidKeyError(StoreError, ValueError):
    """A kind or id breaks the key rules (empty, ``/`` in kind, NUL, too long)."""


class InvalidMessageError(StoreError, ValueError):
    """A message could not be serialized or parsed as the requested type."""


class ValueTooLargeError(StoreError, ValueError):
    """A serialized message is larger than a record can hold."""


class StoreClosedError(StoreError):
    """The store was closed."""


class ReadOnlyError(StoreError):
    """A write on a store opened with ``readonly=True``."""


class TransactionError(StoreError):
    """A transaction was misused (wrong thread, finished, nested) or failed."""


class UnsafePathError(StoreError):
    """The store's files or directory could be redirected by someone else:
    ``data.mdb``/``lock.mdb``/``write.lock`` is a symlink (or not a regular file), or the
    directory is writable by other users and cannot be tightened."""


class ForkedError(StoreError):
    """A store opened before ``fork()`` was used in the child process."""


class CorruptionError(StoreError):
    """The files are damaged or are not a pystore store."""


class IncompatibleStoreError(CorruptionError):
    """The store was written by an unknown on-disk format version."""


class MapFullError(StoreError):
    """The memory map cannot grow any further."""


class ReadersFullError(StoreError):
    """Too many concurrent readers."""


class StoreInUseError(StoreError):
    """The operation needs the store closed everywhere, and it is open
    (by a Store of this process or by another process)."""


class StoreOSError(StoreError, OSError):
    """An operating-system error (``errno`` is set)."""

    def __str__(self) -> str:  # the text, not the (errno, text) tuple
        return str(self.strerror) if self.strerror is not None else OSError.__str__(self)


class StorageFullError(StoreOSError):
    """The filesystem is full (ENOSPC/EDQUOT); earlier data stays intact."""


# code -> (exception class, hint or "")
_TABLE: dict[int, tuple[type[StoreError], str]] = {
    lib.PS_ERR_KIND_EMPTY: (InvalidKeyError, "a kind is a non-empty str"),
    lib.PS_ERR_KIND_SLASH: (InvalidKeyError, "a kind may not contain '/'"),
    lib.PS_ERR_KIND_NUL: (InvalidKeyError, "a kind may not contain NUL"),
    lib.PS_ERR_ID_EMPTY: (InvalidKeyError, "an id is a non-empty str"),
    lib.PS_ERR_ID_NUL: (InvalidKeyError, "an id may not contain NUL"),
    lib.PS_ERR_KEY_TOO_LONG: (InvalidKeyError, "UTF-8 of kind + '/' + id must fit 511 bytes"),
    lib.PS_ERR_CLOSED: (StoreClosedError, ""),
    lib.PS_ERR_READONLY: (ReadOnlyError, "open the store without readonly=True to write"),
    lib.PS_ERR_BAD_RECORD: (CorruptionError, "run `pystore verify` and restore from a backup"),
    lib.PS_ERR_FORMAT: (IncompatibleStoreError, "upgrade pystore to read this store"),
    lib.PS_ERR_NOT_A_STORE: (CorruptionError, "this LMDB environment was not made by pystore"),
    lib.PS_ERR_VALUE_TOO_LARGE: (ValueTooLargeError, "a record holds at most 4 GiB"),
    lib.PS_ERR_FORKED: (ForkedError, "open a new Store in the child process"),
    lib.PS_ERR_TXN_FAILED: (TransactionError, "an earlier error aborted this transaction"),
    lib.PS_ERR_NOMEM: (StoreError, "out of memory"),
    lib.PS_ERR_INVALID_ARG: (StoreError, ""),
    lib.PS_ERR_TRUNCATED: (CorruptionError, "data.mdb was cut short: restore it from a backup"),
    lib.PS_ERR_UNSAFE_FILE: (UnsafePathError, "remove the link; pystore never follows one"),
    lib.PS_ERR_UNSAFE_DIR: (
        UnsafePathError, "use a directory of your own, not writable by others (chmod 700)"
    ),
    lib.PS_ERR_VALUE_BOUNDS: (CorruptionError, "run `pystore verify` and restore from a backup"),
    lib.PS_ERR_SHARED_READONLY: (
        ReadOnlyError, "another Store of this process opened it read-only on unwritable files"
    ),
    lib.PS_ERR_WRONG_THREAD: (TransactionError, ""),
    lib.PS_ERR_WRITE_MODE: (StoreError, "open the store again"),
    lib.PS_ERR_IN_USE: (
        StoreInUseError, "close every Store of it, in every process, and run this again"
    ),
    lib.PS_ERR_SCHEMA_MOVED: (StoreError, "a fast read's check: read again"),
    lib.PS_ERR_WAIT_AGAIN: (TransactionError, "pystore begins again itself: report it if raised"),
    lib.PS_ERR_NO_STORE: (StoreError, "readonly=True never creates one: open it writable"),
    lib.PS_ERR_NO_WRITEMAP: (
        StoreError, "only stores on ext4, XFS or tmpfs can be written in the writemap mode"
    ),
    lib.PS_ERR_UNIQUE: (AlreadyExistsError, "a unique index holds the value"),
    lib.PS_ERR_INDEX_EXISTS: (StoreError, "drop the index first to change its definition"),
    lib.PS_ERR_INDEX_DEF: (CorruptionError, "an index definition is damaged"),
    lib.PS_ERR_STREAM: (InvalidKeyError, "a stream is a non-empty str without NUL, <= 500 bytes"),
    lib.PS_ERR_SEQ: (StoreError, "seq must be in 1..2**63-1"),
    lib.PS_ERR_CONFLICT: (ConflictError, ""),
    lib.PS_ERR_RACED: (ConflictError, "retry the write or transaction"),
    lib.PS_ERR_COMPACTED: (
        CompactedError, "list again, then watch from the list's revision"
    ),
    lib.PS_ERR_NEEDS_UPGRADE: (
        IncompatibleStoreError,
        "open it once without readonly=True (or run `pystore upgrade PATH`) to upgrade it "
        "in place to format 2",
    ),
    lib.PS_LMDB_KEYEXIST: (AlreadyExistsError, ""),
    lib.PS_LMDB_NOTFOUND: (NotFoundError, ""),
    lib.PS_LMDB_PAGE_NOTFOUND: (CorruptionError, "the file is damaged"),
    lib.PS_LMDB_CORRUPTED: (CorruptionError, "the file is damaged"),
    lib.PS_LMDB_PANIC: (CorruptionError, "fatal LMDB error: reopen the store"),
    lib.PS_LMDB_VERSION_MISMATCH: (IncompatibleStoreError, "written by another LMDB version"),
    lib.PS_LMDB_INVALID: (CorruptionError, "data.mdb is not an LMDB file"),
    lib.PS_LMDB_MAP_FULL: (MapFullError, "the map reached its maximum size"),
    lib.PS_LMDB_READERS_FULL: (ReadersFullError, "too many concurrent readers"),
    lib.PS_LMDB_TXN_FULL: (TransactionError, "too many changes in one transaction: split it"),
    lib.PS_LMDB_BAD_TXN: (TransactionError, "an earlier error aborted this transaction"),
    lib.PS_LMDB_BAD_VALSIZE: (ValueTooLargeError, ""),
    lib.PS_LMDB_INCOMPATIBLE: (CorruptionError, "this LMDB environment was not made by pystore"),
    _errno.EDEADLK: (TransactionError, "this thread already holds the store's write transaction"),
    _errno.ENOSPC: (StorageFullError, "free disk space; the data written before is intact"),
    _errno.EDQUOT: (StorageFullError, "disk quota exceeded; the data written before is intact"),
}


def describe(code: int) -> str:
    """The core's description of a code."""
    return str(ffi.string(lib.ps_strerror(code)).decode("utf-8", "replace"))


def error_for(code: int, context: str = "") -> StoreError:
    """Build the exception for a core code, with ``context`` and a hint."""
    cls, hint = _TABLE.get(code, (StoreOSError if code > 0 else StoreError, ""))
    text = describe(code)
    if context:
        text = f"{context}: {text}"
    if hint:
        text = f"{text} ({hint})"
    if issubclass(cls, OSError):
        exc: StoreError = cls(code, text)
    elif cls is ConflictError:  # raised with its fields by the write paths
        exc = StoreError.__new__(ConflictError)
        StoreError.__init__(exc, text)
    else:
        exc = cls(text)
    exc.code = code
    return exc


def check(code: int, context: str = "") -> None:
    """Raise the exception for ``code`` unless it is 0."""
    if code:
        raise error_for(code, context)
