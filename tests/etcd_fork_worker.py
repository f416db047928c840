"""Run as a script by test_etcd_client: an EtcdClient used, then fork(); the
child reports what using the parent's client does (it must raise
ForkedError, never hang or reach the cluster), the parent then keeps using
its client.  argv: endpoints (comma separated), key root."""

from __future__ import annotations

import os
import sys

from pystore._etcd.client import EtcdClient
from pystore.errors import ForkedError


def main() -> None:
    endpoints, root = sys.argv[1].split(","), sys.argv[2].encode()
    client = EtcdClient(endpoints, timeout=5.0)
    client.put(root + b"before", b"1")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out = []
        for name, call in [
            ("get", lambda: client.get(root + b"before")),
            ("put", lambda: client.put(root + b"child", b"x")),
            ("watch", lambda: client.watch(root)),
            ("status", lambda: client.status()),
        ]:
            try:
                call()
                out.append(f"{name}:no-error")
            except ForkedError:
                out.append(f"{name}:ForkedError")
            except Exception as exc:
                out.append(f"{name}:{type(exc).__name__}")
        client.close()  # allowed, and leaves the parent's channel alone
        os.write(w, (" ".join(out)).encode())
        os._exit(0)
    os.close(w)
    child_out = b""
    while chunk := os.read(r, 4096):
        child_out += chunk
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status), child_out.decode(), flush=True)
    client.put(root + b"after", b"2")
    n = client.range(root, root[:-1] + b"0", count_only=True).count
    print("parent ok", n, flush=True)
    client.close()


if __name__ == "__main__":
    main()
