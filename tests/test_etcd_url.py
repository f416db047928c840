"""etcd:// and etcds:// store URLs (pystore._etcd.url): no cluster needed."""

from __future__ import annotations

import pytest

from pystore._etcd.url import EtcdURL, InvalidURLError, is_etcd_url, parse_url
from pystore.errors import StoreError


def test_members_root_and_defaults() -> None:
    u = parse_url("etcd://10.0.0.1:2379,10.0.0.2:22379,10.0.0.3/pystore/prod")
    assert u == EtcdURL(
        endpoints=("10.0.0.1:2379", "10.0.0.2:22379", "10.0.0.3:2379"), root=b"/pystore/prod/"
    )
    assert u.tls is False and u.timeout == 10.0 and u.max_txn_ops == 128
    assert u.max_request_bytes == 1536 * 1024 and u.serializable is False


@pytest.mark.parametrize(
    ("path", "root"),
    [("/a", b"/a/"), ("/a/", b"/a/"), ("/a/b/c", b"/a/b/c/"), ("/caf%C3%A9", "/café/".encode())],
)
def test_root_is_normalized(path: str, root: bytes) -> None:
    assert parse_url(f"etcd://127.0.0.1:2379{path}").root == root


def test_options_and_tls() -> None:
    u = parse_url(
        "etcds://[::1]:2379,Node-A:2380/r?cacert=/ca.pem&cert=/c.pem&key=/k.pem"
        "&timeout=2.5&serializable=1&max_txn_ops=1000&max_request_bytes=0&server_name=etcd"
    )
    assert u.endpoints == ("[::1]:2379", "node-a:2380")
    assert (u.tls, u.cacert, u.cert, u.key, u.server_name) == (
        True, "/ca.pem", "/c.pem", "/k.pem", "etcd",
    )  # fmt: skip
    limits = (u.timeout, u.serializable, u.max_txn_ops, u.max_request_bytes)
    assert limits == (2.5, True, 1000, None)
    assert parse_url("ETCDS://h:1/r").tls


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://h:2379/r", "scheme"),
        ("etcd:///r", "no member address"),
        ("etcd://h:2379", "key root"),
        ("etcd://h:2379/", "key root"),
        ("etcd://h:2379/a//b", "segments"),
        ("etcd://h:2379/a/../b", "segments"),
        ("etcd://h:0/r", "1..65535"),
        ("etcd://h:65536/r", "1..65535"),
        ("etcd://h:x/r", "1..65535"),
        ("etcd://h:1,,h:2/r", "empty member"),
        ("etcd://h:1,h:1/r", "listed twice"),
        ("etcd://[::1/r", "IPv6"),
        ("etcd://user:pw@h:1/r", "passwords"),
        ("etcd://h:1/r?cacert=/ca.pem", "etcds://"),
        ("etcds://h:1/r?cert=/c.pem", "go together"),
        ("etcd://h:1/r?timeout=0", "positive"),
        ("etcd://h:1/r?timeout=nan", "positive"),
        ("etcd://h:1/r?timeout=", "no value"),
        ("etcd://h:1/r?timeout=1&timeout=2", "twice"),
        ("etcd://h:1/r?bogus=1", "unknown option"),
        ("etcd://h:1/r?serializable=yes", "0 or 1"),
        ("etcd://h:1/r?max_txn_ops=-1", "whole number"),
        ("etcd://h:1/r%00x", "NUL"),
        ("etcd://h:1/r#frag", "fragment"),
    ],
)
def test_bad_urls_are_refused_clearly(url: str, words: str) -> None:
    with pytest.raises(InvalidURLError, match=words) as info:
        parse_url(url)
    assert isinstance(info.value, ValueError) and isinstance(info.value, StoreError)


def test_is_etcd_url() -> None:
    assert is_etcd_url("etcd://h/r") and is_etcd_url("etcds://h/r")
    assert not is_etcd_url("/var/lib/store") and not is_etcd_url("etcd.db")
    assert not is_etcd_url(b"etcd://h/r")
