"""etcds:// URLs against a real single-member etcd that requires TLS client
certificates (a throw-away CA made with the openssl CLI)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from etcd_cluster import EtcdCluster, make_test_certs, need_etcd_extra

need_etcd_extra()

from pystore._etcd.client import EtcdClient  # noqa: E402
from pystore.errors import StoreUnavailableError  # noqa: E402


@pytest.fixture(scope="module")
def tls_cluster(
    etcd_cluster: EtcdCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EtcdCluster]:
    # etcd_cluster first: it skips (or fails under PYSTORE_REQUIRE_ETCD) without etcd.
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed")
    base: Path = tmp_path_factory.mktemp("etcd-tls")
    cluster = EtcdCluster(base, size=1, tls=make_test_certs(base / "certs"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_etcds_url_with_client_certificate(tls_cluster: EtcdCluster, etcd_root: bytes) -> None:
    with EtcdClient.from_url(tls_cluster.url(etcd_root.decode())) as client:
        client.put(etcd_root + b"k", b"secret")
        kv = client.get(etcd_root + b"k")
        assert kv is not None and kv.value == b"secret"


def test_tls_failures_are_unavailable_within_the_timeout(tls_cluster: EtcdCluster) -> None:
    certs = tls_cluster.tls
    assert certs is not None
    member = tls_cluster.endpoints[0]
    no_client_cert = f"etcds://{member}/r?timeout=1&cacert={certs.ca}"
    plain = f"etcd://{member}/r?timeout=1"  # plaintext to a TLS port
    wrong_ca = tls_cluster.url("/r", timeout="1").replace(str(certs.ca), str(certs.client_cert))
    assert "timeout=1" in wrong_ca and str(certs.ca) not in wrong_ca
    for url in (no_client_cert, plain, wrong_ca):
        with EtcdClient.from_url(url) as client:
            t0 = time.monotonic()
            with pytest.raises(StoreUnavailableError):
                client.put(b"/r/k", b"v")
            assert time.monotonic() - t0 < 2.5, url
