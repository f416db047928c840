"""create_index / rebuild_index on etcd for a kind of any size (chunked
backfill, pystore/_etcd/backfill.py), checked key by key against a scan of
the records on a real 3-member cluster: no mocks."""

from __future__ import annotations

import io
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from etcd_cluster import need_etcd_extra

need_etcd_extra()  # the etcd backend imports grpc (the ASan venv has none)

from pystore import NotFoundError, Store, TransactionError, UniqueViolationError  # noqa: E402
from pystore._etcd import _common as c  # noqa: E402
from pystore._etcd.layout import decode_record  # noqa: E402
from pystore._lmdb import index as lix  # noqa: E402
from pystore.cli.verify import verify  # noqa: E402
from pystore.samples.agent_pb2 import Agent  # noqa: E402
from pystore.samples.session_pb2 import Session  # noqa: E402

if TYPE_CHECKING:

    from pystore._etcd.client import EtcdClient

HERE = Path(__file__).parent


@pytest.fixture
def s(url: str) -> Iterator[Store]:
    with Store(url) as store:
        yield store


def fill(s: Store, n: int, value: str = "u{}") -> None:
    for i in range(0, n, 100):
        s.save_resources("Big", [(f"{j:04d}", Agent(model=f"m{j % 7}",
                                                   instructions=value.format(j)))
                                 for j in range(i, min(n, i + 100))])


