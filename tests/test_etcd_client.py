"""The etcd client layer (pystore._etcd.client) against a real 3-member
cluster: KV calls, transactions, paging at a pinned revision, watch,
compaction, the server's limits, failover, quorum loss, fork and the
private protos.  Every test writes under its own key root (``etcd_root``)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from etcd_cluster import EtcdCluster, need_etcd_extra

need_etcd_extra()

from google.protobuf import descriptor_pool  # noqa: E402

from pystore._etcd import _common as c  # noqa: E402
from pystore._etcd import etcd_api_pb2 as pb  # noqa: E402
from pystore._etcd.client import EtcdClient  # noqa: E402
from pystore.errors import (  # noqa: E402
    StoreClosedError,
    StoreUnavailableError,
    TransactionError,
    ValueTooLargeError,
)

HERE = Path(__file__).parent


def keys(resp: pb.RangeResponse) -> list[bytes]:
    return [kv.key for kv in resp.kvs]


# -- KV ---------------------------------------------------------------------------


def test_put_get_range_delete(
    etcd_cluster: EtcdCluster, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    r = etcd_root
    first = etcd_client.put(r + b"a/1", b"one")
    assert first.header.revision > 0
    etcd_client.put(r + b"a/2", b"two")
    etcd_client.put(r + b"b/1", b"three")
    kv = etcd_client.get(r + b"a/1")
    assert kv is not None and kv.value == b"one" and kv.version == 1
    assert kv.mod_revision == kv.create_revision == first.header.revision
    assert etcd_client.get(r + b"nope") is None

    prefix = r + b"a/"
    assert keys(etcd_client.range(prefix, c.prefix_end(prefix))) == [r + b"a/1", r + b"a/2"]
    assert etcd_client.range(r, c.prefix_end(r), count_only=True).count == 3
    ko = etcd_client.range(r, c.prefix_end(r), keys_only=True)
    assert len(ko.kvs) == 3 and all(kv.value == b"" for kv in ko.kvs)
    desc = etcd_client.range(r, c.prefix_end(r), sort_order=pb.RangeRequest.DESCEND)
    assert keys(desc)[0] == r + b"b/1"
    etcd_cluster.sync()  # a serializable read is member-local: may lag otherwise
    ser = etcd_client.range(r + b"a/1", serializable=True)
    assert ser.kvs[0].value == b"one"

    again = etcd_client.put(r + b"a/1", b"uno", prev_kv=True)
    assert again.prev_kv.value == b"one"
    kv = etcd_client.get(r + b"a/1")
    assert kv is not None and kv.version == 2 and kv.value == b"uno"

    gone = etcd_client.delete_range(prefix, c.prefix_end(prefix), prev_kv=True)
    assert gone.deleted == 2 and sorted(kv.value for kv in gone.prev_kvs) == [b"two", b"uno"]
    assert keys(etcd_client.range(r, c.prefix_end(r))) == [r + b"b/1"]
    assert etcd_client.delete_range(r + b"nope").deleted == 0


def test_paging_at_a_pinned_revision_is_one_snapshot(
    etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    r = etcd_root
    ops = [c.op_put(r + b"k%03d" % i, b"v%d" % i) for i in range(45)]
    etcd_client.txn(success=ops)
    end = c.prefix_end(r)
    first = etcd_client.range(r, end, limit=10)
    pinned = first.header.revision
    assert first.more and first.count == 45 and len(first.kvs) == 10
    # Changes after the pin: none of them may show in the pages.
    etcd_client.put(r + b"k000", b"changed")
    etcd_client.delete_range(r + b"k044")
    etcd_client.put(r + b"k100", b"new")
    seen = list(first.kvs)
    while True:
        page = etcd_client.range(seen[-1].key + b"\0", end, limit=10, revision=pinned)
        assert page.header.revision > pinned  # the store moved on; the pages did not
        seen.extend(page.kvs)
        if not page.more:
            break
    assert [kv.key for kv in seen] == [r + b"k%03d" % i for i in range(45)]
    assert [kv.value for kv in seen] == [b"v%d" % i for i in range(45)]
    now = etcd_client.range(r, end, count_only=True)
    assert now.count == 45  # one deleted, one added


def test_txn_compare_create_only_and_cas(etcd_client: EtcdClient, etcd_root: bytes) -> None:
    k = etcd_root + b"cas"
    create = [c.cmp_create(k, "==", 0)]
    ok = etcd_client.txn(create, [c.op_put(k, b"v1")])
    assert ok.succeeded
    dup = etcd_client.txn(create, [c.op_put(k, b"v2")], [c.op_range(k)])
    assert not dup.succeeded
    current = dup.responses[0].response_range.kvs[0]
    assert current.value == b"v1"

    cas = etcd_client.txn([c.cmp_mod(k, "==", current.mod_revision)], [c.op_put(k, b"v2")])
    assert cas.succeeded
    stale = etcd_client.txn(
        [c.cmp_mod(k, "==", current.mod_revision)], [c.op_put(k, b"v3")], [c.op_range(k)]
    )
    assert not stale.succeeded
    assert stale.responses[0].response_range.kvs[0].value == b"v2"
    # etcd serves a Txn without linearizable ops member-locally (it may lag):
    # a Range op makes it linearizable.
    read = [c.op_range(k)]
    assert etcd_client.txn([c.cmp_version(k, "==", 2), c.cmp_value(k, "==", b"v2")], read).succeeded
    assert not etcd_client.txn([c.cmp_mod(k, "<", current.mod_revision)], read).succeeded
    with pytest.raises(ValueError, match="operator"):
        c.cmp_mod(k, "=", 1)

    # A multi-key write is one revision; a delete in the same Txn too.
    multi = etcd_client.txn(
        success=[c.op_put(etcd_root + b"m1", b"1"), c.op_put(etcd_root + b"m2", b"2"),
                 c.op_delete(k)]
    )  # fmt: skip
    kvs = etcd_client.range(etcd_root + b"m", etcd_root + b"n").kvs
    assert {kv.mod_revision for kv in kvs} == {multi.header.revision}
    assert etcd_client.get(k) is None


def test_read_only_txn_is_retried_writes_only_on_request() -> None:
    ro = c.txn_request([], [c.op_range(b"a")], [c.op_range(b"b", count_only=True)])
    assert c.txn_is_read_only(ro)
    assert not c.txn_is_read_only(c.txn_request([], [c.op_range(b"a")], [c.op_put(b"a", b"")]))
    nested = pb.RequestOp(request_txn=pb.TxnRequest(success=[c.op_delete(b"x")]))
    assert not c.txn_is_read_only(c.txn_request([], [nested], []))
    assert c.prefix_end(b"a/") == b"a0" and c.prefix_end(b"a\xff") == b"b"
    assert c.prefix_end(b"\xff\xff") == b"\0"


# -- limits -----------------------------------------------------------------------


def test_too_many_ops_in_txn(etcd_cluster: EtcdCluster, etcd_root: bytes) -> None:
    ops = [c.op_put(etcd_root + b"t%03d" % i, b"x") for i in range(129)]
    with EtcdClient(etcd_cluster.endpoints, max_txn_ops=None) as server_checks:
        with pytest.raises(TransactionError, match="too many operations"):
            server_checks.txn(success=ops)
        assert server_checks.txn(success=ops[:128]).succeeded  # the limit itself is fine
    with (
        EtcdClient(etcd_cluster.endpoints) as server_checks,
        pytest.raises(TransactionError, match="duplicate key"),
    ):
        server_checks.txn(success=[ops[0], ops[0]])
    with EtcdClient(etcd_cluster.endpoints) as client_checks:  # refused before sending
        with pytest.raises(TransactionError, match=r"129 operations.*at most 128"):
            client_checks.txn(success=ops)
        # Only the 128-op Txn wrote: the refused ones wrote nothing.
        count = client_checks.range(etcd_root, c.prefix_end(etcd_root), count_only=True).count
        assert count == 128


def test_oversized_request(etcd_cluster: EtcdCluster, etcd_root: bytes) -> None:
    big = b"x" * (c.DEFAULT_MAX_REQUEST_BYTES + 1024)
    with EtcdClient(etcd_cluster.endpoints, max_request_bytes=None) as server_checks:
        with pytest.raises(ValueTooLargeError, match="request is too large"):
            server_checks.put(etcd_root + b"big", big)
        with pytest.raises(ValueTooLargeError):
            server_checks.txn(success=[c.op_put(etcd_root + b"big", big)])
        ok = b"y" * (c.DEFAULT_MAX_REQUEST_BYTES - 4096)
        server_checks.put(etcd_root + b"ok", ok)
        assert server_checks.get(etcd_root + b"ok") is not None
    with (
        EtcdClient(etcd_cluster.endpoints) as client_checks,
        pytest.raises(ValueTooLargeError, match="at most 1572864"),
    ):
        client_checks.put(etcd_root + b"big", big)
    assert isinstance(ValueTooLargeError("x"), ValueError)


# -- watch ------------------------------------------------------------------------


def test_watch_from_a_revision_sees_every_change_in_order(
    etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    r = etcd_root
    start = etcd_client.put(r + b"w/0", b"0").header.revision
    expected = [(pb.Event.PUT, r + b"w/0", start)]
    for i in range(1, 30):
        rev = etcd_client.put(r + b"w/%d" % (i % 7), b"%d" % i).header.revision
        expected.append((pb.Event.PUT, r + b"w/%d" % (i % 7), rev))
    rev = etcd_client.delete_range(r + b"w/1").header.revision
    expected.append((pb.Event.DELETE, r + b"w/1", rev))
    etcd_client.put(r + b"other", b"not watched")

    got: list[tuple[int, bytes, int]] = []
    with etcd_client.watch(r + b"w/", c.prefix_end(r + b"w/"), start_revision=start,
                           prev_kv=True) as w:  # fmt: skip
        live = threading.Thread(
            target=lambda: [etcd_client.put(r + b"w/live%d" % i, b"l") for i in range(20)]
        )
        live.start()
        for resp in w:
            for ev in resp.events:
                got.append((ev.type, ev.kv.key, ev.kv.mod_revision))
                if ev.kv.key == r + b"w/3" and ev.kv.version > 1:
                    assert ev.prev_kv.key == r + b"w/3"  # prev_kv asked for
            if len(got) >= len(expected) + 20:
                break
        live.join()
    assert got[: len(expected)] == expected
    tail = [k for _, k, _ in got[len(expected):]]
    assert tail == [r + b"w/live%d" % i for i in range(20)]
    revs = [rev for _, _, rev in got]
    assert revs == sorted(revs) and len(set(revs)) == len(revs)


def test_watch_progress_and_close_from_another_thread(
    etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    w = etcd_client.watch(etcd_root, c.prefix_end(etcd_root), progress_notify=True)
    head = etcd_client.put(b"/pystore-test/elsewhere", b"x").header.revision
    deadline = time.monotonic() + 10
    while True:  # the member serving the watch may not have applied `head` yet
        w.request_progress()
        resp = next(w)
        assert not resp.events and resp.header.revision > 0
        if resp.header.revision >= head:
            break
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert w.next_revision > head
    threading.Timer(0.3, w.close).start()
    t0 = time.monotonic()
    assert list(w) == []  # blocked in next(), ended by close()
    assert time.monotonic() - t0 < 5
    w.close()  # idempotent


def test_compaction_gives_the_compacted_error(
    etcd_cluster: EtcdCluster, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    first = etcd_client.put(etcd_root + b"c", b"1").header.revision
    for i in range(5):
        etcd_client.put(etcd_root + b"c", b"%d" % i)
    last = etcd_client.put(etcd_root + b"c", b"last").header.revision
    etcd_client.compact(last, physical=True)
    etcd_cluster.sync()  # every member has applied the compaction
    with pytest.raises(c.EtcdCompactedError) as info:
        w = etcd_client.watch(etcd_root, c.prefix_end(etcd_root), start_revision=first)
        next(w)
    assert info.value.compact_revision == last
    assert "compacted" in str(info.value)
    with pytest.raises(c.EtcdCompactedError):
        etcd_client.range(etcd_root + b"c", revision=first)
    with pytest.raises(c.EtcdCompactedError):
        etcd_client.compact(first)
    # From the compaction revision on, the history is still there.
    w = etcd_client.watch(etcd_root, c.prefix_end(etcd_root), start_revision=last)
    assert next(w).events[0].kv.value == b"last"
    w.close()


# -- cluster failures ---------------------------------------------------------------


def test_kill_leader_during_writes_loses_no_acknowledged_put(
    etcd_cluster: EtcdCluster, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    acked: list[list[bytes]] = [[] for _ in range(4)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        i = 0
        try:
            while not stop.is_set():
                k = etcd_root + b"w%d/%06d" % (n, i)
                etcd_client.put(k, k)
                acked[n].append(k)
                i += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    leader = etcd_cluster.leader()
    before = sum(map(len, acked))
    etcd_cluster.kill(leader)
    t_kill = time.monotonic()
    while sum(map(len, acked)) < before + 200 and time.monotonic() - t_kill < 15:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(15)
    print(f"leader killed: {sum(map(len, acked)) - before} puts acknowledged after it, "
          f"in {time.monotonic() - t_kill:.2f} s")
    assert not errors, errors
    assert sum(map(len, acked)) >= before + 200, "writes did not go on after the leader died"
    new_leader = etcd_cluster.leader()
    assert new_leader is not leader
    stored = {kv.key for kv in _all(etcd_client, etcd_root)}
    missing = [k for ks in acked for k in ks if k not in stored]
    assert not missing
    etcd_cluster.restart(leader)  # rejoins and catches up
    assert etcd_client.status(leader.endpoint).leader in {m.member_id for m in etcd_cluster.members}
    last = acked[0][-1]
    with EtcdClient([leader.endpoint]) as rejoined:
        deadline = time.monotonic() + 10
        while rejoined.get(last, serializable=True) is None:
            assert time.monotonic() < deadline, "the restarted member did not catch up"
            time.sleep(0.01)


def _all(client: EtcdClient, prefix: bytes) -> list[pb.KeyValue]:
    out: list[pb.KeyValue] = []
    end, start, rev = c.prefix_end(prefix), prefix, 0
    while True:
        page = client.range(start, end, limit=500, revision=rev, keys_only=True)
        rev = page.header.revision
        out.extend(page.kvs)
        if not page.more:
            return out
        start = page.kvs[-1].key + b"\0"


def test_lost_quorum_fails_within_the_timeout_then_recovers(
    etcd_cluster: EtcdCluster, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    etcd_client.put(etcd_root + b"k", b"before")
    survivor = etcd_cluster.members[2]
    with EtcdClient([survivor.endpoint]) as local:  # acknowledged by 2 of 3: wait for the 3rd
        deadline = time.monotonic() + 10
        while local.get(etcd_root + b"k", serializable=True) is None:
            assert time.monotonic() < deadline, "the third member never applied the put"
            time.sleep(0.01)
    down = etcd_cluster.members[:2]
    for m in down:
        etcd_cluster.kill(m)
    with EtcdClient(etcd_cluster.endpoints, timeout=2.0) as short:
        for call in (
            lambda: short.put(etcd_root + b"k", b"lost"),
            lambda: short.get(etcd_root + b"k"),  # linearizable: needs quorum too
            lambda: short.txn([c.cmp_create(etcd_root + b"n", "==", 0)],
                              [c.op_put(etcd_root + b"n", b"x")]),
        ):  # fmt: skip
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailableError) as info:
                call()
            elapsed = time.monotonic() - t0
            assert elapsed < 2.0 + 1.0, elapsed
            assert "2 s" in str(info.value) and etcd_cluster.members[0].endpoint in str(info.value)
        # A member-local (serializable) read still answers, from the survivor.
        kv = short.get(etcd_root + b"k", serializable=True)
        assert kv is not None and kv.value == b"before"
    for m in down:
        etcd_cluster.restart(m, wait=False)
    etcd_cluster.wait_healthy()
    etcd_client.put(etcd_root + b"k", b"after")
    kv = etcd_client.get(etcd_root + b"k")
    assert kv is not None and kv.value == b"after"


def test_watch_resumes_after_its_member_restarts(
    etcd_cluster: EtcdCluster, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    leader = etcd_cluster.leader()
    follower = next(m for m in etcd_cluster.members if m is not leader)
    start = etcd_client.put(etcd_root + b"r/0", b"0").header.revision
    with EtcdClient([follower.endpoint], timeout=15.0) as one:
        w = one.watch(etcd_root, c.prefix_end(etcd_root), start_revision=start)
        assert next(w).events[0].kv.key == etcd_root + b"r/0"
        etcd_cluster.kill(follower)
        revs = [etcd_client.put(etcd_root + b"r/%d" % i, b"x").header.revision
                for i in range(1, 11)]  # fmt: skip
        etcd_cluster.restart(follower, wait=False)
        got: list[int] = []
        for resp in w:
            got.extend(ev.kv.mod_revision for ev in resp.events)
            if len(got) >= 10:
                break
        assert w.reconnects >= 1
        w.close()
    assert got == revs


def test_unreachable_cluster_is_unavailable_within_the_timeout() -> None:
    from etcd_cluster import free_ports

    dead = [f"127.0.0.1:{p}" for p in free_ports(2)]
    with EtcdClient(dead, timeout=1.0) as client:
        for call in (lambda: client.status(), lambda: client.watch(b"/x")):
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailableError, match=r"did not answer within 1 s"):
                call()
            assert time.monotonic() - t0 < 2.5


# -- life cycle -----------------------------------------------------------------------


def test_close_is_idempotent_and_ends_calls(etcd_cluster: EtcdCluster) -> None:
    client = EtcdClient(etcd_cluster.endpoints)
    w = client.watch(b"/pystore-test/close/")
    client.close()
    client.close()
    assert client.closed and w.closed and list(w) == []
    with pytest.raises(StoreClosedError):
        client.get(b"/x")
    with pytest.raises(StoreClosedError):
        client.watch(b"/x")


def test_threads_share_one_client(etcd_client: EtcdClient, etcd_root: bytes) -> None:
    def work(n: int) -> None:
        for i in range(50):
            etcd_client.put(etcd_root + b"%d/%d" % (n, i), b"x")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert etcd_client.range(etcd_root, c.prefix_end(etcd_root), count_only=True).count == 400


def test_fork_guard(etcd_cluster: EtcdCluster, etcd_root: bytes) -> None:
    proc = subprocess.run(
        [sys.executable, str(HERE / "etcd_fork_worker.py"), ",".join(etcd_cluster.endpoints),
         etcd_root.decode()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    errs = "get:ForkedError put:ForkedError watch:ForkedError status:ForkedError"
    assert lines[0] == f"child 0 {errs}"
    assert lines[1] == "parent ok 2"


def test_private_protos_register_no_etcd_names() -> None:
    pool = descriptor_pool.Default()
    fd = pool.FindFileByName("pystore/_etcd/etcd_api.proto")
    assert fd.package == "pystore.etcd"
    for name in ("rpc.proto", "etcd/api/etcdserverpb/rpc.proto", "kv.proto",
                 "etcd/api/mvccpb/kv.proto"):  # fmt: skip
        with pytest.raises(KeyError):
            pool.FindFileByName(name)
    for symbol in ("etcdserverpb.RangeRequest", "mvccpb.KeyValue"):
        with pytest.raises(KeyError):
            pool.FindMessageTypeByName(symbol)
    assert pb.RangeRequest.DESCRIPTOR.full_name == "pystore.etcd.RangeRequest"
    # Same wire bytes as etcd's messages: field numbers are the protocol.
    assert pb.RangeRequest(key=b"k", limit=1).SerializeToString() == b"\n\x01k\x18\x01"
