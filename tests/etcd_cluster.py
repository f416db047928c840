"""A real etcd cluster for the tests: members started as processes on free
127.0.0.1 ports, data in a temporary directory.

Only the processes this module started are ever signalled, by PID.  Members
can be killed (the leader, say) and restarted with
``--initial-cluster-state existing`` to test failover and quorum loss.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from pystore._etcd.client import EtcdClient

HOST = "127.0.0.1"
HEALTHY_WITHIN = 30.0  # seconds for a (re)started cluster to answer Status
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL

# Every PID started here and not yet reaped, for the atexit safety net.
_LIVE: set[int] = set()


def missing_reason() -> str | None:
    """Why the etcd tests cannot run here, or None when they can."""
    if shutil.which("etcd") is None:
        return "etcd is not installed (Debian package etcd-server; `make sysdeps` installs it)"
    try:
        import grpc  # noqa: F401

        import pystore._etcd.client  # noqa: F401
    except ImportError as exc:
        return f"the etcd extra is not installed (pip install '.[etcd]'): {exc}"
    return None


def need_etcd_extra() -> None:
    """Skip the calling test module when grpcio is missing, or fail it under
    PYSTORE_REQUIRE_ETCD=1 (CI)."""
    import pytest

    try:
        import grpc  # noqa: F401
    except ImportError as exc:
        if os.environ.get("PYSTORE_REQUIRE_ETCD") == "1":
            raise
        pytest.skip(f"the etcd extra is not installed: {exc}", allow_module_level=True)


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass(frozen=True)
class TestCerts:
    """A throw-away CA with a server certificate for 127.0.0.1 and a client one."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_test_certs(d: Path) -> TestCerts:
    """Made by the openssl CLI (EC P-256 keys, valid one day)."""
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
        "-subj", "/CN=pystore-test-ca")  # fmt: skip
    for name, usage in (("server", "serverAuth"), ("client", "clientAuth")):
        (d / f"{name}.ext").write_text(
            f"subjectAltName=IP:{HOST}\nextendedKeyUsage={usage}\n"
        )
        run("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN=pystore-test-{name}")  # fmt: skip
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "1",
            "-extfile", f"{name}.ext")  # fmt: skip
    return TestCerts(d / "ca.pem", d / "server.pem", d / "server.key",
                     d / "client.pem", d / "client.key")  # fmt: skip


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    member_id: int = 0  # etcd's id, known once it answered Status
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"{HOST}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{HOST}:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class EtcdCluster:
    """``size`` etcd members under ``base``; ``extra_args`` go to every member."""

    def __init__(
        self,
        base: Path,
        size: int = 3,
        extra_args: tuple[str, ...] = (),
        tls: TestCerts | None = None,
    ) -> None:
        self.base = base
        self.extra_args = extra_args
        self.tls = tls  # clients must present a certificate of tls.ca
        ports = free_ports(2 * size)
        self.members = [
            Member(
                name=f"m{i + 1}",
                client_port=ports[2 * i],
                peer_port=ports[2 * i + 1],
                data_dir=base / f"m{i + 1}",
                log_path=base / f"m{i + 1}.log",
            )
            for i in range(size)
        ]
        self.token = f"pystore-test-{os.getpid()}-{ports[0]}"

    # -- addresses ---------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def url(self, root: str = "/pystore/test", **options: str) -> str:
        scheme = "etcd"
        if self.tls is not None:
            scheme = "etcds"
            options = {"cacert": str(self.tls.ca), "cert": str(self.tls.client_cert),
                       "key": str(self.tls.client_key), **options}  # fmt: skip
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"{scheme}://{','.join(self.endpoints)}{root}" + (f"?{query}" if query else "")

    def probe(self, timeout: float) -> EtcdClient:
        """A client over every member (with the client certificate under TLS)."""
        from pystore._etcd.client import EtcdClient

        if self.tls is None:
            return EtcdClient(self.endpoints, timeout=timeout)
        return EtcdClient.from_url(self.url(timeout=str(timeout)))

    @property
    def pids(self) -> list[int]:
        return [m.proc.pid for m in self.members if m.proc is not None and m.running]

    # -- processes -------------------------------------------------------------------

    def _spawn(self, m: Member, state: str) -> None:
        initial = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        scheme = "http"
        tls_args: list[str] = []
        if self.tls is not None:
            scheme = "https"
            tls_args = ["--cert-file", str(self.tls.server_cert),
                        "--key-file", str(self.tls.server_key),
                        "--trusted-ca-file", str(self.tls.ca), "--client-cert-auth"]  # fmt: skip
        cmd = [
            "etcd",
            "--name", m.name,
            "--data-dir", str(m.data_dir),
            "--listen-client-urls", f"{scheme}://{m.endpoint}",
            "--advertise-client-urls", f"{scheme}://{m.endpoint}",
            "--listen-peer-urls", m.peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", initial,
            "--initial-cluster-token", self.token,
            "--initial-cluster-state", state,
            "--logger", "zap",
            "--log-level", "warn",
            *tls_args,
            *self.extra_args,
        ]  # fmt: skip
        m._log = open(m.log_path, "ab")  # noqa: SIM115 (closed in _reap)
        m.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=m._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a ^C to pytest does not reach the members
        )
        _LIVE.add(m.proc.pid)

    def start(self) -> None:
        """Start every member as a new cluster; return once all answer Status."""
        for m in self.members:
            self._spawn(m, "new")
        self.wait_healthy()

    def wait_healthy(self, timeout: float = HEALTHY_WITHIN) -> None:
        """Wait until every running member answers Status and knows a leader."""
        deadline = time.monotonic() + timeout
        pending = [m for m in self.members if m.running]
        with self.probe(timeout) as probe:
            while pending:
                for m in list(pending):
                    if not m.running:
                        raise RuntimeError(f"etcd {m.name} exited: {self.log_tail(m)}")
                    try:
                        st = probe.status(m.endpoint, timeout=0.5)
                    except Exception:
                        continue
                    if st.leader:
                        m.member_id = st.header.member_id
                        pending.remove(m)
                if pending:
                    if time.monotonic() > deadline:
                        names = ", ".join(m.name for m in pending)
                        raise RuntimeError(f"etcd members {names} not healthy within {timeout} s")
                    time.sleep(0.05)

    def leader(self, timeout: float = HEALTHY_WITHIN) -> Member:
        """The member that leads now (asked of the running members)."""
        deadline = time.monotonic() + timeout
        with self.probe(timeout) as probe:
            while time.monotonic() < deadline:
                for m in self.members:
                    if not m.running:
                        continue
                    try:
                        st = probe.status(m.endpoint, timeout=0.5)
                    except Exception:
                        continue
                    m.member_id = st.header.member_id
                    for x in self.members:
                        if st.leader and x.member_id == st.leader and x.running:
                            return x
                time.sleep(0.05)
        raise RuntimeError(f"no etcd leader within {timeout} s")

    def sync(self, timeout: float = HEALTHY_WITHIN) -> None:
        """A linearizable read on every running member: each has applied all
        that was committed before this call (a follower may lag otherwise)."""
        from pystore._etcd.client import EtcdClient

        for m in self.members:
            if m.running:
                with EtcdClient([m.endpoint], timeout=timeout) as one:
                    one.range(b"\0")

    def kill(self, m: Member, sig: int = signal.SIGKILL) -> None:
        """Stop one member with ``sig`` and reap it."""
        if m.proc is None or not m.running:
            return
        m.proc.send_signal(sig)
        try:
            m.proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait()
        self._reap(m)

    def restart(self, m: Member, wait: bool = True) -> None:
        """Start a stopped member again on its data (``--initial-cluster-state existing``)."""
        if m.running:
            return
        self._spawn(m, "existing")
        if wait:
            self.wait_healthy()

    def ensure_running(self) -> None:
        """Restart any member a test left stopped, then wait for health."""
        stopped = [m for m in self.members if not m.running]
        for m in stopped:
            if m.proc is not None:
                self._reap(m)
            self._spawn(m, "existing")
        self.wait_healthy()

    def _reap(self, m: Member) -> None:
        if m.proc is not None:
            _LIVE.discard(m.proc.pid)
        if m._log is not None:
            m._log.close()
            m._log = None

    def stop(self) -> None:
        """SIGTERM every member started here, SIGKILL those alive after 5 s.

        One at a time: a leader stopping hands its leadership over first,
        which stalls when every follower is shutting down at the same moment.
        """
        deadline = time.monotonic() + STOP_GRACE
        for m in self.members:
            if m.proc is None or not m.running:
                continue
            with contextlib.suppress(ProcessLookupError):
                m.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                m.proc.wait(max(deadline - time.monotonic(), 0.0))
        for m in self.members:
            if m.proc is not None and m.running:
                m.proc.kill()
                m.proc.wait()
            self._reap(m)

    def log_tail(self, m: Member, n: int = 20) -> str:
        try:
            return "\n".join(m.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


@atexit.register
def _kill_leftovers() -> None:
    """Safety net if the session ended without the fixture's teardown: only
    the PIDs started here."""
    for pid in list(_LIVE):
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        _LIVE.discard(pid)
