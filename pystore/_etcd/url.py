"""Parsing of etcd store URLs.

``etcd://HOST:PORT[,HOST:PORT...]/key/root[?OPTIONS]`` opens a cluster over
plain gRPC, ``etcds://...`` over TLS.  Every member the client may use is
listed in the authority, separated by commas; a missing port is etcd's 2379.
The path is the key root under which the store keeps its keys; it is
normalized to start and end with ``/`` (``/pystore/prod`` → ``/pystore/prod/``).

Query options (each at most once):

``timeout=SECONDS``
    deadline of every call, retries included (default 10).
``serializable=0|1``
    member-local reads by default (faster, may be stale; default 0).
``max_txn_ops=N``, ``max_request_bytes=N``
    the limits checked before sending; set them to the cluster's
    ``--max-txn-ops``/``--max-request-bytes`` when raised there
    (defaults 128 and 1.5 MiB; 0 turns the check off).
``cacert=PATH``, ``cert=PATH``, ``key=PATH``, ``server_name=NAME`` (``etcds`` only)
    PEM CA bundle (the system's roots when absent), client certificate and
    its key (both or neither), and the TLS name to verify instead of the
    host's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from .._options import MAX_TIMEOUT
from ..errors import StoreError
from ._limits import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_TXN_OPS, DEFAULT_TIMEOUT

__all__ = ["EtcdURL", "InvalidURLError", "is_etcd_url", "parse_url"]

DEFAULT_PORT = 2379
SCHEMES = ("etcd", "etcds")
_TLS_OPTIONS = ("cacert", "cert", "key", "server_name")
_OPTIONS = ("timeout", "serializable", "max_txn_ops", "max_request_bytes", *_TLS_OPTIONS)


class InvalidURLError(StoreError, ValueError):
    """A store URL that cannot be opened: wrong scheme, bad member address,
    missing key root, unknown or malformed option."""


@dataclass(frozen=True)
class EtcdURL:
    """A parsed ``etcd://``/``etcds://`` URL."""

    endpoints: tuple[str, ...]
    root: bytes  # starts and ends with b"/"
    tls: bool = False
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    serializable: bool = False
    max_txn_ops: int | None = DEFAULT_MAX_TXN_OPS
    max_request_bytes: int | None = DEFAULT_MAX_REQUEST_BYTES


def is_etcd_url(target: object) -> bool:
    """True for a str that names an etcd store (``etcd://`` or ``etcds://``)."""
    return (
        isinstance(target, str)
        and target.split("://", 1)[0].lower() in SCHEMES
        and ("://" in target)
    )


