"""Helpers shared by the tests (importable: pyproject sets pythonpath = tests)."""

from __future__ import annotations

from pystore.samples import agent_pb2, common_pb2


def make_agent(i: int, *, org: str = "org-1", project: str = "proj-1") -> agent_pb2.Agent:
    """A realistic Agent carrying tenancy fields at several depths."""
    agent = agent_pb2.Agent(
        metadata=common_pb2.ResourceMetadata(
            id=f"agt-{i:06d}", name=f"Agent {i}", slug=f"agent-{i}",
            org_id=org, project_id=project, labels={"team": "core", "n": str(i)},
        ),
        instructions="Be helpful. " * 20,
        model="local-llm",
        temperature=0.5,
    )
    agent.tools.add(name="search", description="searches", parameters={"q": "str"})
    agent.skills.add(kind="Skill", id=f"sk-{i}", org_id=org, project_id=project)
    agent.environments["dev"].CopyFrom(
        common_pb2.ResourceRef(kind="Environment", id="env-1", org_id=org, project_id=project)
    )
    return agent
