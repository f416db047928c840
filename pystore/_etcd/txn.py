"""``EtcdTxn``: the ``CTxn`` method set over etcd, as a buffered optimistic
transaction (etcd's STM, "serializable snapshot").

* Reads go to the cluster at the transaction's pinned revision (the header
  revision of its first read) and, in a write transaction, record the key's
  ``mod_revision`` (0 when absent) as a compare.
* Writes are buffered by key (the last write of a key wins, so etcd never
  sees a key twice in one Txn).
* ``commit()`` is ONE etcd Txn: every recorded compare, then every write
  (plus the history copies of versioned kinds, see ``history.py``).  A
  compare that fails raises ``ConflictError`` (``AlreadyExistsError`` for a
  create), and nothing is written.

``ResourceOps`` drives it through the same calls as the C core's ``CTxn``;
module-level functions it calls with a ``CTxn`` first argument
(``list_wire``, ``put_many``, the history functions) are looked up in
``OPS`` instead.  A "blind" transaction (one Store call) sends its
conditions (``create``, ``if_revision``) as compares without reading
first: one round trip; an interactive one (``transaction()``) reads, so it
raises at the call like LMDB.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from .._lmdb import index as lix
from .._lmdb.core import MAX_PAYLOAD, check_key
from ..errors import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    StoreUnavailableError,
    TransactionError,
    ValueTooLargeError,
)
from . import _common as c
from . import etcd_api_pb2 as pb
from . import index
from .backfill import violation_of
from .history import config_of, prepare
from .layout import decode_record, encode_ns, encode_record

if TYPE_CHECKING:
    from .store import EtcdStore

__all__ = ["EtcdTxn"]

_PAGE = 1000  # keys per Range when reading a whole kind (pinned, so consistent)
_ATTEMPTS = 20  # commits repeated after a stale keep count / history read


class ReadConflict(ConflictError):
    """A ConflictError because something the transaction READ changed before
    it committed (not a failed ``if_revision``): a Store call made of the
    library's own reads and writes is safe to run again."""


class ListedConflict(ReadConflict):
    """A transaction() that read a range (a list, count, search, kinds) saw
    the store change after its pinned revision: its view is stale."""

    def __init__(self, what: str, pin: int, actual: int) -> None:
        super().__init__(what, "", pin, actual)
        self.args = (
            f"conflict: this transaction listed {what} at revision {pin}, and the "
            f"store changed at revision {actual} before it committed (nothing was "
            "written: run it again)",
        )


class _Stale(Exception):
    """A compare the backend added itself (keep count, history read) failed:
    prepare again and send again."""


def _ctx(kind: bytes, id: bytes) -> tuple[str, str]:
    return kind.decode("utf-8", "replace"), id.decode("utf-8", "replace")


