"""pystore: embedded persistence for protobuf resources, a C core over LMDB.

Resources are stored as raw protobuf bytes under ``<Kind>/<ID>`` keys; a
kind is a collection listed by prefix scan.  Cloud tenancy fields
(``org_id``, ``project_id``) never reach the disk.
"""

from ._lmdb.admin import KindStats, StoreStats, switch_to_writemap
from .collection import Collection
from .errors import (
    AlreadyExistsError,
    CompactedError,
    ConflictError,
    CorruptionError,
    ForkedError,
    IncompatibleStoreError,
    InvalidKeyError,
    InvalidMessageError,
    MapFullError,
    NotFoundError,
    ReadersFullError,
    ReadOnlyError,
    StorageFullError,
    StoreClosedError,
    StoreError,
    StoreInUseError,
    StoreOSError,
    StoreUnavailableError,
    TransactionError,
    UniqueViolationError,
    UnsafePathError,
    ValueTooLargeError,
)
from .records import Change, Event, IndexInfo, Page, Resource
from .store import Store
from .transaction import Transaction

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "Change",
    "Collection",
    "CompactedError",
    "ConflictError",
    "CorruptionError",
    "Event",
    "ForkedError",
    "IncompatibleStoreError",
    "IndexInfo",
    "InvalidKeyError",
    "InvalidMessageError",
    "KindStats",
    "MapFullError",
    "NotFoundError",
    "Page",
    "ReadOnlyError",
    "ReadersFullError",
    "Resource",
    "StorageFullError",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreInUseError",
    "StoreOSError",
    "StoreStats",
    "StoreUnavailableError",
    "Transaction",
    "TransactionError",
    "UniqueViolationError",
    "UnsafePathError",
    "ValueTooLargeError",
    "__version__",
    "switch_to_writemap",
]
