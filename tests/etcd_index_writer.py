"""A writer process of the etcd index-build tests: ``python etcd_index_writer.py URL SEED``.

Saves, moves and deletes resources of kind ``Big`` (ids ``0000``..``0799``)
until its stdin closes, printing ``ready`` after its first acknowledged
write and ``done N`` (the number of acknowledged writes) at the end.  Every
``instructions`` value it writes is new (``w<seed>-<n>``), so a unique index
on it never refuses a save; ``model`` takes one of 7 values.
"""

from __future__ import annotations

import random
import sys
import threading

from pystore import Store
from pystore.samples.agent_pb2 import Agent


def main() -> None:
    url, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    n = 0
    with Store(url, timeout=30.0) as s:
        while not stop.is_set():
            id = f"{rng.randrange(800):04d}"
            if rng.random() < 0.15:
                s.delete_resource("Big", id)
            else:
                s.save_resource("Big", id, Agent(model=f"m{rng.randrange(7)}",
                                                 instructions=f"w{seed}-{n}"))
            n += 1
            if n == 1:
                print("ready", flush=True)
    print(f"done {n}", flush=True)


if __name__ == "__main__":
    main()
