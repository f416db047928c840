"""What the sync and the asyncio etcd clients share: method paths, channel
options, the retry schedule, request builders, the error mapping and the fork
generation.  Nothing here does I/O."""

from __future__ import annotations

import errno
import os
import random
import time
from collections.abc import Iterator, Sequence

import grpc

from ..errors import (
    CompactedError,
    StorageFullError,
    StoreError,
    StoreUnavailableError,
    TransactionError,
    ValueTooLargeError,
)
from . import etcd_api_pb2 as pb
from ._limits import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, DEFAULT_TIMEOUT

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_MAX_TXN_OPS",
    "DEFAULT_TIMEOUT",
    "EtcdCompactedError",
    "cmp_create",
    "cmp_mod",
    "cmp_value",
    "cmp_version",
    "op_delete",
    "op_put",
    "op_range",
    "prefix_end",
]

# RPC method paths: the service names stay etcd's (`etcdserverpb`), only our
# message classes live in the private `pystore.etcd` proto package.
RANGE = "/etcdserverpb.KV/Range"
PUT = "/etcdserverpb.KV/Put"
DELETE_RANGE = "/etcdserverpb.KV/DeleteRange"
TXN = "/etcdserverpb.KV/Txn"
COMPACT = "/etcdserverpb.KV/Compact"
WATCH = "/etcdserverpb.Watch/Watch"
STATUS = "/etcdserverpb.Maintenance/Status"
ALARM = "/etcdserverpb.Maintenance/Alarm"
MEMBER_LIST = "/etcdserverpb.Cluster/MemberList"

# Backoff between retries of a safe call on UNAVAILABLE: 50 ms doubling up
# to 1 s, with jitter, never past the call's deadline.
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 1.0
# Lower bound of one attempt's timeout (see first_attempt_timeout).
ATTEMPT_MIN = 1.0


class EtcdCompactedError(CompactedError):
    """The revision asked for (a watch's ``start_revision`` or a range's
    ``revision``) has been compacted away; ``compact_revision`` is the oldest
    revision still kept (0 when etcd did not say).

    A ``pystore.CompactedError`` that also carries the compaction revision.
    """

    def __init__(self, message: str, compact_revision: int = 0) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


# -- fork guard -------------------------------------------------------------

# Bumped in every child after fork(): gRPC channels do not survive a fork, so
# a client made before must not be used in the child.
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def fork_generation() -> int:
    return _fork_generation


# -- channel ------------------------------------------------------------------


def channel_target(endpoints: Sequence[str]) -> str:
    """One gRPC target naming every member: ``ipv4:h1:p1,h2:p2`` (``ipv6:``
    for bracketed addresses, ``dns:`` for a single host name)."""
    if not endpoints:
        raise ValueError("etcd: no endpoints")
    if all(_is_ip_endpoint(e) for e in endpoints):
        scheme = "ipv6" if any(e.startswith("[") for e in endpoints) else "ipv4"
        if scheme == "ipv6" and not all(e.startswith("[") for e in endpoints):
            # grpc's static resolvers take one address family per target.
            return "dns:///" + endpoints[0]
        return f"{scheme}:" + ",".join(endpoints)
    if len(endpoints) == 1:
        return "dns:///" + endpoints[0]
    raise ValueError(
        "etcd: several endpoints must be IP addresses (host names are only "
        f"supported for a single endpoint): {', '.join(endpoints)}"
    )


def _is_ip_endpoint(endpoint: str) -> bool:
    host = endpoint.rsplit(":", 1)[0]
    if host.startswith("[") and host.endswith("]"):
        return True
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def channel_options(target_name: str | None = None) -> list[tuple[str, str | int]]:
    opts: list[tuple[str, str | int]] = [
        ("grpc.lb_policy_name", "round_robin"),
        ("grpc.max_receive_message_length", -1),
        ("grpc.max_send_message_length", -1),
        # Notice a dead member quickly, and keep idle streams (watches) alive.
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Reconnect soon after a member comes back.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1_000),
        # Our own retries only: no transparent retries of non-idempotent calls.
        ("grpc.enable_retries", 0),
    ]
    if target_name:
        opts.append(("grpc.ssl_target_name_override", target_name))
    return opts


# -- retries ----------------------------------------------------------------


