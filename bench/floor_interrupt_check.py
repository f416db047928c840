"""``floor_log.py`` interrupted half-way leaves nothing behind (make bench-smoke).

Runs it with a scratch TMPDIR, sends SIGINT once its stores exist, and
checks that it stopped on the interrupt and removed its directory (before,
an interrupted ``make bench-floor`` left ~100 MB of stores in /tmp).

    python floor_interrupt_check.py LIB
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import tempfile
import time


def main() -> None:
    lib = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="floor-check-") as tmp:
        p = subprocess.Popen(
            [sys.executable, "floor_log.py", lib, "50"],
            env={**os.environ, "TMPDIR": tmp},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while not glob.glob(f"{tmp}/floor-log-*/pystore"):
            if p.poll() is not None or time.monotonic() > deadline:
                p.kill()
                raise SystemExit(f"floor_log.py ended or stalled before its stores: {p.wait()}")
            time.sleep(0.01)
        time.sleep(0.2)  # inside the measuring
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
        if b"KeyboardInterrupt" not in err:
            raise SystemExit(f"not stopped by the interrupt (rc {p.returncode}): {err[-300:]!r}")
        left = os.listdir(tmp)
        if left:
            raise SystemExit(f"floor_log.py left {left} behind")
    print("floor_log.py: an interrupted run removed its scratch directory")


if __name__ == "__main__":
    main()
