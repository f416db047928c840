"""The asyncio etcd client (pystore._etcd.aio_client) against the real cluster."""

from __future__ import annotations

import asyncio
import time

import pytest
from etcd_cluster import EtcdCluster, free_ports, need_etcd_extra

need_etcd_extra()

from pystore._etcd import _common as c  # noqa: E402
from pystore._etcd.aio_client import AsyncEtcdClient  # noqa: E402
from pystore.errors import (  # noqa: E402
    StoreClosedError,
    StoreUnavailableError,
    TransactionError,
)


def test_kv_txn_and_watch(etcd_cluster: EtcdCluster, etcd_root: bytes) -> None:
    r = etcd_root

    async def main() -> None:
        async with AsyncEtcdClient.from_url(etcd_cluster.url(r.decode())) as client:
            start = (await client.put(r + b"a", b"1")).header.revision
            kv = await client.get(r + b"a")
            assert kv is not None and kv.value == b"1" and kv.mod_revision == start
            ok = await client.txn([c.cmp_create(r + b"b", "==", 0)], [c.op_put(r + b"b", b"2")])
            dup = await client.txn([c.cmp_create(r + b"b", "==", 0)], [c.op_put(r + b"b", b"3")])
            assert ok.succeeded and not dup.succeeded
            assert (await client.range(r, c.prefix_end(r), count_only=True)).count == 2
            with pytest.raises(TransactionError):
                await client.txn(success=[c.op_put(r + b"%d" % i, b"") for i in range(129)])
            leader = await client.leader()
            assert leader.name in {m.name for m in etcd_cluster.members}

            w = await client.watch(r, c.prefix_end(r), start_revision=start)
            writes = [(await client.put(r + b"w%d" % i, b"x")).header.revision for i in range(20)]
            got: list[int] = []
            async for resp in w:
                got.extend(ev.kv.mod_revision for ev in resp.events)
                if len(got) >= 22:
                    break
            assert got[0] == start and got[2:] == writes
            closer = asyncio.get_running_loop().call_later(0.2, w.close)
            assert [resp async for resp in w] == []
            closer.cancel()
            assert (await client.delete_range(r, c.prefix_end(r))).deleted == 22
        assert client.closed
        with pytest.raises(StoreClosedError):
            await client.get(r + b"a")
        await client.close()  # idempotent

    asyncio.run(main())


def test_compacted_watch(etcd_cluster: EtcdCluster, etcd_root: bytes) -> None:
    async def main() -> None:
        async with AsyncEtcdClient(etcd_cluster.endpoints) as client:
            first = (await client.put(etcd_root + b"c", b"1")).header.revision
            last = (await client.put(etcd_root + b"c", b"2")).header.revision
            await client.compact(last)
            await asyncio.to_thread(etcd_cluster.sync)
            w = await client.watch(etcd_root, start_revision=first)
            with pytest.raises(c.EtcdCompactedError) as info:
                await w.__anext__()
            assert info.value.compact_revision == last

    asyncio.run(main())


def test_unreachable_is_unavailable_within_the_timeout() -> None:
    async def main() -> None:
        dead = [f"127.0.0.1:{p}" for p in free_ports(2)]
        async with AsyncEtcdClient(dead, timeout=1.0) as client:
            for make in (lambda: client.put(b"/k", b"v"), lambda: client.watch(b"/k")):
                t0 = time.monotonic()
                with pytest.raises(StoreUnavailableError, match="within 1 s"):
                    await make()
                assert time.monotonic() - t0 < 2.5

    asyncio.run(main())
