"""A writer process for tests/test_model_procs.py: random writes of every
kind (one-call saves, creates, conditional saves, deletes, batches, kind
and prefix deletes, updates, transactions mixing them, event appends, index
create/drop, keep counts, large records that grow the map) on one store
that other processes write at the same time.

``python model_workers.py PATH SEED SECONDS OUT`` writes to OUT one JSON
line per acknowledged write: {"op", "rev", "puts": [[kind, id, model]],
"seqs": [[stream, seq]]}; "rev" is the revision the call returned (0: it
returned none, e.g. a plain delete)."""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from typing import Any

from pystore import (
    AlreadyExistsError,
    ConflictError,
    NotFoundError,
    Store,
    StoreError,
    TransactionError,
    UniqueViolationError,
)
from pystore.samples.agent_pb2 import Agent

KINDS = ["V", "W"]
IDS = ["a", "a/1", "ab", "b", "c"]
SLUGS = ["", "", "", "s1", "s2"]
BIG = 150_000


def agent(rng: random.Random, token: str) -> Agent:
    a = Agent(model=token)
    a.metadata.slug = rng.choice(SLUGS)
    if rng.random() < 0.05:
        a.instructions = "L" * BIG
    return a


def main(path: str, seed: int, seconds: float, out_path: str) -> None:
    rng = random.Random(seed)
    s = Store(path, sync=rng.random() < 0.5)
    n = 0
    out = open(out_path, "w")  # noqa: SIM115 (closed at the end)

    def log(op: str, rev: int, puts: list[Any] = (), seqs: list[Any] = ()) -> None:  # type: ignore[assignment]
        out.write(json.dumps({"op": op, "rev": rev, "puts": list(puts), "seqs": list(seqs)}) + "\n")

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        n += 1
        token = f"{seed}-{n}"
        kind, id_ = rng.choice(KINDS), rng.choice(IDS)
        r = rng.random()
        try:
            if r < 0.2:
                rev = s.save_resource(kind, id_, agent(rng, token))
                log("save", rev, [[kind, id_, token]])
            elif r < 0.28:
                rev = s.create_resource(kind, id_, agent(rng, token))
                log("create", rev, [[kind, id_, token]])
            elif r < 0.36:
                try:
                    cur = s.get_record(kind, id_).revision
                except NotFoundError:
                    cur = 0
                rev = s.save_resource(kind, id_, agent(rng, token), if_revision=cur)
                log("save_if", rev, [[kind, id_, token]])
            elif r < 0.44:
                s.delete_resource(kind, id_)
                log("delete", 0)
            elif r < 0.50:
                items = [(rng.choice(IDS), agent(rng, f"{token}.{i}")) for i in range(3)]
                s.save_resources(kind, items)
                log("batch", 0, [[kind, i, m.model] for i, m in items])
            elif r < 0.53:
                s.delete_resources_by_prefix(kind, rng.choice(["a", "a/", "b"]))
                log("delete_prefix", 0)
            elif r < 0.55:
                s.delete_resources_by_kind("W")
                log("delete_kind", 0)
            elif r < 0.62:
                def fn(a: Agent, token: str = token) -> None:
                    a.model = token
                s.update_resource(kind, id_, Agent, fn, create=True)
                log("update", 0, [[kind, id_, token]])
            elif r < 0.72:
                stream = rng.choice(["e1", "e2"])
                seq = s.append_event(stream, Agent(model=token))
                log("append_event", 0, seqs=[[stream, seq]])
            elif r < 0.76:
                stream = rng.choice(["e1", "e2"])
                seqs = [rng.randint(1, 400) for _ in range(2)]
                s.append_events(stream, [(q, Agent(model=token)) for q in seqs])
                log("append_events", 0)
            elif r < 0.90:
                puts: list[Any] = []
                with s.transaction() as t:
                    for i in range(rng.randint(1, 4)):
                        k, i2, tok = rng.choice(KINDS), rng.choice(IDS), f"{token}.{i}"
                        q = rng.random()
                        if q < 0.5:
                            try:
                                t.save_resource(k, i2, agent(rng, tok))
                                puts.append([k, i2, tok])
                            except UniqueViolationError:
                                pass
                        elif q < 0.7:
                            t.delete_resource(k, i2)
                        elif q < 0.8:
                            t.append_event("e1", Agent(model=tok))
                        elif q < 0.9:
                            t.delete_resources_by_prefix(k, "a")
                        else:
                            t.save_resources(k, [(i2, agent(rng, tok))])
                            puts.append([k, i2, tok])
                log("transaction", t.revision, puts)
            elif r < 0.92:
                s.set_history("W", rng.choice([0, 1, 3]))
            elif r < 0.94:
                stream = rng.choice(["e1", "e2"])
                upto = rng.choice([None, s.last_seq(stream) - 2])
                s.delete_events(stream, upto=None if upto is None else max(0, upto))
            elif r < 0.97:
                name, unique = rng.choice([("model", False), ("slug2", True)])
                field = "model" if name == "model" else "metadata.slug"
                with contextlib.suppress(StoreError):  # a duplicate value, or there
                    s.create_index("W", name, field=field, msg_type=Agent, unique=unique)
            else:
                with contextlib.suppress(NotFoundError):
                    s.drop_index("W", rng.choice(["model", "slug2"]))
        except (AlreadyExistsError, ConflictError, NotFoundError, TransactionError):
            pass  # refused (a unique value, a create over a record, a lost race)
    s.close()
    out.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
