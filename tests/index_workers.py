"""Child processes of the index process tests: ``python index_workers.py MODE STORE START``.

``write``: opened before any index exists, saves batches, single saves,
prefix deletes and transactions of Sessions forever, printing one line per
acknowledged call.  ``crash``: the same on a store whose indexes exist (it
is killed with SIGKILL mid-way).  The payload of every id is a pure function
of the id, so a reader can rebuild the expected index answers from a scan.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading

from pystore import Store, UniqueViolationError
from pystore.samples.common_pb2 import ResourceMetadata
from pystore.samples.session_pb2 import Session


def payload(i: int) -> Session:
    return Session(
        metadata=ResourceMetadata(slug=f"slug-{i}"),
        agent_id=f"agent-{i % 13}",
        execution_ids=[f"x{i % 5}", f"x{i % 3}"],
        context={"k": str(i % 4)},
    )


def ack(*parts: object) -> None:
    sys.stdout.write(" ".join(map(str, parts)) + "\n")
    sys.stdout.flush()


def run(store: Store, start: int) -> None:
    i = start
    while True:
        store.save_resources("Session", [(f"s{j:07d}", payload(j)) for j in range(i, i + 20)])
        ack("many", i)
        store.save_resource("Session", f"s{i + 20:07d}", payload(i + 20))
        with store.transaction() as t:
            t.save_resource("Session", f"s{i + 21:07d}", payload(i + 21))
            t.delete_resource("Session", f"s{i + 3:07d}")
        store.delete_resources_by_prefix("Session", f"s{i + 10:06d}"[:-1])
        # a clash with an existing slug (when the unique index exists)
        with contextlib.suppress(UniqueViolationError):
            store.save_resource("Session", "clash", payload(i))
        store.delete_resource("Session", "clash")
        ack("round", i)
        i += 30


def main(argv: list[str]) -> int:
    mode, path, start = argv[1], argv[2], int(argv[3])
    with Store(path, sync=mode == "crash") as store:
        ack("ready")
        run(store, start)
    return 0


class Child:
    """A worker subprocess; a watchdog kills it after ``timeout`` seconds."""

    def __init__(self, *args: str, timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._dog = threading.Timer(timeout, self.proc.kill)
        self._dog.daemon = True
        self._dog.start()

    def line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().rstrip("\n")

    def kill(self) -> str:
        self.proc.kill()
        _, err = self.proc.communicate(timeout=30)
        self._dog.cancel()
        return err


if __name__ == "__main__":
    sys.exit(main(sys.argv))
