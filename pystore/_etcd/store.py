"""``EtcdStore``: the ``Store`` API on an etcd cluster (``Store("etcd://...")``).

``Store.__new__`` returns an ``EtcdStore`` for an ``etcd://``/``etcds://``
URL, so ``isinstance(s, Store)`` holds and every method has the same name,
signature and exceptions.  The shared logic of ``ResourceOps`` (type
checks, encoding, tenancy stripping, schema notes, parsing) runs unchanged
over an :class:`~.txn.EtcdTxn` instead of the C core's ``CTxn``; this class
overrides only what must talk to etcd directly: one-key reads, deletes,
kind deletes, ``update_resource``'s retry loop, revisions, snapshots, the
change feed, stats and the life cycle.  See docs/etcd.md, "The backend
seam", and the README's table of differences.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

from google.protobuf.message import Message

from .._lmdb.admin import KindStats, StoreStats
from .._lmdb.core import check_key, encode_id, encode_kind
from .._lmdb.hygiene import Stripper
from .._lmdb.reads import FastReads
from .._lmdb.schema import SchemaRecorder, read_schema
from .._ops import ResourceOps, _check_revision
from .._options import check_options
from .._query import QueryOps
from ..errors import (
    IncompatibleStoreError,
    NotFoundError,
    ReadOnlyError,
    StoreClosedError,
    StoreError,
    TransactionError,
)
from ..records import Change
from ..snapshot import Snapshot
from ..store import Store
from ..transaction import Transaction
from ..watch import Signal
from . import _common as c
from . import etcd_api_pb2 as pb
from . import feed
from .client import EtcdClient, credentials_for
from .history import KindConfig
from .layout import Layout, decode_record, encode_ns
from .once import WriteSlots
from .txn import EtcdTxn, ReadConflict
from .url import parse_url

__all__ = ["EtcdStore"]

M = TypeVar("M", bound=Message)


class EtcdStore(Store):
    """A Store whose data lives in an etcd cluster under one key root.

    Opened as ``Store("etcd://h1:p1,h2:p2/key/root", timeout=10.0)``.
    ``sync``, ``map_size`` and ``keep_changes`` do not apply (etcd always
    syncs its WAL on a quorum; its history is bounded by the cluster's
    compaction) and are accepted and ignored.  ``timeout`` bounds every call
    (retries included); ``None`` takes the URL's ``timeout=`` (default 10 s).
    """

    _remote = True
    # `pystore load` commits chunks of at most this many lines and bytes
    # (etcd: 128 operations and 1.5 MiB per Txn, with room for schemas).
    _load_chunk = (50, 512 * 1024)

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
        self._closed = True
        if not isinstance(path, str):
            raise TypeError(f"an etcd store URL must be a str, not {type(path).__name__}")
        names = check_options(map_size, keep_changes, timeout, strip_fields)
        url = parse_url(path)
        self.path = path
        self.url = url
        self.readonly = bool(readonly)
        self.sync = True
        self.keep_changes = keep_changes
        self.timeout = float(timeout) if timeout is not None else url.timeout
        self._stripper = Stripper(names)
        self._schemas = SchemaRecorder()
        self._serializable = url.serializable
        self._layout = Layout(url.root)
        self._kind_config: dict[bytes, KindConfig] = {}  # history.py
        self._client = EtcdClient(
            url.endpoints,
            timeout=self.timeout,
            credentials=credentials_for(url),
            server_name=url.server_name,
            max_txn_ops=url.max_txn_ops,
            max_request_bytes=url.max_request_bytes,
        )
        self._signal = Signal()
        self._snapshots: weakref.WeakSet[Snapshot] = weakref.WeakSet()
        self._tls = threading.local()  # type: ignore[assignment]
        self._group = None
        try:
            fmt = self._client.get(self._layout.meta_key(b"format"))
        except BaseException:
            self._client.close()
            raise
        if fmt is not None and fmt.value != b"2":
            self._client.close()
            raise IncompatibleStoreError(
                f"etcd store {path!r}: format {fmt.value!r}, this pystore reads format 2"
            )
        if not self.readonly:  # every write Txn applies at most once (once.py)
            self._client.use_write_slots(WriteSlots.under(self._layout.root))
        self._closed = False

    # -- lifecycle --------------------------------------------------------

    def close(self) -> None:
        """Close the store (idempotent): its watches end, later calls raise
        StoreClosedError."""
        if self._closed:
            return
        if getattr(self._tls, "txn", None) is not None:
            raise TransactionError("close() inside this thread's open transaction()")
        self._closed = True
        for snap in list(self._snapshots):
            snap.close()
        self._client.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("readonly" if self.readonly else "open")
        return f"<pystore.Store {self.path!r} (etcd) {state}>"

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store {self.path!r} is closed")
        self._client._check()  # ForkedError in a child process
        if getattr(self._tls, "txn", None) is not None:
            raise TransactionError(
                "this thread holds an open transaction(): use the transaction's "
                "methods, or finish it first"
            )

    # -- the hooks of ResourceOps -----------------------------------------

    def _begin(self, write: bool) -> EtcdTxn:  # type: ignore[override]
        self._check_usable()
        if write and self.readonly:
            raise ReadOnlyError(f"store {self.path!r} was opened with readonly=True")
        return EtcdTxn(self, write)

    def _prepare(self, write: bool) -> EtcdTxn:  # type: ignore[override]
        return self._begin(write)

    def _start(self, txn: EtcdTxn) -> None:  # type: ignore[override]
        pass  # an etcd txn holds nothing on the server until its commit

    def _after(self, txn: EtcdTxn) -> int:  # type: ignore[override]
        if txn.error is not None:
            raise txn.error
        return txn.result

    def _end(self, txn: EtcdTxn, ok: bool) -> int:  # type: ignore[override]
        if ok and txn.write:
            rev = txn.commit()
            if txn.schemas:
                self._schemas.settle(txn)  # type: ignore[arg-type]
            return rev
        txn.abort()
        return 0

    def _run(self, write: bool, op: Callable[..., Any], *args: Any) -> Any:
        """One Store call; a write made only of this library's own reads and
        writes (event appends, history deletes, ...) is run again when
        something it read changed before its commit, until ``timeout``."""
        if not write:
            return super()._run(write, op, *args)
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                return super()._run(write, op, *args)
            except ReadConflict:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    def _read_one(self, kb: bytes, ib: bytes) -> tuple[bytes, int, int]:
        self._check_usable()
        check_key(kb, ib)
        key = self._layout.key(kb, ib)
        resp = self._client.range(key, serializable=self._serializable)
        if not resp.kvs:
            raise NotFoundError(
                f"resource not found: {kb.decode('utf-8', 'replace')}/"
                f"{ib.decode('utf-8', 'replace')}"
            )
        kv = resp.kvs[0]
        payload, ns = decode_record(kv.value, key)
        return payload, ns, kv.mod_revision

    def _find_first(self, kb: bytes, nb: bytes, value: object, q: Any) -> bytes | None:
        return QueryOps._find_first(self, kb, nb, value, q)  # through EtcdTxn.OPS

    # -- writes that etcd does in one request -------------------------------

    def delete_resource(self, kind: str, id: str, *, if_revision: int | None = None) -> bool:
        """Delete ``kind/id``; True if it existed.  ``if_revision=N`` deletes only
        if the stored record's revision is N, else ConflictError."""
        kb, ib = encode_kind(kind), encode_id(id)
        expected = _check_revision(if_revision)
        t = self._begin(True)
        check_key(kb, ib)
        key = self._layout.key(kb, ib)
        if expected is not None:
            t.conds[key] = (expected, "if", kb, ib)
        t.writes[key] = None
        t.counts = True
        t.commit()
        resp = t.response
        assert resp is not None
        # the delete is the last op of the success branch, after history copies
        for r in resp.responses:
            if r.WhichOneof("response") == "response_delete_range":
                return r.response_delete_range.deleted > 0
        return False

    def delete_resources_by_kind(self, kind: str) -> int:
        """Delete every resource of a kind: one etcd DeleteRange (one revision),
        with the marker that makes watchers see one ``delete_kind`` change."""
        kb = encode_kind(kind)
        check_key(kb, b"_")
        self._check_usable()
        if self.readonly:
            raise ReadOnlyError(f"store {self.path!r} was opened with readonly=True")
        lay = self._layout
        prefix, hp = lay.kind_prefix(kb), lay.history_prefix(kb)
        ip = lay.root + b"i/" + kb + b"/"  # the kind's index entries (index.py)
        exists = pb.Compare(
            key=prefix, range_end=c.prefix_end(prefix), target=pb.Compare.CREATE,
            result=pb.Compare.GREATER, create_revision=0,
        )
        resp = self._client.txn(
            [exists],
            [
                c.op_put(lay.marker(kb), encode_ns(time.time_ns())),
                c.op_delete(prefix, c.prefix_end(prefix)),
                c.op_delete(hp, c.prefix_end(hp)),
                c.op_delete(ip, c.prefix_end(ip)),
                c.op_put(lay.last, b""),
            ],
            # an empty kind: its kept versions go all the same (as on LMDB)
            [c.op_delete(hp, c.prefix_end(hp))],
            retry=True,
            counts=True,
        )
        if not resp.succeeded:
            return 0
        return int(resp.responses[1].response_delete_range.deleted)

    def update_resource(
        self,
        kind: str,
        id: str,
        msg_type: type[M],
        fn: Callable[[M], object],
        *,
        create: bool = False,
    ) -> M:
        """Atomic read-modify-write.  On etcd this is optimistic: read, ``fn``,
        then one Txn that writes only if the record is unchanged since the
        read; on a conflict it starts again, so ``fn`` MAY RUN MORE THAN ONCE
        (keep it free of side effects).  ConflictError once ``timeout``
        seconds pass without success."""
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                return super().update_resource(kind, id, msg_type, fn, create=create)
            except ReadConflict:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.1)

    # -- views ------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """All reads at one pinned etcd revision (``snap.revision``)."""
        self._check_usable()
        return Snapshot(self)

    def transaction(self) -> Transaction:
        """An optimistic transaction: reads at one pinned revision, writes
        buffered, ONE etcd Txn at exit that also checks that nothing this
        transaction read has changed since; if something did, the exit
        raises ConflictError and nothing is written."""
        if self.readonly:
            raise ReadOnlyError(f"store {self.path!r} was opened with readonly=True")
        return EtcdTransaction(self)

    # -- revisions and the change feed --------------------------------------

    def revision(self) -> int:
        """etcd's current revision (cluster-wide: other key roots move it too)."""
        self._check_usable()
        return int(self._client.range(self._layout.meta_key(b"format"), keys_only=True)
                   .header.revision)

    def changes(
        self,
        after: int = 0,
        *,
        kinds: Iterable[str] | None = None,
        streams: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[Change]:
        """Committed changes of this store after ``after`` (from etcd's history:
        CompactedError once the cluster compacted it)."""
        self._check_usable()
        return feed.changes(self, after, kinds, streams, limit)

    def watch(
        self,
        after: int | None = None,
        *,
        kinds: Iterable[str] | None = None,
        streams: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> Iterator[Change]:
        """An etcd Watch on this store's keys from ``after + 1``; ends after
        ``timeout`` idle seconds or when the store is closed."""
        return feed.watch(self, after, kinds, streams, timeout)

    # -- operator methods ---------------------------------------------------

    def stats(self) -> StoreStats:
        """Counts per kind (with the recorded type) at one revision; sizes are
        the etcd member's database (``Maintenance/Status``)."""
        self._check_usable()
        kinds: dict[str, KindStats] = {}
        with self._reading() as t:
            for kind in t.kinds():
                kb = encode_kind(kind)
                schema = read_schema(t, kb)
                kinds[kind] = KindStats(t.count(kb), schema[0] if schema else None)
            rev = t.revision()
        status = self._client.status()
        return StoreStats(
            path=self.path, format_version=2, map_size=0,
            used_bytes=int(status.dbSizeInUse) if hasattr(status, "dbSizeInUse") else 0,
            file_bytes=int(status.dbSize), page_size=0,
            entries=sum(k.count for k in kinds.values()), depth=0, max_readers=0,
            data_bytes=int(getattr(status, "dbSizeInUse", 0)),
            num_readers=0, kinds=kinds, revision=rev,
        )

    def backup(self, dest: str | os.PathLike[str], compact: bool = True) -> int:
        raise StoreError(
            "backup() of an etcd store: use `pystore dump URL > FILE` (one pinned "
            "revision), or etcdctl snapshot save for the whole cluster"
        )


class EtcdTransaction(Transaction):
    """``transaction()`` on etcd: an interactive EtcdTxn committed at exit."""

    def __enter__(self) -> EtcdTransaction:
        if self._txn is not None or self._done:
            raise TransactionError("a Transaction can be entered only once")
        store = self._store
        assert isinstance(store, EtcdStore)
        txn = store._begin(True)
        txn.interactive = True
        txn.slot = None  # per-call code leaves it alone; __exit__ ends it
        self._txn = txn  # type: ignore[assignment]
        self._thread = threading.get_ident()
        store._tls.txn = self
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
            if txn.schemas:
                self._schemas.settle(txn)
        else:
            txn.abort()


# The general reads: the fast ones Store inherits (FastReads) read the LMDB map.
for _name in FastReads._FAST:
    setattr(EtcdStore, _name, getattr(ResourceOps, _name))