class EtcdTxn:
    """One transaction on an etcd store; ends with commit() or abort()."""

    OPS: ClassVar[dict[Callable[..., Any], Callable[..., Any]]] = {}  # filled below

    def __init__(
        self, store: EtcdStore, write: bool, *, interactive: bool = False, revision: int = 0
    ) -> None:
        self.store = store
        self.client = store._client
        self.lay = store._layout
        self.write = write
        self.interactive = interactive
        self.pin = revision
        # key -> (expected mod_revision, why: "read" | "create" | "if", kind, id)
        self.conds: dict[bytes, tuple[int, str, bytes, bytes]] = {}
        self.writes: dict[bytes, bytes | None] = {}  # key -> value (None: delete)
        # kind -> (updated_ns, count seen) of its delete_kind; the same per
        # (kind, id prefix) for delete_resources_by_prefix
        self.dropped: dict[bytes, tuple[int, int]] = {}
        self.meta: dict[bytes, bytes] = {}
        self.pending_marks: dict[bytes, bytes] = {}  # event marks written here
        self.prefixes: dict[tuple[bytes, bytes], tuple[int, int]] = {}
        # indexes (index.py): unique-value keys compared to be absent, what
        # each holds, range deletes, meta deletes
        self.unique_cmps: builtins.list[pb.Compare] = []
        # range guards of prefix deletes (history.prepare): no failure
        # reads; a failed one leaves _send at its last line (_Stale)
        self.range_cmps: builtins.list[pb.Compare] = []
        self.unique_keys: dict[bytes, tuple[Any, bytes]] = {}
        # unique key -> ids that let its value go / take it (index.unique_upkeep)
        self.unique_gives: dict[bytes, builtins.list[bytes]] = {}
        self.unique_takes: dict[bytes, builtins.list[bytes]] = {}
        self.range_deletes: builtins.list[tuple[bytes, bytes]] = []
        self.meta_deletes: set[bytes] = set()
        self.schemas: dict[str, Any] | None = None
        self.history_ids_cache: dict[bytes, builtins.list[bytes]] = {}  # history.py
        self.listed: bytes | None = None  # the first range a transaction() read
        self.response: pb.TxnResponse | None = None
        self.counts = False  # the commit's caller reads its deletes' counts
        self.ptr = True  # "live", as CTxn's (tests look at nothing else)
        # The finishing shape of ResourceOps (see CTxn): ``finish`` ends
        # this txn unless ``slot`` is None (a transaction()'s, ended at its
        # exit); the store's ``_after`` then raises its error or returns
        # its revision.  Nothing is held on the server until the commit, so
        # an interrupt before it leaves nothing to release.
        self.slot: object = True
        self.rc: Any = None
        self.revp: Any = None
        self.commit_asked = False
        self.finished = False
        self.result = 0
        self.error: BaseException | None = None

    # -- reads ------------------------------------------------------------

    def range(self, key: bytes, end: bytes = b"", **kw: Any) -> pb.RangeResponse:
        resp = self.client.range(
            key, end, revision=self.pin, serializable=self.store._serializable, **kw
        )
        if not self.pin:
            self.pin = resp.header.revision
        if end:
            self.note_range(key)
        return resp

    def note_range(self, key: bytes) -> None:
        """A range from ``key`` was read.  etcd cannot compare "no key came
        or went in this range": a transaction() that read one compares the
        store's last change at its commit instead (_send)."""
        if self.interactive and self.listed is None:
            self.listed = key

    def revision(self) -> int:
        """The revision this transaction reads at (pinned by its first read)."""
        if not self.pin:
            self.range(self.lay.meta_key(b"format"), keys_only=True)
        return self.pin

    def pending(self) -> int:
        return 0  # etcd tells a revision only when the Txn commits

    def _gone(self, kind: bytes, id: bytes) -> bool:
        """Deleted by this transaction's kind or prefix delete."""
        return kind in self.dropped or any(
            k == kind and id.startswith(p) for k, p in self.prefixes)

    def overlaid(self, kind: bytes) -> bool:
        """Whether reads of ``kind`` must merge this transaction's own writes."""
        prefix = self.lay.kind_prefix(kind)
        return any(k == kind for k, _ in self.prefixes) or any(
            k.startswith(prefix) for k in self.writes)

    def _lookup(self, key: bytes, kind: bytes, id: bytes) -> pb.KeyValue | None:
        if self._gone(kind, id):
            return None  # deleted here: nothing to compare
        resp = self.range(key)
        kv = resp.kvs[0] if resp.kvs else None
        if self.write and key not in self.conds:
            self.conds[key] = (kv.mod_revision if kv else 0, "read", kind, id)
        return kv

    def read_key(self, key: bytes) -> pb.KeyValue | None:
        """Any key of the store at the pinned revision (a compare is recorded
        in a write transaction)."""
        if key in self.writes:
            raise TransactionError("internal: read_key of a key written in this transaction")
        resp = self.range(key)
        kv = resp.kvs[0] if resp.kvs else None
        if self.write and key not in self.conds:
            self.conds[key] = (kv.mod_revision if kv else 0, "read", b"", key)
        return kv

    def exists(self, kind: bytes, id: bytes) -> bool:
        try:
            self.get(kind, id)
        except NotFoundError:
            return False
        return True

    def list_ids(
        self, kind: bytes, after: bytes | None, prefix: bytes | None, limit: int
    ) -> builtins.list[str]:
        check_key(kind, after or prefix or b"_")
        if kind in self.dropped:
            return []
        if self.overlaid(kind):
            ids = [r[0] for r in self._merged(kind, after or None, 0)
                   if r[0].startswith(prefix or b"")]
            return [i.decode("utf-8") for i in (ids[:limit] if limit else ids)]
        base = self.lay.kind_prefix(kind)
        scope = base + (prefix or b"")
        start = base + after + b"\0" if after else scope
        if start < scope:
            start = scope
        end = c.prefix_end(scope)
        out: builtins.list[str] = []
        n = len(base)
        while True:
            want = _PAGE if not limit else min(_PAGE, limit - len(out))
            resp = self.range(start, end, limit=want, keys_only=True)
            out.extend(kv.key[n:].decode("utf-8") for kv in resp.kvs)
            if not resp.more or not resp.kvs or (limit and len(out) >= limit):
                return out
            start = resp.kvs[-1].key + b"\0"

    def get(self, kind: bytes, id: bytes) -> tuple[bytes, int, int]:
        check_key(kind, id)
        key = self.lay.key(kind, id)
        if key in self.writes:
            value = self.writes[key]
            if value is None:
                raise NotFoundError(f"resource not found: {'/'.join(_ctx(kind, id))}")
            payload, ns = decode_record(value, key)
            return payload, ns, 0
        kv = self._lookup(key, kind, id)
        if kv is None:
            raise NotFoundError(f"resource not found: {'/'.join(_ctx(kind, id))}")
        payload, ns = decode_record(kv.value, key)
        return payload, ns, kv.mod_revision

    def list(
        self, kind: bytes, after: bytes | None, limit: int
    ) -> builtins.list[tuple[bytes, bytes, int, int]]:
        """(id, payload, updated_ns, revision) of up to ``limit`` (0: all)
        records after ``after``, at the pinned revision, with this
        transaction's own writes merged (their revision: 0, until commit)."""
        check_key(kind, after if after else b"_")
        if kind in self.dropped:
            return []
        if self.overlaid(kind):
            return self._merged(kind, after, limit)
        return self._stored(kind, after, limit)

    def _merged(
        self, kind: bytes, after: bytes | None, limit: int
    ) -> builtins.list[tuple[bytes, bytes, int, int]]:
        prefix = self.lay.kind_prefix(kind)
        rows = {r[0]: r for r in self._stored(kind, None, 0) if not self._gone(kind, r[0])}
        for key, value in self.writes.items():
            if key.startswith(prefix):
                id = key[len(prefix) :]
                if value is None:
                    rows.pop(id, None)
                else:
                    payload, ns = decode_record(value, key)
                    rows[id] = (id, payload, ns, 0)
        out = [rows[i] for i in sorted(rows) if after is None or i > after]
        return out[:limit] if limit else out

    def _stored(
        self, kind: bytes, after: bytes | None, limit: int
    ) -> builtins.list[tuple[bytes, bytes, int, int]]:
        prefix = self.lay.kind_prefix(kind)
        start = prefix + after + b"\0" if after else prefix
        end = c.prefix_end(prefix)
        out: builtins.list[tuple[bytes, bytes, int, int]] = []
        n = len(prefix)
        while True:
            want = _PAGE if not limit else min(_PAGE, limit - len(out))
            resp = self.range(start, end, limit=want)
            for kv in resp.kvs:
                payload, ns = decode_record(kv.value, kv.key)
                out.append((kv.key[n:], payload, ns, kv.mod_revision))
            if not resp.more or not resp.kvs or (limit and len(out) >= limit):
                return out
            start = resp.kvs[-1].key + b"\0"

    def count(self, kind: bytes) -> int:
        check_key(kind, b"_")
        if kind in self.dropped:
            return 0
        if self.overlaid(kind):
            return len(self._merged(kind, None, 0))
        prefix = self.lay.kind_prefix(kind)
        return int(self.range(prefix, c.prefix_end(prefix), count_only=True).count)

    def _kinds_under(self, base: bytes) -> Iterator[bytes]:
        """The kinds of the "<kind>/..." keys under ``base``: a skip-scan,
        one Range per kind."""
        start, end = base, c.prefix_end(base)
        while True:
            resp = self.range(start, end, limit=1, keys_only=True)
            if not resp.kvs:
                return
            kind = resp.kvs[0].key[len(base) :].split(b"/", 1)[0]
            yield kind
            start = base + kind + b"0"  # b"0" is the byte after b"/"

    def kinds(self) -> builtins.list[str]:
        """Kinds holding a resource, as this transaction sees them (its own
        writes and deletes merged, as on LMDB)."""
        found = {kind for kind in self._kinds_under(self.lay.res) if kind not in self.dropped}
        touched = {k for k, _ in self.prefixes}
        for key in self.writes:
            split = self.lay.split(key)
            if split is not None:
                touched.add(split[0])
        found -= touched
        found.update(k for k in touched if self.list_ids(k, None, None, 1))
        return sorted(kind.decode("utf-8", "replace") for kind in found)

    def kinds_with_state(self) -> builtins.list[str]:
        """Sorted kinds with a history keep count, kept versions or a recorded
        schema, records or not (as the LMDB backend's: what a dump carries);
        a schema kept under a hashed key is left out."""
        out: set[bytes] = set(self._kinds_under(self.lay.history))  # kept versions
        for pre in (b"history.keep/", b"kind.type/"):
            base = self.lay.meta_key(pre)
            resp = self.range(base, c.prefix_end(base), keys_only=True)
            out.update(kv.key[len(base) :] for kv in resp.kvs)
        return sorted(k.decode("utf-8", "replace") for k in out
                      if k and not k.startswith(b"#") and k not in self.dropped)

    def meta_get(self, key: bytes) -> bytes | None:
        if key in self.meta:
            return self.meta[key]
        resp = self.range(self.lay.meta_key(key))
        return resp.kvs[0].value if resp.kvs else None

    def meta_put(self, key: bytes, value: bytes) -> None:
        self._writable()
        self.meta[key] = value

    # -- writes -----------------------------------------------------------

    def _writable(self) -> None:
        if not self.write:
            raise TransactionError("write in a read transaction")

    def put(
        self, kind: bytes, id: bytes, payload: bytes, ns: int, create: bool,
        if_revision: int | None = None,
    ) -> None:
        self._writable()
        check_key(kind, id)
        if len(payload) > MAX_PAYLOAD:
            raise ValueTooLargeError(f"serialized message is {len(payload)} bytes")
        if kind in self.dropped:
            raise TransactionError(
                f"etcd: this transaction deleted kind {kind.decode('utf-8', 'replace')!r} "
                "with delete_resources_by_kind and cannot write into it too (one etcd Txn "
                "cannot delete a range and put a key inside it)"
            )
        if any(k == kind and id.startswith(p) for k, p in self.prefixes):
            raise TransactionError(
                "etcd: this transaction deleted these ids with delete_resources_by_prefix "
                "and cannot write into them too"
            )
        key = self.lay.key(kind, id)
        self._condition(key, kind, id, create, if_revision)
        if self.interactive:
            self._unique_check(kind, id, payload)
        self.writes[key] = encode_record(payload, ns)

    def _unique_check(self, kind: bytes, id: bytes, payload: bytes) -> None:
        """In a transaction(), as on LMDB: a value of a unique index that
        another record holds, as this transaction sees them, is
        UniqueViolationError at the call (the commit checks again)."""
        defs = [d for d in config_of(self, kind, False).defs if d.unique]
        if not defs:
            return
        key = self.lay.key(kind, id)
        if key in self.writes:
            value = self.writes[key]
            old = decode_record(value, key)[0] if value is not None else None
        elif self._gone(kind, id):
            old = None
        else:
            kvs = self.range(key).kvs
            old = decode_record(kvs[0].value, key)[0] if kvs else None
        for d in defs:
            before = set(lix.extract(d.plan, old)) if old is not None else set()
            for enc in sorted(set(lix.extract(d.plan, payload)) - before):
                holder = self._holder(kind, id, d, enc)
                if holder is not None:
                    raise violation_of(d, enc, holder)

    def _holder(self, kind: bytes, id: bytes, d: Any, enc: bytes) -> bytes | None:
        """Who else holds ``enc`` of unique index ``d``, as this transaction sees it."""
        pre = self.lay.kind_prefix(kind)
        for key, value in self.writes.items():  # records written here: their new values
            if key.startswith(pre) and key != pre + id and value is not None and \
                    enc in lix.extract(d.plan, decode_record(value, key)[0]):
                return key[len(pre) :]
        kvs = self.range(index.unique_key(index.prefix(self, kind, d.name.encode()), enc)).kvs
        if not kvs:
            return None
        holder = bytes(kvs[0].value)
        if holder == id or self._gone(kind, holder) or pre + holder in self.writes:
            return None  # rewritten or deleted here: its new value was looked at above
        return holder

    def _condition(
        self, key: bytes, kind: bytes, id: bytes, create: bool, if_revision: int | None
    ) -> None:
        if not create and if_revision is None:
            return
        if not self.interactive:  # one Store call: the condition is a compare
            self.conds[key] = (0, "create", kind, id) if create else (if_revision or 0, "if",
                                                                       kind, id)
            return
        if key in self.writes:  # written earlier in this transaction
            exists = self.writes[key] is not None
            actual = -1 if exists else 0
        else:
            kv = self._lookup(key, kind, id)
            exists, actual = kv is not None, kv.mod_revision if kv else 0
        if create and exists:
            raise AlreadyExistsError(f"resource already exists: {'/'.join(_ctx(kind, id))}")
        if if_revision is not None and actual != if_revision:
            k, i = _ctx(kind, id)
            raise ConflictError(k, i, if_revision, max(actual, 0))

    def delete(self, kind: bytes, id: bytes, if_revision: int | None = None) -> bool:
        """Buffer a delete; True if the resource exists (as this transaction sees it)."""
        self._writable()
        check_key(kind, id)
        key = self.lay.key(kind, id)
        if key in self.writes:
            exists, actual = self.writes[key] is not None, -1
        else:
            kv = self._lookup(key, kind, id)
            exists, actual = kv is not None, kv.mod_revision if kv else 0
        if if_revision is not None and actual != if_revision:
            k, i = _ctx(kind, id)
            raise ConflictError(k, i, if_revision, max(actual, 0))
        if exists:
            self.writes[key] = None
        return exists

    def delete_kind(self, kind: bytes) -> int:
        """Buffer the delete of a whole kind (one DeleteRange and its marker);
        the count this transaction sees."""
        self._writable()
        n = self.count(kind)
        prefix = self.lay.kind_prefix(kind)
        for key in [k for k in self.writes if k.startswith(prefix)]:
            del self.writes[key]  # one Txn cannot put a key inside a range it deletes
        self.dropped[kind] = (time.time_ns(), n)
        return n

    def delete_prefix(self, kind: bytes, prefix: bytes) -> int:
        """Buffer the delete of the ids starting with ``prefix`` (b"": the kind)."""
        if not prefix:
            return self.delete_kind(kind)
        self._writable()
        check_key(kind, prefix)
        scope = self.lay.kind_prefix(kind) + prefix
        if kind in self.dropped:
            n = 0
        elif self.overlaid(kind):  # as this transaction sees them (its writes merged)
            n = sum(1 for r in self._merged(kind, None, 0) if r[0].startswith(prefix))
        else:
            n = int(self.range(scope, c.prefix_end(scope), count_only=True).count)
        for key in [k for k in self.writes if k.startswith(scope)]:
            del self.writes[key]
        self.prefixes[(kind, prefix)] = (time.time_ns(), n)
        return n

    # -- end --------------------------------------------------------------

    def finish(self, slot: object, ok: object, rc: object, revp: object) -> int:
        if slot is None or self.finished:
            return 0
        self.finished = True
        try:
            self.result = self.store._end(self, bool(ok))
        except BaseException as exc:
            self.error = exc
        return 0

    def abort(self) -> None:
        self.ptr = False

    def commit(self) -> int:
        """Send everything as one Txn; the revision it committed at (0: nothing to do)."""
        self.ptr = False
        if not (self.writes or self.meta or self.dropped or self.prefixes
                or self.range_deletes or self.meta_deletes):
            return 0
        for attempt in range(_ATTEMPTS):
            hist_cmps, hist_ops = prepare(self, attempt > 0)
            try:
                return self._send(hist_cmps, hist_ops)
            except _Stale:
                continue
        raise StoreUnavailableError(
            "etcd: the history of the written kinds kept changing under this write "
            f"({_ATTEMPTS} attempts)"
        )

    def _send(
        self, extra_cmps: builtins.list[tuple[bytes, int]], extra_ops: builtins.list[pb.RequestOp]
    ) -> int:
        lay = self.lay
        compares = [c.cmp_mod(k, "==", v[0]) for k, v in self.conds.items()]
        compares += [c.cmp_mod(k, "==", rev) for k, rev in extra_cmps]
        success: builtins.list[pb.RequestOp] = []
        changed = False  # a marker (one change) only where something was there
        for kind, (ns, n) in self.dropped.items():
            prefix = lay.kind_prefix(kind)
            if n:
                success.append(c.op_put(lay.marker(kind), encode_ns(ns)))
            success.append(c.op_delete(prefix, c.prefix_end(prefix)))
            changed = changed or bool(n)
        for (kind, prefix), (ns, n) in self.prefixes.items():
            scope = lay.kind_prefix(kind) + prefix
            if n:
                success.append(c.op_put(lay.prefix_marker(kind, prefix), encode_ns(ns)))
            success.append(c.op_delete(scope, c.prefix_end(scope)))
            changed = changed or bool(n)
        for key, value in self.writes.items():
            success.append(c.op_delete(key) if value is None else c.op_put(key, value))
            changed = changed or key.startswith(lay.res) or key.startswith(lay.events)
        if changed:
            success.append(c.op_put(lay.last, b""))
        for key, value in self.meta.items():
            success.append(c.op_put(lay.meta_key(key), value))
        for key in self.meta_deletes:
            success.append(c.op_delete(lay.meta_key(key)))
        for start, end in self.range_deletes:
            success.append(c.op_delete(start, end))
        success += extra_ops
        cmp_keys = [*self.conds, *(k for k, _ in extra_cmps)]
        failure = [c.op_range(k, keys_only=True) for k in cmp_keys]
        ukeys = [u.key for u in self.unique_cmps]
        compares += self.unique_cmps
        failure += [c.op_range(k) for k in ukeys]
        compares += self.range_cmps  # last: the indexes above stay those of cmp_keys, ukeys
        if self.listed is not None and self.write:
            # a transaction() that read a range: nothing of the store changed
            # since its pinned revision (every changing Txn puts c/last)
            compares.append(c.cmp_mod(lay.last, "<", self.pin + 1))
            failure.append(c.op_range(lay.last, keys_only=True))
        # a store's client guards every write Txn (once.py) and retries it;
        # retry= is for an unguarded client: never re-send a user condition
        resp = self.client.txn(compares, success, failure, retry=not self.conds,
                               counts=self.counts)
        self.response = resp
        if resp.succeeded:
            return int(resp.header.revision)
        stale = False
        for i, key in enumerate(cmp_keys):
            kvs = resp.responses[i].response_range.kvs
            actual = kvs[0].mod_revision if kvs else 0
            expected = compares[i].mod_revision
            if actual == expected:
                continue
            if i >= len(self.conds):
                stale = True
                continue
            _, why, kind, id = self.conds[key]
            k, d = _ctx(kind, id)
            if why == "create":
                raise AlreadyExistsError(f"resource already exists: {k}/{d}")
            if why == "read":
                raise ReadConflict(k, d, expected, actual)
            raise ConflictError(k, d, expected, actual)
        if self.listed is not None:
            kvs = resp.responses[-1].response_range.kvs
            if kvs and kvs[0].mod_revision > self.pin:
                split = lay.split(self.listed)
                what = "kind " + _ctx(split[0], b"")[0] if split else "the store"
                raise ListedConflict(what, self.pin, kvs[0].mod_revision)
        if stale:
            raise _Stale()
        for j, key in enumerate(ukeys):
            kvs = resp.responses[len(cmp_keys) + j].response_range.kvs
            if kvs:
                raise index.violation(self, key, kvs[0].value)
        raise _Stale()  # compared again in between: try again


