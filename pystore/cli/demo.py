"""The main job shown by ``make demo``: a short tour of a real store."""

from __future__ import annotations

import sys
from typing import TextIO

from .. import AlreadyExistsError, ConflictError, NotFoundError, Store
from ..samples import agent_execution_pb2, agent_pb2, common_pb2, session_pb2, workflow_pb2

__all__ = ["run_demo"]


def _meta(id: str, name: str) -> common_pb2.ResourceMetadata:
    return common_pb2.ResourceMetadata(
        id=id, name=name, slug=name.lower().replace(" ", "-"),
        org_id="org-cloud-1", project_id="proj-cloud-9", labels={"team": "demo"},
    )


def run_demo(path: str = "./.pystore-demo", out: TextIO = sys.stdout) -> int:
    """Save, get, list, update and delete sample resources under ``path``."""

    def say(text: str) -> None:
        print(text, file=out)

    with Store(path) as store:
        say(f"opened store at {path} (revision {store.revision()})")
        start = store.revision()
        # A unique index on the slug, kept by the C core in every write
        # (creating it again is a no-op, so the demo can run twice).
        store.create_index("Agent", "slug", field="metadata.slug", msg_type=agent_pb2.Agent,
                           unique=True)
        agents = [
            (f"agent-{i}", agent_pb2.Agent(
                metadata=_meta(f"agent-{i}", f"Agent {i}"),
                instructions=f"You are helpful assistant number {i}.",
                model="local-llm", temperature=0.2,
                tools=[agent_pb2.Tool(name="search", description="web search")],
            ))
            for i in range(1, 4)
        ]
        n = store.save_resources("Agent", agents)
        say(f"saved {n} Agent resources in one commit")
        wf = workflow_pb2.Workflow(metadata=_meta("wf-1", "Nightly report"), description="demo")
        wf.steps.add(name="collect", agent=common_pb2.ResourceRef(kind="Agent", id="agent-1"))
        store.save_resource("Workflow", "wf-1", wf)
        session = session_pb2.Session(metadata=_meta("sess-1", "Chat"), agent_id="agent-1")
        store.save_resource("Session", "sess-1", session)
        with store.transaction() as t:  # several resources, all or nothing
            for i in (1, 2):
                ex = agent_execution_pb2.AgentExecution(
                    metadata=_meta(f"exec-{i}", f"Run {i}"), agent_id="agent-1",
                    session_id="sess-1",
                )
                t.create_resource("AgentExecution", f"exec-{i}", ex)
        say("saved 1 Workflow, 1 Session and 2 AgentExecutions (one transaction)")
        try:
            store.create_resource("Workflow", "wf-1", wf)
        except AlreadyExistsError as exc:
            say(f"create_resource refused a duplicate: {exc}")

        agents_h = store.collection("Agent", agent_pb2.Agent)  # a typed handle
        found = agents_h.find_one("slug", "agent-3")
        say(f"find_one by the unique slug index -> {found.metadata.name!r}")
        rev = store.get_record("Agent", "agent-3").revision
        found.model = "bigger-llm"
        new_rev = agents_h.save("agent-3", found, if_revision=rev)
        say(f"conditional save at revision {rev} -> committed at revision {new_rev}")
        try:
            agents_h.save("agent-3", found, if_revision=rev)  # stale etag
        except ConflictError as exc:
            say(f"a stale conditional save is refused: {exc}")

        store.set_history("Workflow", 5)  # a versioned kind keeps old versions
        wf.description = "demo, second version"
        store.save_resource("Workflow", "wf-1", wf)
        versions = store.history("Workflow", "wf-1")
        say(f"Workflow/wf-1 history: {len(versions)} version(s), revisions "
            f"{[v.revision for v in versions]}")

        step = agent_execution_pb2.Message(role="assistant", content="thinking")
        new = store.append_events("exec-1/events", [(1, step), (2, step)])
        again = store.append_events("exec-1/events", [(1, step), (2, step), (3, step)])
        say(f"appended {new} event(s); a retried batch added only {again} "
            f"(last seq {store.last_seq('exec-1/events')})")

        got = store.get_resource("Agent", "agent-2", agent_pb2.Agent)
        say(f"get Agent/agent-2 -> name={got.metadata.name!r} model={got.model!r}")
        say(f"tenancy fields on disk: org_id={got.metadata.org_id!r} "
            f"project_id={got.metadata.project_id!r} (stripped before saving)")
        record = store.get_record("Agent", "agent-2")
        say(f"record: {len(record.data)} protobuf bytes, "
            f"updated_at {record.updated_at.isoformat()}")

        def finish(ex: agent_execution_pb2.AgentExecution) -> None:
            ex.status.phase = agent_execution_pb2.EXECUTION_PHASE_SUCCEEDED
            ex.status.messages.add(role="assistant", content="done")

        store.update_resource(
            "AgentExecution", "exec-1", agent_execution_pb2.AgentExecution, finish
        )
        say("update_resource marked AgentExecution/exec-1 succeeded (atomic read-modify-write)")

        for kind in store.kinds():
            say(f"  {kind:<15} {store.count(kind)} resource(s)")
        names = [a.metadata.name for a in store.list_resources("Agent", agent_pb2.Agent)]
        say(f"list Agent -> {names}")
        deleted = store.delete_resources_by_kind("AgentExecution")
        say(f"deleted kind AgentExecution: {deleted} resource(s)")
        try:
            store.get_resource("AgentExecution", "exec-1", agent_execution_pb2.AgentExecution)
        except NotFoundError as exc:
            say(f"get after delete -> NotFoundError: {exc}")
        say(f"kinds now: {store.kinds()}")
        changes = store.changes(after=start)
        ops: dict[str, int] = {}
        for ch in changes:
            ops[ch.op] = ops.get(ch.op, 0) + 1
        say(f"change feed since revision {start}: {len(changes)} change(s) {ops}; "
            f"store revision {store.revision()}")
    say("closed the store")
    return 0
