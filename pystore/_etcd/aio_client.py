"""The asyncio twin of :mod:`.client` on ``grpc.aio``: the same calls,
arguments, retries, deadlines and exceptions, awaited.

An :class:`AsyncEtcdClient` belongs to the event loop it is first used on
(a ``grpc.aio`` channel cannot move between loops); within that loop any
number of tasks may share it.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Sequence
from types import TracebackType
from typing import TypeVar

import grpc
import grpc.aio

from ..errors import ForkedError, StoreClosedError, StoreError
from . import _common as c
from . import etcd_api_pb2 as pb
from .client import rpc_status, url_options
from .url import EtcdURL

__all__ = ["AsyncEtcdClient", "AsyncWatch"]

_Resp = TypeVar("_Resp")


class AsyncEtcdClient:
    """A client of one etcd cluster for asyncio code (see ``EtcdClient``)."""

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
        self.max_txn_ops = max_txn_ops
        self.max_request_bytes = max_request_bytes
        self._generation = c.fork_generation()
        self._closed = False
        self._watches: weakref.WeakSet[AsyncWatch] = weakref.WeakSet()
        target = c.channel_target(self._endpoints)
        opts = c.channel_options(server_name)
        if credentials is not None:
            self._channel = grpc.aio.secure_channel(target, credentials, options=opts)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=opts)
        ch = self._channel
        self._range = _unary(ch, c.RANGE, pb.RangeResponse)
        self._put = _unary(ch, c.PUT, pb.PutResponse)
        self._delete = _unary(ch, c.DELETE_RANGE, pb.DeleteRangeResponse)
        self._txn = _unary(ch, c.TXN, pb.TxnResponse)
        self._compact = _unary(ch, c.COMPACT, pb.CompactionResponse)
        self._status = _unary(ch, c.STATUS, pb.StatusResponse)
        self._members = _unary(ch, c.MEMBER_LIST, pb.MemberListResponse)
        self._watch = ch.stream_stream(
            c.WATCH,
            request_serializer=_serialize,
            response_deserializer=pb.WatchResponse.FromString,
        )

    @classmethod
    def from_url(cls, url: str | EtcdURL) -> AsyncEtcdClient:
        endpoints, options = url_options(url)
        return cls(endpoints, **options)

    @property
    def endpoints(self) -> tuple[str, ...]:
        return self._endpoints

    @property
    def timeout(self) -> float:
        return self._timeout

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> None:
        if self._generation != c.fork_generation():
            raise ForkedError(
                "etcd client was made before fork(): gRPC channels do not survive a "
                "fork, make a new client (open a new Store) in the child process"
            )
        if self._closed:
            raise StoreClosedError("etcd client is closed")

    async def _call(
        self,
        stub: grpc.aio.UnaryUnaryMultiCallable[object, _Resp],
        request: object,
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
                return await stub(request, timeout=this)
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
                    await asyncio.sleep(delay)
                    continue
                if code == grpc.StatusCode.UNAVAILABLE:
                    raise c.ambiguous(self._endpoints, details) from None
                raise c.map_error(code, details, self._endpoints, budget) from None

    async def range(
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
        return await self._call(self._range, req, retry=True, timeout=timeout)

    async def get(
        self,
        key: bytes,
        *,
        revision: int = 0,
        serializable: bool = False,
        timeout: float | None = None,
    ) -> pb.KeyValue | None:
        resp = await self.range(key, revision=revision, serializable=serializable, timeout=timeout)
        return resp.kvs[0] if resp.kvs else None

    async def put(
        self,
        key: bytes,
        value: bytes,
        *,
        prev_kv: bool = False,
        lease: int = 0,
        timeout: float | None = None,
    ) -> pb.PutResponse:
        req = pb.PutRequest(key=key, value=value, prev_kv=prev_kv, lease=lease)
        c.check_limits(req, self.max_txn_ops, self.max_request_bytes)
        return await self._call(self._put, req, retry=True, timeout=timeout)

    async def delete_range(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        prev_kv: bool = False,
        timeout: float | None = None,
    ) -> pb.DeleteRangeResponse:
        req = pb.DeleteRangeRequest(key=key, range_end=range_end, prev_kv=prev_kv)
        return await self._call(self._delete, req, retry=True, timeout=timeout)

    async def txn(
        self,
        compare: Sequence[pb.Compare] = (),
        success: Sequence[pb.RequestOp] = (),
        failure: Sequence[pb.RequestOp] = (),
        *,
        retry: bool | None = None,
        timeout: float | None = None,
    ) -> pb.TxnResponse:
        req = c.txn_request(compare, success, failure)
        c.check_limits(req, self.max_txn_ops, self.max_request_bytes)
        again = c.txn_is_read_only(req) if retry is None else retry
        return await self._call(self._txn, req, retry=again, timeout=timeout)

    async def compact(
        self, revision: int, *, physical: bool = False, timeout: float | None = None
    ) -> pb.CompactionResponse:
        req = pb.CompactionRequest(revision=revision, physical=physical)
        return await self._call(self._compact, req, retry=True, timeout=timeout)

    async def status(self, *, timeout: float | None = None) -> pb.StatusResponse:
        """Maintenance/Status of whichever member the balancer picks."""
        return await self._call(self._status, pb.StatusRequest(), retry=True, timeout=timeout)

    async def member_list(self, *, timeout: float | None = None) -> pb.MemberListResponse:
        return await self._call(self._members, pb.MemberListRequest(), retry=True, timeout=timeout)

    async def leader(self, *, timeout: float | None = None) -> pb.Member:
        budget = self._timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        for delay in c.backoff_delays(deadline):
            lead = (await self.status(timeout=max(deadline - time.monotonic(), 0.001))).leader
            if lead:
                members = await self.member_list(timeout=max(deadline - time.monotonic(), 0.001))
                for m in members.members:
                    if lead == m.ID:
                        return m
            await asyncio.sleep(delay)
        raise c.unavailable(self._endpoints, budget, "no leader elected")

    async def watch(
        self,
        key: bytes,
        range_end: bytes = b"",
        *,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
        timeout: float | None = None,
    ) -> AsyncWatch:
        """As ``EtcdClient.watch``; iterate the result with ``async for``."""
        self._check()
        create = pb.WatchCreateRequest(
            key=key,
            range_end=range_end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            progress_notify=progress_notify,
        )
        w = AsyncWatch(self, create, self._timeout if timeout is None else timeout)
        await w._connect()
        self._watches.add(w)
        return w

    async def close(self) -> None:
        """Close every watch and the channel; idempotent."""
        if self._closed:
            return
        self._closed = True
        for w in list(self._watches):
            w.close()
        if self._generation == c.fork_generation():
            await self._channel.close()

    async def __aenter__(self) -> AsyncEtcdClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _unary(
    ch: grpc.aio.Channel, method: str, resp: type[_Resp]
) -> grpc.aio.UnaryUnaryMultiCallable[object, _Resp]:
    return ch.unary_unary(
        method,
        request_serializer=_serialize,
        response_deserializer=resp.FromString,  # type: ignore[attr-defined]
    )


def _serialize(msg: object) -> bytes:
    return msg.SerializeToString()  # type: ignore[attr-defined, no-any-return]


class AsyncWatch:
    """The asyncio twin of ``client.Watch``: ``async for resp in watch``,
    re-created from the next undelivered revision when a member is lost."""

    def __init__(
        self, client: AsyncEtcdClient, create: pb.WatchCreateRequest, timeout: float
    ) -> None:
        self._client = client
        self._create = create
        self._timeout = timeout
        self._closed = False
        self._call: grpc.aio.StreamStreamCall[object, pb.WatchResponse] | None = None
        self.watch_id = 0
        self.reconnects = 0  # streams re-created after a lost member
        self.next_revision = create.start_revision

    async def _connect(self) -> None:
        deadline = time.monotonic() + self._timeout
        delays = c.backoff_delays(deadline)
        while not self._closed:
            self._client._check()
            create = pb.WatchCreateRequest()
            create.CopyFrom(self._create)
            create.start_revision = self.next_revision
            call = self._client._watch()
            try:
                await call.write(pb.WatchRequest(create_request=create))
                first = await asyncio.wait_for(
                    call.read(), timeout=max(deadline - time.monotonic(), 0.0)
                )
            except (grpc.RpcError, TimeoutError) as exc:
                call.cancel()
                if self._closed:
                    return
                code, detail = (
                    rpc_status(exc) if isinstance(exc, grpc.RpcError) else (None, "timed out")
                )
                if isinstance(exc, grpc.RpcError) and not c.is_retryable(code):
                    raise c.map_error(code, detail, self._client.endpoints, self._timeout) from None
                delay = next(delays, None) if code is not None else None
                if delay is None:
                    raise c.unavailable(self._client.endpoints, self._timeout, detail) from None
                await asyncio.sleep(delay)
                continue
            if (
                first is grpc.aio.EOF
                or not isinstance(first, pb.WatchResponse)
                or not first.created
            ):
                call.cancel()
                raise StoreError(f"etcd watch: unexpected first response {first!r}")
            self._call = call
            self.watch_id = first.watch_id
            if self.next_revision == 0:
                self.next_revision = first.header.revision + 1
            if first.canceled:
                self._raise_canceled(first)
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

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> pb.WatchResponse:
        while True:
            call = self._call
            if self._closed or call is None:
                raise StopAsyncIteration
            code: grpc.StatusCode | None
            try:
                resp = await call.read()
            except (grpc.RpcError, asyncio.CancelledError) as exc:
                if self._closed:
                    raise StopAsyncIteration from None
                if not isinstance(exc, grpc.RpcError):
                    raise
                code, detail = rpc_status(exc)
            else:
                if isinstance(resp, pb.WatchResponse):
                    if resp.canceled:
                        self._raise_canceled(resp)
                    if resp.created:
                        continue
                    if resp.events:
                        self.next_revision = resp.events[-1].kv.mod_revision + 1
                    elif resp.header.revision >= self.next_revision:
                        self.next_revision = resp.header.revision + 1
                    return resp
                if self._closed:
                    raise StopAsyncIteration
                code, detail = grpc.StatusCode.UNAVAILABLE, "the server ended the watch stream"
            if self._client.closed:
                raise StopAsyncIteration
            if not c.is_retryable(code):
                self.close()
                raise c.map_error(code, detail, self._client.endpoints, self._timeout)
            call.cancel()
            self.reconnects += 1
            await self._connect()

    async def request_progress(self) -> None:
        if self._call is not None and not self._closed:
            await self._call.write(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))

    def close(self) -> None:
        """End the watch (idempotent); a pending ``__anext__`` stops."""
        if self._closed:
            return
        self._closed = True
        if self._call is not None and self._client._generation == c.fork_generation():
            self._call.cancel()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