def raw_page(txn: EtcdTxn, kind: bytes, after: bytes | None) -> builtins.list[tuple[bytes, bytes]]:
    """(id, stored value) of up to 512 records after ``after`` (``pystore verify``)."""
    prefix = txn.lay.kind_prefix(kind)
    start = prefix + after + b"\0" if after else prefix
    resp = txn.range(start, c.prefix_end(prefix), limit=512)
    return [(kv.key[len(prefix) :], kv.value) for kv in resp.kvs]


def put_many(txn: EtcdTxn, kind: bytes, batch: builtins.list[tuple[bytes, bytes]], ns: int) -> None:
    for ib, _ in batch:  # every key checked before the first is buffered
        check_key(kind, ib)
    for ib, payload in batch:
        txn.put(kind, ib, payload, ns, False)


def ops_table() -> dict[Callable[..., Any], Callable[..., Any]]:
    """The CTxn-level callables ``ResourceOps`` passes to ``_run``, mapped to
    their etcd versions (see ``EtcdTxn.OPS``)."""
    from .._lmdb import events as lev
    from .._lmdb import fast, revs
    from .._lmdb import index as lix
    from .._lmdb import indexcheck as lic
    from .._lmdb.core import CTxn
    from ..cli import verify
    from . import events as ev
    from . import fastlist
    from . import history as h
    from . import indexcheck as eic

    return {
        CTxn.get: EtcdTxn.get,
        CTxn.put: EtcdTxn.put,
        CTxn.delete: EtcdTxn.delete,
        CTxn.delete_kind: EtcdTxn.delete_kind,
        CTxn.count: EtcdTxn.count,
        CTxn.list: EtcdTxn.list,
        CTxn.kinds: EtcdTxn.kinds,
        CTxn.exists: EtcdTxn.exists,
        CTxn.list_ids: EtcdTxn.list_ids,
        CTxn.delete_prefix: EtcdTxn.delete_prefix,
        lev.append: ev.append,
        lev.read: ev.read,
        lev.last: ev.last,
        lev.delete: ev.delete,
        lev.marks: ev.marks,
        lev.streams: ev.streams,
        lix.find: index.find,
        lix.count: index.count,
        lix.index_exists: index.index_exists,
        lix.create: index.create,
        lix.drop: index.drop,
        lix.rebuild: index.rebuild,
        lix.list_defs: index.list_defs,
        lix.entries: eic.entries,
        lic.store_problems: eic.store_problems,
        lic.unique_problems: eic.unique_problems,
        fast.list_wire: fastlist.list_wire,
        fast.put_many: put_many,
        revs.history: h.history,
        revs.get_at: h.get_at,
        revs.history_set: h.history_set,
        revs.history_keep: h.history_keep,
        revs.history_delete: h.history_delete,
        revs.history_ids: h.history_ids,
        revs.reserve: h.reserve,
        revs.history_load: h.history_load,
        verify._raw_page: raw_page,
    }


EtcdTxn.OPS = ops_table()