def parse_url(url: str) -> EtcdURL:
    """Parse and check an etcd store URL; :class:`InvalidURLError` names what is wrong."""
    if not isinstance(url, str):
        raise InvalidURLError(f"etcd URL must be a str, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidURLError(f"etcd URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidURLError(f"etcd URL {url!r}: scheme must be etcd:// or etcds://")
    if parts.fragment:
        raise InvalidURLError(f"etcd URL {url!r}: a fragment (#...) is not allowed")
    netloc = parts.netloc
    if "@" in netloc:
        raise InvalidURLError(
            f"etcd URL {url!r}: user names and passwords are not supported "
            "(use client certificates: etcds://...?cert=...&key=...)"
        )
    if not netloc:
        raise InvalidURLError(f"etcd URL {url!r}: no member address (etcd://host:port/root)")
    endpoints = tuple(_endpoint(url, e) for e in netloc.split(","))
    if len(set(endpoints)) != len(endpoints):
        raise InvalidURLError(f"etcd URL {url!r}: a member is listed twice")
    root = _root(url, parts.path)
    opts = _options(url, parts.query)
    tls = scheme == "etcds"
    if not tls and any(k in opts for k in _TLS_OPTIONS):
        bad = ", ".join(k for k in _TLS_OPTIONS if k in opts)
        raise InvalidURLError(f"etcd URL {url!r}: {bad} need(s) etcds:// (TLS)")
    if ("cert" in opts) != ("key" in opts):
        raise InvalidURLError(f"etcd URL {url!r}: cert= and key= go together")
    return EtcdURL(
        endpoints=endpoints,
        root=root,
        tls=tls,
        cacert=opts.get("cacert"),
        cert=opts.get("cert"),
        key=opts.get("key"),
        server_name=opts.get("server_name"),
        timeout=_timeout(url, opts.get("timeout")),
        serializable=_flag(url, "serializable", opts.get("serializable")),
        max_txn_ops=_limit(url, "max_txn_ops", opts.get("max_txn_ops"), DEFAULT_MAX_TXN_OPS),
        max_request_bytes=_limit(
            url, "max_request_bytes", opts.get("max_request_bytes"), DEFAULT_MAX_REQUEST_BYTES
        ),
    )


def _endpoint(url: str, text: str) -> str:
    if not text:
        raise InvalidURLError(f"etcd URL {url!r}: empty member address (stray comma?)")
    if text.startswith("["):  # [v6]:port
        host, sep, rest = text[1:].partition("]")
        if not sep or not host or (rest and not rest.startswith(":")):
            raise InvalidURLError(f"etcd URL {url!r}: bad IPv6 member address {text!r}")
        port_text = rest[1:] if rest else ""
        host = f"[{host}]"
    else:
        host, _, port_text = text.partition(":")
        if not host or ":" in port_text:
            raise InvalidURLError(
                f"etcd URL {url!r}: bad member address {text!r} (host:port; IPv6 as [addr]:port)"
            )
    if any(c in host for c in "/?#% "):
        raise InvalidURLError(f"etcd URL {url!r}: bad host in {text!r}")
    port = DEFAULT_PORT
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidURLError(f"etcd URL {url!r}: port of {text!r} must be 1..65535")
        port = int(port_text)
    return f"{host.lower()}:{port}"


def _root(url: str, path: str) -> bytes:
    text = unquote(path, errors="strict")
    if not text.strip("/"):
        raise InvalidURLError(
            f"etcd URL {url!r}: needs a key root path, e.g. etcd://host:2379/pystore/prod"
        )
    if "\0" in text:
        raise InvalidURLError(f"etcd URL {url!r}: the key root may not contain NUL")
    segments = text.strip("/").split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise InvalidURLError(
            f"etcd URL {url!r}: the key root may not contain empty, '.' or '..' segments"
        )
    return ("/" + "/".join(segments) + "/").encode("utf-8")


def _options(url: str, query: str) -> dict[str, str]:
    opts: dict[str, str] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise InvalidURLError(f"etcd URL {url!r}: bad query: {exc}") from None
    for name, value in pairs:
        if name not in _OPTIONS:
            raise InvalidURLError(
                f"etcd URL {url!r}: unknown option {name!r} (known: {', '.join(_OPTIONS)})"
            )
        if name in opts:
            raise InvalidURLError(f"etcd URL {url!r}: option {name!r} given twice")
        if not value:
            raise InvalidURLError(f"etcd URL {url!r}: option {name!r} has no value")
        opts[name] = value
    return opts


def _timeout(url: str, text: str | None) -> float:
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_TIMEOUT:
        raise InvalidURLError(
            f"etcd URL {url!r}: timeout must be a positive number of seconds, "
            f"at most {MAX_TIMEOUT:g}")
    return value


def _flag(url: str, name: str, text: str | None) -> bool:
    if text is None:
        return False
    if text not in ("0", "1", "true", "false"):
        raise InvalidURLError(f"etcd URL {url!r}: {name} must be 0 or 1")
    return text in ("1", "true")


def _limit(url: str, name: str, text: str | None, default: int) -> int | None:
    if text is None:
        return default
    if not text.isdigit():
        raise InvalidURLError(f"etcd URL {url!r}: {name} must be a whole number (0: no check)")
    return int(text) or None
