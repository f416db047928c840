"""A thin synchronous client of etcd's v3 gRPC API.

One gRPC channel over every member (``round_robin``), no receive-size cap.
Every call has a deadline of ``timeout`` seconds; within it, a call that is
safe to repeat (ranges, puts, deletes, read-only transactions, compaction,
status; every write Txn once ``use_write_slots`` guards it, see once.py) is
retried with backoff on ``UNAVAILABLE`` (member down, no leader, leader
changed).  A deadline passed, or retries exhausted, raise
:class:`~pystore.errors.StoreUnavailableError`; etcd's own refusals are
mapped to pystore's exceptions (see ``_common.map_error``).  The client is
thread-safe; ``close()`` is idempotent; a client made before ``fork()``
raises :class:`~pystore.errors.ForkedError` in the child.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc

from ..errors import ForkedError, StoreClosedError, StoreError
from . import _common as c
from . import etcd_api_pb2 as pb
from .once import WriteSlots, guard, replay, unwrap
from .url import EtcdURL, parse_url

__all__ = ["EtcdClient", "Watch", "credentials_for"]

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
_SLOTS_DROP = 0.5  # seconds close() gives the delete of the write slots


def credentials_for(url: EtcdURL) -> grpc.ChannelCredentials | None:
    """TLS credentials from an ``etcds://`` URL's files (None for ``etcd://``)."""
    if not url.tls:
        return None

    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return grpc.ssl_channel_credentials(
        root_certificates=read(url.cacert),
        private_key=read(url.key),
        certificate_chain=read(url.cert),
    )