def every(client: EtcdClient, prefix: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    start, end = prefix, c.prefix_end(prefix)
    while True:
        resp = client.range(start, end, limit=1000)
        out += [(kv.key, kv.value) for kv in resp.kvs]
        if not resp.more or not resp.kvs:
            return out
        start = resp.kvs[-1].key + b"\0"


def index_keys(client: EtcdClient, root: bytes, name: str,
               kind: bytes = b"Big") -> list[tuple[bytes, bytes]]:
    return every(client, root + b"i/" + kind + b"/" + name.encode() + b"\0")


def assert_gone(client: EtcdClient, root: bytes, name: str) -> None:
    """Nothing of index Big.name: no definition, marker or key."""
    assert index_keys(client, root, name) == []
    assert not client.range(root + b"m/index/Big/" + name.encode()).kvs
    assert not client.range(root + b"m/index.building/Big/" + name.encode()).kvs


def assert_exact(client: EtcdClient, root: bytes, name: str, kind: bytes = b"Big") -> int:
    """Every entry and unique key of index ``kind.name`` is exactly what a
    scan of the records gives (nothing missing, nothing stray); its size."""
    kvs = client.range(root + b"m/index/" + kind + b"/" + name.encode()).kvs
    assert kvs, f"no definition of {kind!r}.{name}"
    d = lix.parse_def(kvs[0].value)
    assert not client.range(root + b"m/index.building/" + kind + b"/" + name.encode()).kvs
    p = root + b"i/" + kind + b"/" + name.encode() + b"\0"
    want: dict[bytes, bytes] = {}
    base = root + b"r/" + kind + b"/"
    for key, value in every(client, base):
        id = key[len(base) :]
        for enc in lix.extract(d.plan, decode_record(value, key)[0]):
            n = struct.pack(">H", len(enc))
            want[p + b"e" + n + enc + id] = b""
            if d.unique:
                assert p + b"u" + n + enc not in want, f"two records carry {enc!r}"
                want[p + b"u" + n + enc] = id
    got = dict(index_keys(client, root, name, kind))
    assert sorted(set(got) - set(want)) == [], "stray index keys"
    assert sorted(set(want) - set(got)) == [], "missing index keys"
    assert got == want
    return sum(1 for k in want if k[len(p) : len(p) + 1] == b"e")


def test_600_resources_get_a_unique_and_a_plain_index(
    url: str, s: Store, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    fill(s, 600)
    t0 = time.monotonic()
    assert s.create_index("Big", "m", field="model", msg_type=Agent) == 600
    assert s.create_index("Big", "u", field="instructions", msg_type=Agent,
                          unique=True) == 600
    took = time.monotonic() - t0
    assert took < 60, took
    assert assert_exact(etcd_client, etcd_root, "m") == 600
    assert assert_exact(etcd_client, etcd_root, "u") == 600
    scan = dict(zip(s.list_ids("Big"), s.list_resources("Big", Agent), strict=True))
    for v in sorted({m.model for m in scan.values()}):
        ids = sorted(i for i, m in scan.items() if m.model == v)
        assert s.find_ids("Big", "m", v) == ids
        assert [m.model for m in s.find("Big", "m", v, Agent)] == [v] * len(ids)
        assert s.count_index("Big", "m", v) == len(ids)
    for i in ("0000", "0137", "0599"):
        assert s.find_one("Big", "u", scan[i].instructions, Agent) == scan[i]
        assert s.find_ids("Big", "u", scan[i].instructions) == [i]
    assert s.count_index("Big", "u", "nobody") == 0
    with pytest.raises(NotFoundError):
        s.find_one("Big", "u", "nobody", Agent)
    # upkeep after the build: moves, deletes, a refused duplicate
    s.save_resource("Big", "0001", Agent(model="m0", instructions="fresh"))
    s.delete_resource("Big", "0002")
    with pytest.raises(UniqueViolationError):
        s.save_resource("Big", "0003", Agent(instructions="u4"))
    assert s.find_ids("Big", "u", "u1") == [] and s.find_ids("Big", "u", "fresh") == ["0001"]
    assert assert_exact(etcd_client, etcd_root, "m") == 599
    assert assert_exact(etcd_client, etcd_root, "u") == 599


def test_a_collision_deep_in_the_kind_leaves_nothing(
    url: str, s: Store, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    fill(s, 600)
    s.save_resource("Big", "0590", Agent(instructions="u17"))
    with pytest.raises(UniqueViolationError) as ei:
        s.create_index("Big", "u", field="instructions", msg_type=Agent, unique=True)
    assert (ei.value.kind, ei.value.index, ei.value.value, ei.value.holder) == (
        "Big", "u", "u17", "0017")
    assert s.indexes() == []
    assert_gone(etcd_client, etcd_root, "u")  # not even the entries of chunks 1..5
    # the writes go on without the index; fixing the data lets it be created
    s.save_resource("Big", "0591", Agent(instructions="u17"))
    s.delete_resource("Big", "0590")
    s.delete_resource("Big", "0591")
    assert s.create_index("Big", "u", field="instructions", msg_type=Agent,
                          unique=True) == 598
    assert assert_exact(etcd_client, etcd_root, "u") == 598


def test_a_writer_process_during_the_build(
    url: str, s: Store, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    fill(s, 600)
    procs = [subprocess.Popen([sys.executable, str(HERE / "etcd_index_writer.py"), url,
                               str(seed)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for seed in (1, 2)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        before = s.revision()
        s.create_index("Big", "m", field="model", msg_type=Agent)
        s.create_index("Big", "u", field="instructions", msg_type=Agent, unique=True)
        after = s.revision()
    finally:
        outs = [p.communicate("", timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    during = [ch for ch in s.changes(before, kinds=["Big"]) if ch.revision < after]
    assert len(during) > 10, outs  # the writers wrote while the indexes were built
    assert assert_exact(etcd_client, etcd_root, "m") == s.count("Big")
    assert assert_exact(etcd_client, etcd_root, "u") == s.count("Big")
    assert s.rebuild_index("Big", "u") == s.count("Big")
    assert assert_exact(etcd_client, etcd_root, "u") == s.count("Big")


def kill_a_build(url: str, client: EtcdClient, root: bytes) -> bytes:
    """SIGKILL a process building unique index Big.u once its first entries
    are in; the building marker's key."""
    code = ("import sys; from pystore import Store; "
            "from pystore.samples.agent_pb2 import Agent; "
            "s = Store(sys.argv[1]); "
            "s.create_index('Big', 'u', field='instructions', msg_type=Agent, unique=True)")
    child = subprocess.Popen([sys.executable, "-c", code, url])
    entries = root + b"i/Big/u\0e"
    deadline = time.monotonic() + 60
    while not client.range(entries, c.prefix_end(entries), count_only=True).count:
        assert child.poll() is None and time.monotonic() < deadline, "no build seen"
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    return root + b"m/index.building/Big/u"


def test_a_killed_build_can_be_dropped(
    url: str, s: Store, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    fill(s, 3000)
    marker = kill_a_build(url, etcd_client, etcd_root)
    assert etcd_client.range(marker).kvs, "the build finished before the kill"
    s.drop_index("Big", "u")
    assert_gone(etcd_client, etcd_root, "u")
    s.save_resource("Big", "0001", Agent(instructions="u2"))  # no index any more
    assert index_keys(etcd_client, etcd_root, "u") == []


def test_a_drop_during_the_build_stops_it(
    url: str, s: Store, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    fill(s, 3000)
    entries = etcd_root + b"i/Big/m\0e"

    def dropper() -> None:
        deadline = time.monotonic() + 30
        while not etcd_client.range(entries, c.prefix_end(entries), count_only=True).count:
            if time.monotonic() > deadline:
                return
            time.sleep(0.001)
        with Store(url) as other:
            other.drop_index("Big", "m")

    t = threading.Thread(target=dropper)
    t.start()
    try:
        with pytest.raises(NotFoundError, match="dropped"):
            s.create_index("Big", "m", field="model", msg_type=Agent)
    finally:
        t.join()
    assert s.indexes() == []
    assert_gone(etcd_client, etcd_root, "m")


def test_an_interrupted_build_is_invisible_kept_up_and_finished(
    url: str, s: Store, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    fill(s, 3000)
    s.save_resource("Big", "2990", Agent(instructions="u5"))  # collides with 0005
    marker = kill_a_build(url, etcd_client, etcd_root)
    assert etcd_client.range(marker).kvs, "the build finished before the kill"
    with pytest.raises(NotFoundError, match="being built"):
        s.find_ids("Big", "u", "u1")
    with pytest.raises(NotFoundError, match="being built"):
        s.count_index("Big", "u", "u1")
    assert s.indexes() == []
    # the old duplicate moves away: it must not free 0005's unique key
    s.save_resource("Big", "2990", Agent(instructions="u2990"))
    # writers keep the building index: a duplicate is refused already
    s.save_resource("Big", "2999", Agent(instructions="moved"))
    with pytest.raises(UniqueViolationError):
        s.save_resource("Big", "3000", Agent(instructions="moved"))
    assert s.create_index("Big", "u", field="instructions", msg_type=Agent,
                          unique=True) == 3000
    assert not etcd_client.range(marker).kvs
    assert s.find_ids("Big", "u", "moved") == ["2999"]
    with pytest.raises(UniqueViolationError):
        s.save_resource("Big", "2990", Agent(instructions="u5"))
    assert assert_exact(etcd_client, etcd_root, "u") == 3000


def test_rebuild_repairs_missing_and_stray_keys(
    url: str, s: Store, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    fill(s, 300)
    s.create_index("Big", "u", field="instructions", msg_type=Agent, unique=True)
    keys = index_keys(etcd_client, etcd_root, "u")
    for key, _ in keys[::50]:
        etcd_client.delete_range(key)
    p = etcd_root + b"i/Big/u\0"
    etcd_client.put(p + b"e" + struct.pack(">H", 4) + b"\x00zzz" + b"0007", b"")
    etcd_client.put(p + b"u" + struct.pack(">H", 4) + b"\x00zzz", b"0007")
    assert s.rebuild_index("Big", "u") == 300
    assert assert_exact(etcd_client, etcd_root, "u") == 300


def test_an_old_duplicate_moving_away_mid_build_keeps_the_holders_key(
    url: str, s: Store, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    """0005 and 1490 both carry u5 when the build starts; the build gives
    u5's unique key to 0005 in its first chunk, then 1490 moves away: its
    write must not delete the key 0005 holds (writers delete a unique key
    only when they hold it)."""
    fill(s, 1500)
    s.save_resource("Big", "1490", Agent(instructions="u5"))
    uk = etcd_root + b"i/Big/u\0u" + struct.pack(">H", 3) + b"\x00u5"
    moved = threading.Event()

    def mover() -> None:
        deadline = time.monotonic() + 30
        while not etcd_client.range(uk).kvs and time.monotonic() < deadline:
            time.sleep(0.001)
        s.save_resource("Big", "1490", Agent(instructions="u1490"))
        moved.set()

    t = threading.Thread(target=mover)
    t.start()
    try:
        n = s.create_index("Big", "u", field="instructions", msg_type=Agent, unique=True)
    finally:
        t.join()
    assert moved.is_set() and n == 1500
    assert assert_exact(etcd_client, etcd_root, "u") == 1500
    with pytest.raises(UniqueViolationError):
        s.save_resource("Big", "1490", Agent(instructions="u5"))


def test_tight_txn_limits_split_one_records_entries(
    url: str, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    """max_txn_ops=8: a Session of 12 execution ids gives 12 entries (24 ops
    with its unique keys), written over several Txns that each compare it."""
    with Store(url + "?max_txn_ops=8") as s:
        with pytest.raises(TransactionError, match="8"):  # the limit holds
            s.save_resources("T", [(str(i), Session()) for i in range(9)])
        for i in range(30):
            s.save_resource("S", f"s{i:02d}", Session(execution_ids=[f"x{i}-{j}"
                                                                     for j in range(12)]))
        s.save_resource("S", "s30", Session(execution_ids=["x30-0", "x3-5"]))
        assert s.create_index("S", "x", field="execution_ids", msg_type=Session) == 362
        assert assert_exact(etcd_client, etcd_root, "x", b"S") == 362
        with pytest.raises(UniqueViolationError) as ei:
            s.create_index("S", "ux", field="execution_ids", msg_type=Session, unique=True)
        assert (ei.value.value, ei.value.holder) == ("x3-5", "s03")
        assert index_keys(etcd_client, etcd_root, "ux", b"S") == []
        s.delete_resource("S", "s30")
        assert s.create_index("S", "ux", field="execution_ids", msg_type=Session,
                              unique=True) == 360
        assert assert_exact(etcd_client, etcd_root, "ux", b"S") == 360
        assert s.find_ids("S", "ux", "x7-11") == ["s07"]
        assert s.rebuild_index("S", "ux") == 360


def test_verify_checks_the_indexes_on_etcd(
    url: str, s: Store, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    from pystore.cli.main import main

    fill(s, 200)
    s.create_index("Big", "m", field="model", msg_type=Agent)
    s.create_index("Big", "u", field="instructions", msg_type=Agent, unique=True)
    s.create_index("Big", "x", field="model", msg_type=Agent)
    assert main(["verify", url]) == 0
    um, uu = etcd_root + b"i/Big/m\0", etcd_root + b"i/Big/u\0"
    n = struct.pack(">H", 3)
    etcd_client.delete_range(um + b"e" + n + b"\x00m3" + b"0003")  # missing
    etcd_client.put(um + b"e" + n + b"\x00m9" + b"0004", b"")  # stale
    etcd_client.delete_range(uu + b"u" + n + b"\x00u7")  # missing unique key
    etcd_client.put(uu + b"u" + n + b"\x00u8", b"0009")  # names a record without u8
    etcd_client.put(uu + b"u" + n + b"\x00zz", b"0001")  # no record carries zz
    etcd_client.put(etcd_root + b"m/index.building/Big/x", b"")  # as a killed build leaves
    out = io.StringIO()
    checked, problems = verify(s, out)
    bad = sorted(out.getvalue().splitlines())
    assert checked == 200 and problems == 6, bad
    assert bad == sorted([
        "BAD index Big.m: missing entry 'm3' -> Big/0003",
        "BAD index Big.m: stale entry 'm9' -> Big/0004",
        "BAD index Big.u: missing unique key 'u7' -> Big/0007",
        "BAD index Big.u: unique key 'u8' names Big/0009, which does not carry it",
        "BAD index Big.u: stale unique key 'zz' -> Big/0001",
        "BAD index Big.x: being built (a create_index is running or was interrupted: "
        "create_index again finishes it, drop_index removes it)",
    ])
    s.drop_index("Big", "x")
    assert s.rebuild_index("Big", "m") == 200 and s.rebuild_index("Big", "u") == 200
    assert main(["verify", url]) == 0


def test_two_processes_create_the_same_index_at_once(
    url: str, s: Store, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    """The second create finds the index being built and builds too; both
    return the entry count, the index is exact."""
    fill(s, 1500)
    code = ("import sys; from pystore import Store; "
            "from pystore.samples.agent_pb2 import Agent; "
            "print(Store(sys.argv[1]).create_index('Big', 'u', field='instructions', "
            "msg_type=Agent, unique=True))")
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs == ["1500\n", "1500\n"]
    assert assert_exact(etcd_client, etcd_root, "u") == 1500


def test_a_prefix_delete_racing_a_writer_leaves_the_indexes_exact(
    url: str, s: Store, etcd_client: EtcdClient, etcd_root: bytes
) -> None:
    """A prefix delete drops the index entries of the records it read; a
    record under the prefix rewritten by another writer between that read
    and the Txn used to keep its new entries after the delete (stray keys).
    The Txn now guards the range and is prepared again.  The other writer
    (a Store of its own, a real write) runs right after the delete's read."""
    s.create_index("Big", "m", field="model", msg_type=Agent)
    s.create_index("Big", "u", field="instructions", msg_type=Agent, unique=True)
    s.save_resources("Big", [(f"{p}{i}", Agent(model=f"m{i}", instructions=f"{p}{i}"))
                             for p in "pq" for i in range(3)])
    scope = etcd_root + b"r/Big/p"
    client = s._client  # type: ignore[attr-defined]
    real = client.range
    fired: list[int] = []
    with Store(url) as other:

        def racing(key: bytes, *args: object, **kw: object) -> object:
            got = real(key, *args, **kw)
            if key == scope and not kw.get("count_only") and not fired:
                fired.append(1)  # the read of the records whose entries go
                # a plain index's value moves; the unique one stays (its key
                # has guards of its own)
                other.save_resource("Big", "p1", Agent(model="moved", instructions="p1"))
            return got

        client.range = racing
        try:
            assert s.delete_resources_by_prefix("Big", "p") == 3
        finally:
            del client.range
    assert fired
    assert s.list_ids("Big") == ["q0", "q1", "q2"]
    assert assert_exact(etcd_client, etcd_root, "m") == 3
    assert assert_exact(etcd_client, etcd_root, "u") == 3
    assert s.find_ids("Big", "u", "p1") == [] and s.find_ids("Big", "m", "moved") == []
