"""The README's API tour as a typed program: `make lint` runs mypy --strict over
it (the samples are typed by their .pyi) and tests/test_tour.py runs it.

    python examples/tour.py [STORE_DIR]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile

from pystore import AlreadyExistsError, Collection, NotFoundError, Page, Store
from pystore.aio import AsyncStore
from pystore.samples.agent_pb2 import Agent
from pystore.samples.session_pb2 import Session


def tour(path: str) -> None:
    with Store(path) as store:  # directory, created 0700
        rev: int = store.save_resource("Agent", "agt-1", Agent(model="m"))  # upsert
        store.create_resource("Agent", "agt-2", Agent())  # AlreadyExistsError if present
        agent: Agent = store.get_resource("Agent", "agt-1", Agent)
        rec = store.get_record("Agent", "agt-1")  # Resource(id, kind, data, updated_at, ...)
        assert rec.revision == rev and agent.model == "m"
        raw: list[bytes] = store.list_resources("Agent")
        typed: list[Agent] = store.list_resources("Agent", Agent)
        assert len(raw) == len(typed) == 2
        for r in store.iter_resources("Agent", Agent, after="agt-1", limit=100):
            assert isinstance(r.message, Agent)
        assert store.exists("Agent", "agt-2")
        assert store.list_ids("Agent", prefix="agt-") == ["agt-1", "agt-2"]
        assert (store.count("Agent"), store.kinds()) == (2, ["Agent"])

        # the typed handle of one kind
        agents: Collection[Agent] = store.collection("Agent", Agent)
        a: Agent = agents.get("agt-1")
        none: Agent | None = agents.get_or_none("nope")
        assert a.model == "m" and none is None
        r2 = agents.save("agt-3", Agent(model="x"))
        agents.save("agt-3", Agent(model="y"), if_revision=r2)  # ConflictError if changed
        updated: Agent = agents.update("agt-4", lambda m: setattr(m, "model", "new"),
                                       create=True)
        assert updated.model == "new"
        page: Page[Agent] = agents.page(2)
        ids: list[str] = [id for id, _ in page.items]
        while page.next_token is not None:
            page = agents.page(2, page.next_token)
            ids += [id for id, _ in page.items]
        assert ids == agents.ids()
        pairs: list[tuple[str, Agent]] = agents.items(prefix="agt-", limit=10)
        assert len(pairs) == agents.count() == 4

        # atomic read-modify-write
        store.update_resource("Agent", "agt-1", Agent, lambda m: setattr(m, "model", "m2"))
        store.save_resources("Agent", [("agt-5", Agent()), ("agt-6", Agent())])  # one commit

        with store.transaction() as t:  # commits at exit, rolls back on error
            t.save_resource("Session", "s-1", Session(agent_id="agt-1"))
            t.delete_resource("Agent", "agt-2")
            sessions = t.collection("Session", Session)
            assert sessions.get("s-1").agent_id == "agt-1"  # reads in t see t's writes

        with store.snapshot() as snap:  # one consistent read view
            listed = snap.collection("Agent", Agent).items()
            after = snap.revision
        for change in store.watch(after=after, timeout=0.1):
            print("changed:", change.kind, change.id)
        assert listed

        try:
            agents.create("agt-1", Agent())
        except AlreadyExistsError as e:  # create-only
            print(e)
        store.delete_resources_by_kind("Agent")
        try:
            store.get_resource("Agent", "agt-1", Agent)
        except NotFoundError as e:  # a KeyError and a StoreError
            print(e)


async def async_tour(path: str) -> None:
    async with AsyncStore.open(path) as s:  # no await first
        agents = s.collection("Agent", Agent)  # a plain call; coroutine methods
        await agents.save("a-1", Agent(model="m"))  # shares group commits
        got: Agent = await agents.get("a-1")
        async with s.transaction() as t:  # on the store's writer thread
            await t.save_resource("Session", "s-1", Session(agent_id=got.model))
            await t.delete_resource("Agent", "a-1")
        await s.create_index("Session", "by_agent", field="agent_id", msg_type=Session)
        found: list[Session] = await s.find("Session", "by_agent", "m", Session)
        raw: list[bytes] = await s.find("Session", "by_agent", "m")
        async with s.snapshot() as snap:
            rev: int = snap.revision
            print("revision", rev, await snap.kinds(), len(found), len(raw))
            print("history", len(await snap.history("Session", "s-1")))
        stats = await s.stats()
        print("live data", stats.data_bytes, "bytes")


def main() -> int:
    base = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="pystore-tour-")
    tour(f"{base}/sync")
    asyncio.run(async_tour(f"{base}/async"))
    print("tour done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