def url_options(url: str | EtcdURL) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The endpoints and client keywords of an ``etcd://``/``etcds://`` URL
    (shared by the sync and the asyncio client's ``from_url``)."""
    u = parse_url(url) if isinstance(url, str) else url
    return u.endpoints, {
        "timeout": u.timeout,
        "credentials": credentials_for(u),
        "server_name": u.server_name,
        "max_txn_ops": u.max_txn_ops,
        "max_request_bytes": u.max_request_bytes,
    }


def rpc_status(exc: grpc.RpcError) -> tuple[grpc.StatusCode | None, str]:
    """The status code and details of a failed call (None when it has none)."""
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = (exc.details() if callable(getattr(exc, "details", None)) else None) or ""
    if code == grpc.StatusCode.UNKNOWN and "context deadline exceeded" in details:
        # etcd passes the Go context's own error on when the deadline we sent
        # runs out inside the server first (a read waiting for quorum, say).
        code = grpc.StatusCode.DEADLINE_EXCEEDED
    return code, details


class EtcdClient:
    """A client of one etcd cluster.

    ``endpoints`` are ``host:port`` of the members; ``timeout`` (seconds) is
    the default deadline of each call, retries included.  ``max_txn_ops`` and
    ``max_request_bytes`` are checked before a Txn/Put is sent (``None``: no
    check; the server's refusal is mapped the same way).
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = c.DEFAULT_TIMEOUT,
        credentials: grpc.ChannelCredentials | None = None,
        server_name: str | None = None,
        max_txn_ops: int | None = c.DEFAULT_MAX_TXN_OPS,
        max_request_bytes: int | None = c.DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"etcd client: timeout must be > 0 seconds, not {timeout!r}")
        self._endpoints = tuple(endpoints)
        self._timeout = float(timeout)
        self._credentials = credentials
        self._server_name = server_name
        self.max_txn_ops = max_txn_ops
        self.max_request_bytes = max_request_bytes
        self._generation = c.fork_generation()
        self._lock = threading.Lock()
        self._closed = False
        self._member_channels: dict[str, grpc.Channel] = {}
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()
        self._slots: WriteSlots | None = None
        self._channel = self._open_channel(c.channel_target(self._endpoints))
        ch = self._channel
        self._range = _unary(ch, c.RANGE, pb.RangeResponse)
        # the same Range, its response left as wire bytes (the list fast path)
        self._range_raw: grpc.UnaryUnaryMultiCallable[object, bytes] = ch.unary_unary(
            c.RANGE, request_serializer=_serialize, response_deserializer=None
        )
        self._put = _unary(ch, c.PUT, pb.PutResponse)
        self._delete = _unary(ch, c.DELETE_RANGE, pb.DeleteRangeResponse)
        self._txn = _unary(ch, c.TXN, pb.TxnResponse)
        self._compact = _unary(ch, c.COMPACT, pb.CompactionResponse)
        self._status = _unary(ch, c.STATUS, pb.StatusResponse)
        self._members = _unary(ch, c.MEMBER_LIST, pb.MemberListResponse)
        self._alarm = _unary(ch, c.ALARM, pb.AlarmResponse)
        self._watch = ch.stream_stream(
            c.WATCH,
            request_serializer=_serialize,
            response_deserializer=pb.WatchResponse.FromString,
        )

    @classmethod
    def from_url(cls, url: str | EtcdURL) -> EtcdClient:
        """A client for an ``etcd://``/``etcds://`` URL (its options applied)."""
        endpoints, options = url_options(url)
        return cls(endpoints, **options)

    def _open_channel(self, target: str) -> grpc.Channel:
        opts = c.channel_options(self._server_name)
        if self._credentials is not None:
            return grpc.secure_channel(target, self._credentials, options=opts)
        return grpc.insecure_channel(target, options=opts)

    # -- properties ---------------------------------------------------------

    @property
    def endpoints(self) -> tuple[str, ...]:
        return self._endpoints

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def closed(self) -> bool:
        return self._closed

    # -- plumbing -------------------------------------------------------------

    def _check(self) -> None:
        if self._generation != c.fork_generation():
            raise ForkedError(
                "etcd client was made before fork(): gRPC channels do not survive a "
                "fork, make a new client (open a new Store) in the child process"
            )
        if self._closed:
            raise StoreClosedError("etcd client is closed")

    def _call(
        self,
        stub: Callable[..., _Resp],
        request: _Req,
        *,
        retry: bool,
        timeout: float | None,
    ) -> _Resp:
        self._check()
        budget = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        delays = c.backoff_delays(deadline)
        attempt = c.first_attempt_timeout(budget)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise c.unavailable(self._endpoints, budget)
            this = min(left, attempt) if retry else left
            try:
                return stub(request, timeout=this)
            except grpc.RpcError as exc:
                code, details = rpc_status(exc)
                if self._closed:
                    raise StoreClosedError("etcd client was closed during the call") from None
                if retry and code == grpc.StatusCode.DEADLINE_EXCEEDED and this < left:
                    attempt *= 2  # only this attempt's share of the deadline passed
                    continue
                if retry and c.is_retryable(code):
                    delay = next(delays, None)
                    if delay is None:
                        raise c.unavailable(self._endpoints, budget, details) from None
                    time.sleep(delay)
                    continue
                if code == grpc.StatusCode.UNAVAILABLE:
                    raise c.ambiguous(self._endpoints, details) from None
                raise c.map_error(code, details, self._endpoints, budget) from None

    # -- KV -------------------------------------------------------------------

    def range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        limit: int = 0,
        revision: int = 0,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        sort_order: pb.RangeRequest.SortOrder = pb.RangeRequest.NONE,
        sort_target: pb.RangeRequest.SortTarget = pb.RangeRequest.KEY,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        timeout: float | None = None,
    ) -> pb.RangeResponse:
        """Keys in ``[key, range_end)`` (only ``key`` when ``range_end`` is
        empty; :func:`prefix_end` gives the end of a prefix), at ``revision``
        (0: the newest).  A compacted ``revision`` raises ``EtcdCompactedError``."""
        req = c.range_request(
            key,
            range_end,
            limit=limit,
            revision=revision,
            serializable=serializable,
            keys_only=keys_only,
            count_only=count_only,
            sort_order=sort_order,
            sort_target=sort_target,
            min_mod_revision=min_mod_revision,
            max_mod_revision=max_mod_revision,
        )
        return self._call(self._range, req, retry=True, timeout=timeout)

    def range_raw(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        limit: int = 0,
        revision: int = 0,
        serializable: bool = False,
        timeout: float | None = None,
    ) -> bytes:
        """``range`` with the RangeResponse left as its wire bytes (parsed by
        the C core's ``ps_etcd_range_wire``, not by Python)."""
        req = c.range_request(
            key, range_end, limit=limit, revision=revision, serializable=serializable
        )
        return self._call(self._range_raw, req, retry=True, timeout=timeout)

    def get(
        self,
        key: bytes,
        *,
        revision: int = 0,
        serializable: bool = False,
        timeout: float | None = None,
    ) -> pb.KeyValue | None:
        """The one key's KeyValue, or None when absent."""
        resp = self.range(key, revision=revision, serializable=serializable, timeout=timeout)
        return resp.kvs[0] if resp.kvs else None

    def put(
        self,
        key: bytes,
        value: bytes,
        *,
        prev_kv: bool = False,
        lease: int = 0,
        timeout: float | None = None,
    ) -> pb.PutResponse:
        """Store ``value`` under ``key``.  Retried on UNAVAILABLE: a put whose
        first attempt did commit is written again with the same value."""
        req = pb.PutRequest(key=key, value=value, prev_kv=prev_kv, lease=lease)
        c.check_limits(req, self.max_txn_ops, self.max_request_bytes)
        return self._call(self._put, req, retry=True, timeout=timeout)

    def delete_range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        prev_kv: bool = False,
        timeout: float | None = None,
    ) -> pb.DeleteRangeResponse:
        """Delete the keys in ``[key, range_end)`` in one revision."""
        req = pb.DeleteRangeRequest(key=key, range_end=range_end, prev_kv=prev_kv)
        return self._call(self._delete, req, retry=True, timeout=timeout)

    def txn(
        self,
        compare: Sequence[pb.Compare] = (),
        success: Sequence[pb.RequestOp] = (),
        failure: Sequence[pb.RequestOp] = (),
        *,
        retry: bool | None = None,
        timeout: float | None = None,
        counts: bool = False,
    ) -> pb.TxnResponse:
        """If every ``compare`` holds, run ``success``, else ``failure``, as
        one atomic revision.  ``retry``: repeat on UNAVAILABLE; by default
        only a read-only transaction is (a write that did commit before the
        failure could otherwise be judged again against its own result).
        ``counts``: the caller reads the ``deleted`` counts of the success
        branch's deletes (a guarded write's answer rebuilt after a lost
        reply carries them only then, see once.py's ``replay``).

        etcd serves a Txn with no ops, or only serializable ranges,
        member-locally: its compares may see a lagging member.  Include a
        (linearizable) ``op_range`` to compare against the latest state."""
        read_only = c.ops_read_only(success, failure)
        slots = self._slots
        if slots is not None and not read_only:
            return self._txn_once(slots, compare, success, failure, timeout, counts)
        req = c.txn_request(compare, success, failure)
        c.check_limits(req, self.max_txn_ops, self.max_request_bytes)
        again = read_only if retry is None else retry
        return self._call(self._txn, req, retry=again, timeout=timeout)

    def use_write_slots(self, slots: WriteSlots) -> None:
        """Send every write Txn from now on guarded by a slot of ``slots``
        (``once.py``): safe to send again, so always retried, ``retry``
        notwithstanding.  ``close()`` deletes the free slots' keys."""
        self._slots = slots

    def _txn_once(
        self,
        slots: WriteSlots,
        compare: Sequence[pb.Compare],
        success: Sequence[pb.RequestOp],
        failure: Sequence[pb.RequestOp],
        timeout: float | None,
        counts: bool,
    ) -> pb.TxnResponse:
        slot = slots.take()
        sent = 0
        try:
            outer, inner = guard(compare, success, failure, slot, os.urandom(16))
            # etcd lets a Txn nested in another hold that one's op count less
            room = None if self.max_txn_ops is None else self.max_txn_ops - 1
            c.check_limits(inner, room, self.max_request_bytes, guarded=True)
            c.check_limits(outer, None, self.max_request_bytes)
        except BaseException:
            slots.give(slot, reuse=True)  # nothing was sent through it
            raise

        def send(r: pb.TxnRequest, timeout: float) -> pb.TxnResponse:
            nonlocal sent
            sent += 1
            return self._txn(r, timeout=timeout)

        answered = False
        try:
            resp = self._call(send, outer, retry=True, timeout=timeout)
            answered = True
        finally:
            slots.give(slot, reuse=sent == 0 or (answered and sent == 1))
        if not resp.succeeded:
            return unwrap(resp)
        # an earlier attempt of this call applied the write (its answer was lost)
        return replay(success, resp, self.range, counts)

    def compact(
        self, revision: int, *, physical: bool = False, timeout: float | None = None
    ) -> pb.CompactionResponse:
        """Drop the history before ``revision``.  Compacting at or below the
        current compaction revision raises ``EtcdCompactedError``."""
        req = pb.CompactionRequest(revision=revision, physical=physical)
        return self._call(self._compact, req, retry=True, timeout=timeout)

    # -- cluster ------------------------------------------------------------

    def status(
        self, endpoint: str | None = None, *, timeout: float | None = None
    ) -> pb.StatusResponse:
        """Maintenance/Status of one member: ``endpoint`` (``host:port``), or
        whichever member the balancer picks."""
        stub = self._status if endpoint is None else self._member_status(endpoint)
        return self._call(stub, pb.StatusRequest(), retry=True, timeout=timeout)

    def _member_status(
        self, endpoint: str
    ) -> grpc.UnaryUnaryMultiCallable[object, pb.StatusResponse]:
        with self._lock:
            self._check()
            ch = self._member_channels.get(endpoint)
            if ch is None:
                ch = self._open_channel(c.channel_target([endpoint]))
                self._member_channels[endpoint] = ch
        return _unary(ch, c.STATUS, pb.StatusResponse)

    def member_list(self, *, timeout: float | None = None) -> pb.MemberListResponse:
        return self._call(self._members, pb.MemberListRequest(), retry=True, timeout=timeout)

    def alarms(self, *, timeout: float | None = None) -> list[pb.AlarmMember]:
        """The cluster's raised alarms (NOSPACE, CORRUPT)."""
        resp = self._call(self._alarm, pb.AlarmRequest(), retry=True, timeout=timeout)
        return list(resp.alarms)

    def leader(self, *, timeout: float | None = None) -> pb.Member:
        """The member that leads the cluster now (``Status.leader`` matched to
        ``MemberList``).  No leader within the timeout: StoreUnavailableError."""
        budget = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        for delay in c.backoff_delays(deadline):
            left = max(deadline - time.monotonic(), 0.001)
            lead = self.status(timeout=left).leader
            if lead:
                members = self.member_list(timeout=max(deadline - time.monotonic(), 0.001))
                for m in members.members:
                    if lead == m.ID:
                        return m
            time.sleep(delay)
        raise c.unavailable(self._endpoints, budget, "no leader elected")

    # -- watch ----------------------------------------------------------------

    def watch(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
        timeout: float | None = None,
    ) -> Watch:
        """Watch ``[key, range_end)`` from ``start_revision`` (inclusive; 0:
        from now).  Returns once etcd created the watcher; iterate the result
        for WatchResponses (events, or none for a progress notification)."""
        self._check()
        create = pb.WatchCreateRequest(
            key=key,
            range_end=range_end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            progress_notify=progress_notify,
        )
        w = Watch(self, create, self._timeout if timeout is None else timeout)
        with self._lock:
            if self._closed:
                w.close()
                raise StoreClosedError("etcd client is closed")
            self._watches.add(w)
        return w

    # -- life cycle -------------------------------------------------------------

    def close(self) -> None:
        """Close every watch and channel; idempotent.  Calls in flight in other
        threads end with StoreClosedError.  The free write slots' keys go
        first (one Txn of at most ``_SLOTS_DROP`` seconds, its failure
        ignored: they are not data); from then on a write Txn raises
        StoreClosedError (never goes unguarded)."""
        self._drop_slots()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            watches = list(self._watches)
            channels = [self._channel, *self._member_channels.values()]
            self._member_channels.clear()
        for w in watches:
            w.close()
        if self._generation == c.fork_generation():  # never touch gRPC in a forked child
            for ch in channels:
                ch.close()

    def _drop_slots(self) -> None:
        """Delete the free slots (once.py: a retired slot, or one in use,
        keeps its token for an attempt that may still commit)."""
        slots = self._slots
        if slots is None or self._closed or self._generation != c.fork_generation():
            return
        keys = slots.close()
        if keys is None:
            ops = [c.op_delete(slots.prefix, c.prefix_end(slots.prefix))]
        else:
            ops = [c.op_delete(k) for k in keys[: self.max_txn_ops or len(keys)]]
        if not ops:
            return
        req = c.txn_request((), ops, ())
        with contextlib.suppress(StoreError):
            self._call(self._txn, req, retry=False, timeout=_SLOTS_DROP)

    def __enter__(self) -> EtcdClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<EtcdClient {','.join(self._endpoints)} {state}>"


