"""Program of test_aio_sigint.py: ``python aio_sigint_child.py STORE FD``.

``asyncio.run`` with 48 tasks writing one durable store through one
AsyncStore: group-committed saves, transactions of two writes (kinds A and
B, same id), read-modify-writes and event appends.  After each write
returns it writes ``key revision`` to FD (unbuffered), so the parent knows
every acknowledged write; ``ready`` first.  The parent sends SIGINT.
"""

from __future__ import annotations

import asyncio
import os
import sys

from pystore.aio import AsyncStore
from pystore.samples.agent_pb2 import Agent


def _bump(m: Agent) -> None:
    m.model = "u"


async def writer(s: AsyncStore, i: int, fd: int) -> None:
    j = 0
    while True:
        key = f"w{i:02d}-{j:05d}"
        if j % 5 == 4:
            async with s.transaction() as t:
                await t.save_resource("A", key, Agent(model=key))
                await t.save_resource("B", key, Agent(model=key))
            rev = t.revision
        elif j % 7 == 3:
            await s.update_resource("A", key, Agent, _bump, create=True)
            rev = (await s.get_record("A", key)).revision
        elif j % 11 == 6:
            await s.append_event(f"ev{i:02d}", Agent(model=key))
            rev = 0
        else:
            rev = await s.save_resource("A", key, Agent(model=key))
        os.write(fd, f"{key} {rev}\n".encode())
        j += 1


async def main(path: str, fd: int) -> None:
    async with AsyncStore.open(path, sync=True) as s:
        os.write(fd, b"ready\n")
        await asyncio.gather(*(writer(s, i, fd) for i in range(48)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
