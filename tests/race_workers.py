"""Child processes of the cross-process race tests (test_procs_race.py).

Run as ``python race_workers.py MODE STORE ME N [MAP_SIZE|- [KEEP_CHANGES]]``.  Each prints
``ready`` once its store is open, then one line per acknowledged operation
(flushed: a parent that kills it knows what was acknowledged).  ``rounds``
modes read one line from stdin before each round, so the parent releases
every process into a round at once.
"""

from __future__ import annotations

import sys
import time

from pystore import AlreadyExistsError, ConflictError, Store, UniqueViolationError
from pystore.samples.agent_pb2 import Agent
from pystore.samples.common_pb2 import ResourceMetadata


def ack(*parts: object) -> None:
    sys.stdout.write(" ".join(map(str, parts)) + "\n")
    sys.stdout.flush()


def run_incr(store: Store, me: str, n: int) -> None:
    """n increments of Counter/c, each a conditional save retried on conflict."""
    done = conflicts = 0
    while done < n:
        rec = store.get_record("Counter", "c")
        value = int(Agent.FromString(rec.data).model)
        try:
            rev = store.save_resource("Counter", "c", Agent(model=str(value + 1)),
                                      if_revision=rec.revision)
        except ConflictError as exc:
            assert exc.expected == rec.revision and exc.actual > rec.revision, exc
            conflicts += 1
            continue
        done += 1
        ack("win", rev, value + 1)
    ack("done", conflicts)


def run_rounds(store: Store, me: str, rounds: int) -> None:
    """Per round: create one id, claim it with if_revision=0, claim one slug."""
    for r in range(rounds):
        if sys.stdin.readline() != "go\n":
            return
        out = []
        try:
            out.append(str(store.create_resource("Create", f"r{r}", Agent(model=me))))
        except AlreadyExistsError:
            out.append("exists")
        try:
            out.append(str(store.save_resource("Absent", f"r{r}", Agent(model=me),
                                               if_revision=0)))
        except ConflictError as exc:
            out.append(f"conflict:{exc.actual}")
        slug = Agent(metadata=ResourceMetadata(slug=f"slug-{r}"), model=me)
        try:
            out.append(str(store.save_resource("Slug", f"{me}-{r}", slug)))
        except UniqueViolationError as exc:
            out.append(f"taken:{exc.holder}")
        ack(r, *out)


def run_append(store: Store, me: str, n: int) -> None:
    """n append_event calls on stream s: prints each seq it was given."""
    for i in range(n):
        ack("seq", store.append_event("s", Agent(model=f"{me}-{i}")))


def run_events(store: Store, me: str, rounds: int) -> None:
    """Per round: append_events of seqs 1..10 of stream r<round>, all with the
    same keys from every process; prints how many were new."""
    for r in range(rounds):
        if sys.stdin.readline() != "go\n":
            return
        n = store.append_events(f"r{r}", [(seq, Agent(model=me)) for seq in range(1, 11)])
        ack(r, n)


def run_hold(store: Store, me: str, what: int) -> None:
    """Hold a write transaction (0), a snapshot (1) or a watch (2) until killed."""
    if what == 0:
        with store.transaction() as t:
            t.save_resource("Held", me, Agent(model=me))
            ack("holding")
            time.sleep(3600)
    elif what == 1:
        with store.snapshot() as snap:
            snap.count("Held")
            ack("holding")
            time.sleep(3600)
    else:
        ack("holding")
        for _ in store.watch(after=0):
            pass


def run_logs(store: Store, me: str, start: int) -> None:
    """Forever: an append_event, an idempotent batch, a versioned update, a
    slug move (unique index) in a transaction; one ack line per call."""
    i = start
    while True:
        ack("seq", store.append_event("log", Agent(model=f"{me}-{i}")))
        store.append_events("keyed", [(k, Agent(model=str(k))) for k in range(i, i + 5)])
        ack("keyed", i + 4)
        store.update_resource("Versioned", "v", Agent, _bump, create=True)
        ack("bumped")
        try:
            with store.transaction() as t:  # move a slug from one holder to another
                t.delete_resource("Slug", f"h{(i - 1) % 7}")
                t.save_resource("Slug", f"h{i % 7}", Agent(
                    metadata=ResourceMetadata(slug=f"slug-{i % 3}"), model=str(i)))
        except UniqueViolationError:
            ack("clash", i)
        else:
            ack("moved", i)
        i += 5


def run_mixed(store: Store, me: str, n: int) -> None:
    """n rounds of every kind of change, then a save of Done/<me>."""
    for i in range(n):
        store.save_resource("M", f"{me}-{i}", Agent(model=str(i)))
        store.save_resources("M", [(f"{me}-b{i}-{j}", Agent()) for j in range(3)])
        with store.transaction() as t:
            t.save_resource("N", f"{me}-{i}", Agent())
            t.delete_resource("M", f"{me}-{i}")
        store.append_event(f"ev-{me}", Agent(model=str(i)))
        store.delete_resources_by_prefix("M", f"{me}-b{i}-")
    store.save_resource("Done", me, Agent())


def run_cond(store: Store, me: str, n: int) -> None:
    """n random conditional writes on 4 shared ids, each on the revision this
    process read (often stale by then); one line per outcome:
    ``OP ID EXPECTED ok RESULT`` or ``OP ID EXPECTED conflict ACTUAL``."""
    import random

    rng = random.Random(f"{me}-{n}")
    for i in range(n):
        id = f"k{rng.randrange(4)}"
        try:
            seen = store.get_record("Cond", id).revision
        except KeyError:
            seen = 0
        op = rng.choice(("save", "save", "delete", "create"))
        if rng.random() < 0.2:
            seen = rng.randrange(seen + 3)  # a made-up revision now and then
        msg = Agent(model=f"{me}-{i}")
        try:
            if op == "save":
                ack(op, id, seen, "ok", store.save_resource("Cond", id, msg, if_revision=seen))
            elif op == "delete":
                ack(op, id, seen, "ok", store.delete_resource("Cond", id, if_revision=seen))
            else:
                ack(op, id, 0, "ok", store.create_resource("Cond", id, msg), f"{me}-{i}")
        except ConflictError as exc:
            ack(op, id, seen, "conflict", exc.actual)
        except AlreadyExistsError:
            ack(op, id, 0, "exists", 0)


def _bump(m: Agent) -> None:
    m.model = str(int(m.model or "0") + 1)


def main(argv: list[str]) -> int:
    mode, path, me = argv[1], argv[2], argv[3]
    map_size = int(argv[5]) if len(argv) > 5 and argv[5] != "-" else None
    keep = int(argv[6]) if len(argv) > 6 else 100_000
    with Store(path, sync=mode == "logs", map_size=map_size, keep_changes=keep) as store:
        ack("ready")
        {"incr": run_incr, "rounds": run_rounds, "append": run_append,
         "events": run_events, "hold": run_hold, "logs": run_logs, "mixed": run_mixed,
         "cond": run_cond}[mode](
            store, me, int(argv[4]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