def _unary(
    ch: grpc.Channel, method: str, resp: type[_Resp]
) -> grpc.UnaryUnaryMultiCallable[object, _Resp]:
    return ch.unary_unary(
        method,
        request_serializer=_serialize,
        response_deserializer=resp.FromString,  # type: ignore[attr-defined]
    )


def _serialize(msg: object) -> bytes:
    return msg.SerializeToString()  # type: ignore[attr-defined, no-any-return]


class Watch:
    """One etcd watcher on its own bidi stream; an iterator of WatchResponses.

    A stream broken by a member's loss is re-created on another member from
    the next revision not yet delivered (within the client's timeout, else
    StoreUnavailableError), so no event is skipped or repeated.  A start
    revision that was compacted raises ``EtcdCompactedError`` (with
    ``compact_revision``).  ``close()`` (or ``with``) ends the iteration.
    """

    def __init__(self, client: EtcdClient, create: pb.WatchCreateRequest, timeout: float) -> None:
        self._client = client
        self._create = create
        self._timeout = timeout
        self._closed = False
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[pb.WatchRequest | None] = queue.SimpleQueue()
        self._call: grpc._CallIterator[pb.WatchResponse] | None = None
        self.watch_id = 0
        self.reconnects = 0  # streams re-created after a lost member
        # The next revision the caller has not seen (0: "from now", until created).
        self.next_revision = create.start_revision
        self._connect()

    def _connect(self) -> None:
        """Open the stream and wait for ``created``, retrying UNAVAILABLE
        with backoff until the timeout."""
        deadline = time.monotonic() + self._timeout
        delays = c.backoff_delays(deadline)
        detail = ""
        while not self._closed:
            self._client._check()
            requests: queue.SimpleQueue[pb.WatchRequest | None] = queue.SimpleQueue()
            create = pb.WatchCreateRequest()
            create.CopyFrom(self._create)
            create.start_revision = self.next_revision
            requests.put(pb.WatchRequest(create_request=create))
            call = self._client._watch(_drain(requests))
            fired = threading.Event()

            timer = threading.Timer(
                max(deadline - time.monotonic(), 0.0), _expire, args=(fired, call)
            )
            timer.daemon = True
            timer.start()
            try:
                first = next(call)
            except grpc.RpcError as exc:
                code, detail = rpc_status(exc)
                requests.put(None)
                if self._closed:
                    return
                if not fired.is_set() and not c.is_retryable(code):
                    raise c.map_error(code, detail, self._client.endpoints, self._timeout) from None
                delay = None if fired.is_set() else next(delays, None)
                if delay is None:
                    raise c.unavailable(self._client.endpoints, self._timeout, detail) from None
                time.sleep(delay)
                continue
            finally:
                timer.cancel()
            if not first.created:
                requests.put(None)
                call.cancel()
                raise StoreError(f"etcd watch: unexpected first response {first!r}")
            with self._lock:
                self._requests, self._call = requests, call
                self.watch_id = first.watch_id
                if self.next_revision == 0:
                    self.next_revision = first.header.revision + 1
            if first.canceled:
                self._raise_canceled(first)
            if self._closed:  # closed while connecting
                requests.put(None)
                call.cancel()
            return

    def _raise_canceled(self, resp: pb.WatchResponse) -> None:
        self.close()
        if resp.compact_revision:
            raise c.EtcdCompactedError(
                f"etcd watch from revision {self.next_revision}: history before "
                f"{resp.compact_revision} was compacted (list again, then watch from "
                "the list's revision)",
                resp.compact_revision,
            )
        raise StoreError(f"etcd watch canceled by the server: {resp.cancel_reason or 'no reason'}")

    def __iter__(self) -> Iterator[pb.WatchResponse]:
        return self

    def __next__(self) -> pb.WatchResponse:
        while True:
            call = self._call
            if self._closed or call is None:
                raise StopIteration
            try:
                resp = next(call)
            except StopIteration:
                if self._closed:
                    raise
                detail = "the server ended the watch stream"
                code: grpc.StatusCode | None = grpc.StatusCode.UNAVAILABLE
            except grpc.RpcError as exc:
                if self._closed:
                    raise StopIteration from None
                code, detail = rpc_status(exc)
            else:
                if resp.canceled:
                    self._raise_canceled(resp)
                if resp.created:
                    continue
                if resp.events:
                    self.next_revision = resp.events[-1].kv.mod_revision + 1
                elif resp.header.revision >= self.next_revision:
                    self.next_revision = resp.header.revision + 1
                return resp
            if self._client.closed:
                raise StopIteration
            if not c.is_retryable(code):
                self.close()
                raise c.map_error(code, detail, self._client.endpoints, self._timeout)
            self._requests.put(None)
            self.reconnects += 1
            self._connect()

    def request_progress(self) -> None:
        """Ask etcd for a progress notification (a response with no events
        whose ``header.revision`` every later event exceeds)."""
        self._requests.put(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))

    def close(self) -> None:
        """End the watch (idempotent); an iteration in progress stops."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            call = self._call
        self._requests.put(None)
        if call is not None and self._client._generation == c.fork_generation():
            call.cancel()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _expire(fired: threading.Event, call: grpc._CallIterator[pb.WatchResponse]) -> None:
    """The watch-creation deadline: mark it passed and cancel the stream."""
    fired.set()
    call.cancel()


def _drain(q: queue.SimpleQueue[pb.WatchRequest | None]) -> Iterator[pb.WatchRequest]:
    """The request side of a watch stream: ends (half-closes) at ``None``."""
    while True:
        item = q.get()
        if item is None:
            return
        yield item
