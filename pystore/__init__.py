"""pystore: embedded persistence for protobuf resources, a C core over LMDB.

Resources are stored as raw protobuf bytes under ``<Kind>/<ID>`` keys; a
kind is a collection listed by prefix scan.  Cloud tenancy fields
(``org_id``, ``project_id``) never reach the disk.
"""

from ._admin import KindStats, StoreStats
from .errors import (
    AlreadyExistsError,
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
    StoreOSError,
    TransactionError,
    ValueTooLargeError,
)
from .resource import Resource
from .store import Store
from .transaction import Transaction

__version__ = "0.1.0"

__all__ = [
    "AlreadyExistsError",
    "CorruptionError",
    "ForkedError",
    "IncompatibleStoreError",
    "InvalidKeyError",
    "InvalidMessageError",
    "KindStats",
    "MapFullError",
    "NotFoundError",
    "ReadOnlyError",
    "ReadersFullError",
    "Resource",
    "StorageFullError",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreOSError",
    "StoreStats",
    "Transaction",
    "TransactionError",
    "ValueTooLargeError",
    "__version__",
]