def backoff_delays(deadline: float) -> Iterator[float]:
    """Sleeps between attempts until ``deadline`` (a ``time.monotonic()``
    value): each is at most what is left, and the last leaves none."""
    delay = BACKOFF_FIRST
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        yield min(left, delay * (0.5 + random.random() / 2))
        delay = min(delay * 2, BACKOFF_MAX)


def first_attempt_timeout(budget: float) -> float:
    """The first attempt's share of a safe call's deadline.  A request that a
    member forwarded to a leader that just died is answered only after etcd's
    own request timeout (about 7 s); giving up on that attempt early and
    sending again reaches the new leader instead.  Each attempt that runs out
    doubles the share, so a slow but healthy call still completes."""
    return max(ATTEMPT_MIN, budget / 4)


# -- request builders -------------------------------------------------------


def prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that makes a range cover every key starting with
    ``prefix``: the prefix with its last byte below 0xff incremented
    (``b"\\0"``, every key, when there is none)."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return b"\0"
    p[-1] += 1
    return bytes(p)


def range_request(
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
) -> pb.RangeRequest:
    return pb.RangeRequest(
        key=key,
        range_end=range_end,
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


def op_range(
    key: bytes,
    range_end: bytes = b"",
    *,
    limit: int = 0,
    revision: int = 0,
    keys_only: bool = False,
    count_only: bool = False,
) -> pb.RequestOp:
    """A Range inside a Txn."""
    req = range_request(
        key, range_end, limit=limit, revision=revision, keys_only=keys_only, count_only=count_only
    )
    return pb.RequestOp(request_range=req)


def op_put(key: bytes, value: bytes, *, prev_kv: bool = False) -> pb.RequestOp:
    return pb.RequestOp(request_put=pb.PutRequest(key=key, value=value, prev_kv=prev_kv))


def op_delete(key: bytes, range_end: bytes = b"", *, prev_kv: bool = False) -> pb.RequestOp:
    return pb.RequestOp(
        request_delete_range=pb.DeleteRangeRequest(key=key, range_end=range_end, prev_kv=prev_kv)
    )


_RESULTS = {
    "==": pb.Compare.EQUAL,
    "!=": pb.Compare.NOT_EQUAL,
    ">": pb.Compare.GREATER,
    "<": pb.Compare.LESS,
}


def _result(op: str) -> pb.Compare.CompareResult:
    try:
        return _RESULTS[op]
    except KeyError:
        raise ValueError(
            f"etcd compare: operator must be one of {list(_RESULTS)}, not {op!r}"
        ) from None


def cmp_mod(key: bytes, op: str, revision: int) -> pb.Compare:
    """Compare the key's ``mod_revision`` (0 when absent) with ``revision``."""
    return pb.Compare(key=key, target=pb.Compare.MOD, result=_result(op), mod_revision=revision)


def cmp_range_unchanged(key: bytes, range_end: bytes, revision: int) -> pb.Compare:
    """True while no key in [key, range_end) was written after ``revision``
    (every present key's ``mod_revision`` is at most it; a key created
    since has a later one)."""
    return pb.Compare(key=key, range_end=range_end, target=pb.Compare.MOD,
                      result=pb.Compare.LESS, mod_revision=revision + 1)


def cmp_create(key: bytes, op: str, revision: int) -> pb.Compare:
    """Compare the key's ``create_revision`` (0 when absent)."""
    return pb.Compare(
        key=key, target=pb.Compare.CREATE, result=_result(op), create_revision=revision
    )


def cmp_version(key: bytes, op: str, version: int) -> pb.Compare:
    """Compare the key's ``version`` (0 when absent)."""
    return pb.Compare(key=key, target=pb.Compare.VERSION, result=_result(op), version=version)


def cmp_value(key: bytes, op: str, value: bytes) -> pb.Compare:
    return pb.Compare(key=key, target=pb.Compare.VALUE, result=_result(op), value=value)


def txn_request(
    compare: Sequence[pb.Compare],
    success: Sequence[pb.RequestOp],
    failure: Sequence[pb.RequestOp],
) -> pb.TxnRequest:
    return pb.TxnRequest(compare=compare, success=success, failure=failure)


def txn_is_read_only(req: pb.TxnRequest) -> bool:
    """True when every operation of both branches is a Range: only then is a
    retry after an ambiguous failure safe without knowing the outcome."""
    return ops_read_only(req.success, req.failure)


def ops_read_only(success: Sequence[pb.RequestOp], failure: Sequence[pb.RequestOp]) -> bool:
    """``txn_is_read_only`` of a Txn's two branches, before it is built."""
    ops = [*success, *failure]
    while ops:
        op = ops.pop()
        kind = op.WhichOneof("request")
        if kind == "request_txn":
            ops.extend([*op.request_txn.success, *op.request_txn.failure])
        elif kind != "request_range":
            return False
    return True


def check_limits(
    req: pb.TxnRequest | pb.PutRequest,
    max_txn_ops: int | None,
    max_request_bytes: int | None,
    guarded: bool = False,
) -> None:
    """Refuse, before sending, a request that etcd would refuse for its size
    (``None`` disables a check).  ``guarded``: ``req`` is the Txn of a write
    that its once-guard (once.py) nests, with ``max_txn_ops`` one less than
    the server's, and whose success branch ends with the guard's put."""
    if max_txn_ops is not None and isinstance(req, pb.TxnRequest):
        n = max(len(req.compare), len(req.success), len(req.failure))
        if n > max_txn_ops and guarded:
            put = n == len(req.success)  # the guard's put is one of them
            raise TransactionError(
                f"etcd transaction of {n - put} operations: a write of a store takes at "
                f"most {max_txn_ops - put} (--max-txn-ops {max_txn_ops + 1}, less one for "
                "the write guard's nesting" + (" and one for its put" if put else "")
                + ', docs/etcd.md "Retries"); split it or raise the server limit'
            )
        if n > max_txn_ops:
            raise TransactionError(
                f"etcd transaction of {n} operations: the cluster takes at most "
                f"{max_txn_ops} (--max-txn-ops); split it or raise the server limit"
            )
    if max_request_bytes is not None:
        size = req.ByteSize()
        if size > max_request_bytes:
            raise ValueTooLargeError(
                f"etcd request of {size} bytes: the cluster takes at most "
                f"{max_request_bytes} (--max-request-bytes)"
            )


# -- errors -------------------------------------------------------------------


def unavailable(
    endpoints: Sequence[str], timeout: float, detail: str = ""
) -> StoreUnavailableError:
    text = (
        f"etcd cluster at {','.join(endpoints)} did not answer within {timeout:g} s "
        "(members down or quorum lost)"
    )
    return StoreUnavailableError(f"{text}: {detail}" if detail else text)


def ambiguous(endpoints: Sequence[str], detail: str) -> StoreUnavailableError:
    """UNAVAILABLE on a call that is not retried (a conditional write): it
    may or may not have been applied."""
    return StoreUnavailableError(
        f"etcd cluster at {','.join(endpoints)} failed the request: {detail} "
        "(not retried: it may or may not have been applied; read to find out)"
    )


def map_error(
    code: grpc.StatusCode | None,
    details: str,
    endpoints: Sequence[str],
    timeout: float,
) -> StoreError:
    """The pystore exception for an etcd/gRPC failure that is not retried."""
    d = details or ""
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return unavailable(endpoints, timeout, d)
    if "database space exceeded" in d:
        return StorageFullError(
            errno.ENOSPC,
            f"etcd: {d} (the cluster's quota is full: compact, defragment, then "
            "disarm the NOSPACE alarm)",
        )
    if "too many operations in txn" in d:
        return TransactionError(f"etcd: {d} (the cluster's --max-txn-ops limit)")
    if "duplicate key given in txn" in d:
        return TransactionError(f"etcd: {d} (one key written twice in one transaction)")
    if "request is too large" in d or (
        code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in d
    ):
        return ValueTooLargeError(f"etcd: {d} (the cluster's --max-request-bytes limit)")
    if "required revision has been compacted" in d:
        return EtcdCompactedError(f"etcd: {d}")
    name = code.name if code is not None else "UNKNOWN"
    return StoreError(f"etcd: {name}: {d}")


def is_retryable(code: grpc.StatusCode | None) -> bool:
    """UNAVAILABLE: the member is down, has no leader, or the leader changed
    (etcd reports all of these, and its own request timeout, as UNAVAILABLE)."""
    return code == grpc.StatusCode.UNAVAILABLE
