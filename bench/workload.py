"""The benchmark workload, identical for every system (and written to a file for the C program).

5 kinds x 10,000 ids (``agt-000001`` style), inserted in a seeded random
order; two kinds share a prefix (``Agent``, ``AgentExecution``).  Every
record is a ~1 KB ``pystore.samples.Agent``: nested metadata with labels and
the tenancy fields (which pystore strips), long instructions, repeated tools
and skills, and a map of environments.
"""

from __future__ import annotations

import os
import random
import struct
import sys
from dataclasses import dataclass, field

from google.protobuf.message import Message

from pystore.samples import agent_pb2

SEED = 20261126
KINDS = ("Agent", "AgentExecution", "Session", "Skill", "Workflow")
PER_KIND = 10_000
LIST_KIND = "Agent"  # listed / iterated; "AgentExecution" follows it in key order
BATCH_KIND = "Batch"  # target of the 20,000-in-one-transaction save
BATCH_N = 20_000
DOOMED_KIND = "Doomed"  # filled (untimed) and deleted (timed) by delete-a-kind
LOAD_CHUNK = 5_000  # records per commit while loading
GETS_PER_ROUND = 2_000
SAVES_PER_ROUND = 500
DURABLE_PER_ROUND = 20
DELETES_PER_ROUND = 500
PAGE = 500

_WORDS = [
    "agent",
    "tool",
    "call",
    "plan",
    "step",
    "context",
    "memory",
    "retrieve",
    "summarize",
    "answer",
    "user",
    "policy",
    "safety",
    "format",
    "json",
    "output",
    "reason",
    "verify",
    "source",
    "cite",
    "draft",
    "review",
    "schedule",
    "notify",
    "escalate",
    "budget",
    "limit",
    "retry",
    "backoff",
    "cache",
    "index",
    "search",
    "workflow",
    "session",
    "model",
    "prompt",
]


def _text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n_words))


def make_agent(rng: random.Random, kind: str, id: str) -> agent_pb2.Agent:
    """A realistic ~1 KB Agent (tenancy fields set, as received from the cloud)."""
    a = agent_pb2.Agent()
    m = a.metadata
    m.id = id
    m.name = f"{kind} {id} " + _text(rng, 3)
    m.slug = f"{kind.lower()}-{id}"
    m.org_id = f"org-{rng.randrange(10**8):08d}"
    m.project_id = f"prj-{rng.randrange(10**8):08d}"
    for k in ("team", "env", "tier", "owner"):
        m.labels[k] = _text(rng, 1)
    m.annotations["pystore.dev/origin"] = "bench"
    m.annotations["pystore.dev/note"] = _text(rng, 6)
    m.created_at.seconds = 1_760_000_000 + rng.randrange(10**7)
    m.version = rng.randrange(1, 50)
    a.instructions = _text(rng, 45)
    a.model = "local-model-7b"
    a.temperature = rng.random()
    for t in range(3):
        tool = a.tools.add()
        tool.name = f"tool_{t}_{_text(rng, 1)}"
        tool.description = _text(rng, 5)
        tool.parameters["timeout"] = str(rng.randrange(1, 60))
        tool.parameters["mode"] = _text(rng, 1)
    for _ in range(2):
        ref = a.skills.add()
        ref.kind = "Skill"
        ref.id = f"skl-{rng.randrange(PER_KIND):06d}"
        ref.org_id = m.org_id
        ref.project_id = m.project_id
    for env in ("dev", "prod"):
        e = a.environments[env]
        e.kind = "Environment"
        e.id = f"env-{env}-{rng.randrange(100)}"
    a.description = _text(rng, 12)
    return a


def make_id(kind: str, n: int) -> str:
    return f"{kind[:3].lower()}-{n:06d}"


@dataclass
class Workload:
    """Everything a run needs, generated once from SEED."""

    records: list[tuple[str, str, Message]]  # insertion order (random)
    get_keys: list[tuple[str, str]]  # random existing keys, one round's worth
    save_keys: list[int]  # indices into records (upserts of existing keys)
    batch: list[tuple[str, Message]]  # BATCH_N (id, msg) for BATCH_KIND
    payloads: list[bytes] = field(default_factory=list)  # serialized records (for C)

    def by_key(self) -> dict[tuple[str, str], Message]:
        return {(k, i): m for k, i, m in self.records}


