"""Shared fixtures: real stores in real temporary directories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import pystore


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_path: Path) -> Iterator[pystore.Store]:
    s = pystore.Store(store_path, sync=False)
    try:
        yield s
    finally:
        s.close()


# ---- etcd: a real 3-member cluster (tests/etcd_cluster.py) -------------------
# `etcd_cluster` (session): the running cluster; `etcd_client`: a client over
# all members, the cluster restarted first if an earlier test stopped members;
# `etcd_root`: a key root of its own per test (bytes ending in b"/").  Without
# etcd (or grpcio) the tests skip, unless PYSTORE_REQUIRE_ETCD=1 (CI).

import os as _os  # noqa: E402
import re as _re  # noqa: E402
import uuid as _uuid  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from etcd_cluster import EtcdCluster, missing_reason  # noqa: E402

if TYPE_CHECKING:
    from pystore._etcd.client import EtcdClient


@pytest.fixture(scope="session")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    reason = missing_reason()
    if reason is not None:
        if _os.environ.get("PYSTORE_REQUIRE_ETCD") == "1":
            pytest.fail(f"PYSTORE_REQUIRE_ETCD=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def etcd_root(request: pytest.FixtureRequest) -> bytes:
    name = _re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:60]
    return f"/pystore-test/{name}-{_uuid.uuid4().hex[:8]}/".encode()


@pytest.fixture
def url(etcd_cluster: EtcdCluster, etcd_root: bytes) -> str:
    """An etcd:// URL of the test cluster, under a key root of this test's own."""
    etcd_cluster.ensure_running()
    return etcd_cluster.url(etcd_root.decode())


@pytest.fixture
def etcd_client(etcd_cluster: EtcdCluster) -> Iterator[EtcdClient]:
    from pystore._etcd.client import EtcdClient

    etcd_cluster.ensure_running()
    client = EtcdClient(etcd_cluster.endpoints, timeout=10.0)
    try:
        yield client
    finally:
        client.close()


# ---- the contract suite: one test, both backends -----------------------------
# `any_store` is an open Store on LMDB (a temporary directory) or on the etcd
# cluster (a key root of its own); tests that prove a documented difference
# are marked `lmdb_only`/`etcd_only` with the reason, never skipped silently.


@pytest.fixture(params=["lmdb", "etcd"])
def backend(request: pytest.FixtureRequest) -> str:
    other = "etcd" if request.param == "lmdb" else "lmdb"
    marker = request.node.get_closest_marker(f"{other}_only")
    if marker is not None:
        pytest.skip(f"{request.param}: documented difference: {marker.args[0]}")
    return str(request.param)


@pytest.fixture
def store_target(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What Store() opens for this backend: a path, or an etcd:// URL of a fresh root."""
    if backend == "lmdb":
        return str(tmp_path / "store")
    cluster = request.getfixturevalue("etcd_cluster")
    cluster.ensure_running()
    root = request.getfixturevalue("etcd_root").decode()
    return str(cluster.url(root))


@pytest.fixture
def any_store(backend: str, store_target: str) -> Iterator[pystore.Store]:
    s = pystore.Store(store_target, sync=False, timeout=10.0)
    try:
        yield s
    finally:
        s.close()