def smoke() -> bool:
    """Tiny sizes (``PYSTORE_BENCH_SMOKE=1``): the harness checked end to end in seconds."""
    return os.environ.get("PYSTORE_BENCH_SMOKE", "") not in ("", "0")


def build(
    per_kind: int | None = None,
    gets: int | None = None,
    saves: int | None = None,
    batch_n: int | None = None,
) -> Workload:
    """The workload; sizes default to the module's constants (tiny ones under smoke())."""
    tiny = smoke()
    per_kind = per_kind or (400 if tiny else PER_KIND)
    gets = gets or (200 if tiny else GETS_PER_ROUND)
    saves = saves or (50 if tiny else SAVES_PER_ROUND)
    batch_n = batch_n or (1_000 if tiny else BATCH_N)
    rng = random.Random(SEED)
    records = []
    for kind in KINDS:
        for n in range(1, per_kind + 1):
            id = make_id(kind, n)
            records.append((kind, id, make_agent(rng, kind, id)))
    rng.shuffle(records)
    get_keys = [(k, i) for k, i, _ in rng.sample(records, gets)]
    save_keys = rng.sample(range(len(records)), saves)
    batch = [(f"bat-{n:06d}", records[n % len(records)][2]) for n in range(batch_n)]
    return Workload(records, get_keys, save_keys, batch)


def space_records(target_bytes: int) -> list[tuple[str, str, Message]]:
    """Records of the same kinds and shape whose payloads add up to ``target_bytes``
    (the space row: ~100 MB of records), in a seeded random order."""
    rng = random.Random(SEED + 1)
    records: list[tuple[str, str, Message]] = []
    total, n = 0, 0
    while total < target_bytes:
        n += 1
        for kind in KINDS:
            id = make_id(kind, n)
            msg = make_agent(rng, kind, id)
            total += msg.ByteSize()
            records.append((kind, id, msg))
    rng.shuffle(records)
    return records


def write_c_records(records: list[tuple[str, str, Message]], path: str) -> None:
    """Records alone in the C program's format (no gets, saves or batch): for its space mode."""
    out = [b"PSBW1\0\0\0", struct.pack("<I", len(records))]
    for kind, id, msg in records:
        kb, ib, pb = kind.encode(), id.encode(), msg.SerializeToString()
        out += [struct.pack("<HHI", len(kb), len(ib), len(pb)), kb, ib, pb]
    out.append(struct.pack("<III", 0, 0, 0))
    with open(path, "wb") as f:
        f.write(b"".join(out))


def write_c_file(w: Workload, path: str) -> None:
    """The workload for bench/c: the same records, serialized, in the same order.

    Layout (little-endian): b"PSBW1\\0\\0\\0", u32 n_records, then per record
    u16 kind_len, u16 id_len, u32 payload_len, kind, id, payload; then
    u32 n_gets and per get u32 record index; u32 n_saves and per save u32
    record index; u32 n_batch and per batch item u16 id_len, id, u32 record
    index of its message.
    """
    index = {(k, i): n for n, (k, i, _) in enumerate(w.records)}
    out = [b"PSBW1\0\0\0", struct.pack("<I", len(w.records))]
    for kind, id, msg in w.records:
        kb, ib, pb = kind.encode(), id.encode(), msg.SerializeToString()
        out += [struct.pack("<HHI", len(kb), len(ib), len(pb)), kb, ib, pb]
    out.append(struct.pack("<I", len(w.get_keys)))
    out += [struct.pack("<I", index[key]) for key in w.get_keys]
    out.append(struct.pack("<I", len(w.save_keys)))
    out += [struct.pack("<I", n) for n in w.save_keys]
    out.append(struct.pack("<I", len(w.batch)))
    for n, (id, _) in enumerate(w.batch):
        ib = id.encode()
        out += [struct.pack("<H", len(ib)), ib, struct.pack("<I", n % len(w.records))]
    with open(path, "wb") as f:
        f.write(b"".join(out))


if __name__ == "__main__":
    wl = build()
    sizes = [len(m.SerializeToString()) for _, _, m in wl.records[:1000]]
    print(
        f"records={len(wl.records)} mean payload={sum(sizes) / len(sizes):.0f} B", file=sys.stderr
    )
    if len(sys.argv) > 1:
        write_c_file(wl, sys.argv[1])
