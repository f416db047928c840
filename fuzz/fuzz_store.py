"""Atheris fuzz target: random operation sequences on a real store, checked against a model.

Each input is decoded into up to 40 operations with fuzzer-chosen kinds,
ids (any Unicode, empty, NUL, '/', over-long), payloads (random bytes stored
as a message field, and random bytes parsed back as a message), batches,
transactions that commit or roll back, conditional writes (``if_revision``
right, wrong or 0), and reopen.  Bad input must raise a clear exception
(StoreError, TypeError, ValueError) and leave the model unchanged; the store
revision never goes down and grows with every write that changed something;
after every input the store must equal the model, and the index on
``Agent.model`` must equal a full scan.

    python fuzz/fuzz_store.py -max_total_time=60 [corpus_dir]

Run by ``make fuzz`` (about 60 s, FUZZ_SECONDS to change).  With the ASan
build of the module (``make sanitize``), C memory errors abort the run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import atheris
from google.protobuf.message import DecodeError

with atheris.instrument_imports(include=["pystore"]):
    from pystore import (
        AlreadyExistsError,
        ConflictError,
        NotFoundError,
        Store,
        StoreError,
    )
    from pystore._lmdb.hygiene import Stripper
    from pystore.samples.agent_pb2 import Agent
    from pystore.samples.workflow_pb2 import Workflow

KINDS = ["A", "Ab", "A0", "Agent", "B"]
TENANCY = frozenset({"org_id", "project_id"})
TENANT_AGENT = Agent(
    metadata={"id": "a", "org_id": "org", "project_id": "proj", "labels": {"k": "v"}},
    skills=[{"kind": "Skill", "id": "s", "org_id": "org"}],
    environments={"dev": {"kind": "Env", "id": "e", "project_id": "proj"}},
).SerializeToString()
CLEAR = (StoreError, TypeError, ValueError)

Key = tuple[str, str]


class Rollback(Exception):
    pass


class Harness:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="pystore-fuzz-")
        self.store = Store(self.dir, sync=False, map_size=1 << 20)
        self.store.create_index("Agent", "by_model", field="model", msg_type=Agent)
        self.model: dict[Key, bytes] = {}
        self.revision = self.store.revision()

    # -- decoding ---------------------------------------------------------

    def kind(self, fdp: atheris.FuzzedDataProvider) -> str:
        if fdp.ConsumeIntInRange(0, 7) == 0:
            return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 8))
        return KINDS[fdp.ConsumeIntInRange(0, len(KINDS) - 1)]

    def id(self, fdp: atheris.FuzzedDataProvider) -> str:
        r = fdp.ConsumeIntInRange(0, 9)
        if r == 0:
            return "x" * fdp.ConsumeIntInRange(500, 520)  # around the key limit
        if r < 4:
            return str(fdp.ConsumeIntInRange(0, 9))
        return fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 12))

    def raw_msg(self, fdp: atheris.FuzzedDataProvider) -> tuple[Agent, bytes] | None:
        """An Agent parsed from fuzzer bytes (unknown fields, nested tenancy
        fields at odd places) and the bytes the store must keep: the same
        message with the tenancy fields cleared by the pure-Python path."""
        msg = Agent()
        base = TENANT_AGENT if fdp.ConsumeBool() else b""
        try:  # concatenated messages merge: tenancy fields plus fuzzer bytes
            msg.ParseFromString(base + fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 200)))
        except DecodeError:
            return None
        expect = Agent()
        expect.CopyFrom(msg)
        Stripper(TENANCY).strip_in_place(expect)
        return msg, expect.SerializeToString()

    def msg(self, fdp: atheris.FuzzedDataProvider) -> Agent:
        size = fdp.ConsumeIntInRange(0, 3) * fdp.ConsumeIntInRange(0, 3000)
        return Agent(
            model=fdp.ConsumeUnicodeNoSurrogates(8),
            instructions="i" * size,
            temperature=fdp.ConsumeIntInRange(0, 100) / 8,
        )

    # -- one input --------------------------------------------------------

    def valid(self, kind: str, id: str | None = None) -> bool:
        try:
            kb = kind.encode()
            ok = bool(kb) and b"/" not in kb and b"\0" not in kb
            if id is not None:
                ib = id.encode()
                ok = ok and bool(ib) and b"\0" not in ib and len(kb) + 1 + len(ib) <= 511
            return ok and len(kb) + 1 <= 511
        except UnicodeEncodeError:
            return False

    def step(self, fdp: atheris.FuzzedDataProvider) -> None:
        s, m = self.store, self.model
        op = fdp.ConsumeIntInRange(0, 13)
        kind = self.kind(fdp)
        id = self.id(fdp)
        before = dict(m)
        try:
            if op == 13:
                self.conditional(fdp, kind, id)
            elif op == 0:
                msg = self.msg(fdp)
                s.save_resource(kind, id, msg)
                m[kind, id] = msg.SerializeToString()
            elif op == 1:
                msg = self.msg(fdp)
                try:
                    s.create_resource(kind, id, msg)
                except AlreadyExistsError:
                    assert (kind, id) in m
                    return
                assert (kind, id) not in m
                m[kind, id] = msg.SerializeToString()
            elif op == 2:
                items = [(self.id(fdp), self.msg(fdp)) for _ in range(fdp.ConsumeIntInRange(0, 6))]
                s.save_resources(kind, items)
                m.update({(kind, i): x.SerializeToString() for i, x in items})
            elif op == 3:
                existed = s.delete_resource(kind, id)
                assert existed == ((kind, id) in m)
                m.pop((kind, id), None)
            elif op == 4:
                n = s.delete_resources_by_kind(kind)
                keys = [k for k in m if k[0] == kind]
                assert n == len(keys)
                for k in keys:
                    del m[k]
            elif op == 5:
                got = s.get_bytes(kind, id)
                assert got == m[kind, id]
            elif op == 6:
                # Arbitrary stored bytes parsed as some class: clear error or a message.
                try:
                    s.get_resource(kind, id, Workflow if fdp.ConsumeBool() else Agent)
                except NotFoundError:
                    assert (kind, id) not in m
            elif op == 7:
                after = self.id(fdp) if fdp.ConsumeBool() else None
                limit = fdp.ConsumeIntInRange(0, 4) if fdp.ConsumeBool() else None
                got = [r.id for r in s.iter_resources(kind, after=after, limit=limit)]
                want = sorted((i for k, i in m if k == kind), key=str.encode)
                if after is not None:
                    want = [i for i in want if i.encode() > after.encode()]
                assert got == (want if limit is None else want[:limit])
            elif op == 8:
                value = fdp.ConsumeUnicodeNoSurrogates(6)
                fail = fdp.ConsumeBool()

                def fn(msg: Agent) -> None:
                    msg.model = value
                    if fail:
                        raise Rollback

                try:
                    got_msg = s.update_resource(kind, id, Agent, fn)
                except Rollback:
                    return
                except NotFoundError:
                    assert (kind, id) not in m
                    return
                m[kind, id] = got_msg.SerializeToString()
            elif op == 9:
                self.transaction(fdp, kind)
            elif op == 10:
                assert s.count(kind) == sum(1 for k in m if k[0] == kind)
            elif op == 12:
                raw = self.raw_msg(fdp)
                if raw is not None:
                    s.save_resource(kind, id, raw[0])
                    m[kind, id] = raw[1]
                    assert s.get_bytes(kind, id) == raw[1]
            else:
                s.close()
                self.store = Store(self.dir, sync=False)
        except NotFoundError:
            assert (kind, id) not in m or not self.valid(kind, id)
        except CLEAR as exc:
            # Rejected input: nothing may have changed (checked after the input).
            assert not self.valid(kind, id) or op in (2, 6, 7, 9), (op, kind, id, exc)
        finally:
            rev = self.store.revision()
            assert rev >= self.revision, (rev, self.revision)
            if self.model != before:  # something changed: a new revision
                assert rev > self.revision, (op, rev, self.revision)
            self.revision = rev

    def conditional(self, fdp: atheris.FuzzedDataProvider, kind: str, id: str) -> None:
        """save or delete with if_revision: the stored one, a wrong one, or 0."""
        s, m = self.store, self.model
        actual = s.get_record(kind, id).revision if (kind, id) in m else 0
        choice = fdp.ConsumeIntInRange(0, 2)
        expected = actual if choice == 0 else 0 if choice == 1 else actual + 1
        try:
            if fdp.ConsumeBool():
                msg = self.msg(fdp)
                rev = s.save_resource(kind, id, msg, if_revision=expected)
                assert rev > actual and s.get_record(kind, id).revision == rev
                m[kind, id] = msg.SerializeToString()
            else:
                existed = s.delete_resource(kind, id, if_revision=expected)
                assert existed == ((kind, id) in m)
                m.pop((kind, id), None)
        except ConflictError as exc:
            assert expected != actual, (expected, actual)
            assert (exc.expected, exc.actual) == (expected, actual)
            return
        assert expected == actual, (expected, actual)

    def transaction(self, fdp: atheris.FuzzedDataProvider, kind: str) -> None:
        staged = dict(self.model)
        commit = fdp.ConsumeBool()
        try:
            with self.store.transaction() as t:
                for _ in range(fdp.ConsumeIntInRange(1, 5)):
                    id, msg = self.id(fdp), self.msg(fdp)
                    try:
                        if fdp.ConsumeBool():
                            t.save_resource(kind, id, msg)
                            staged[kind, id] = msg.SerializeToString()
                        else:
                            t.delete_resource(kind, id)
                            staged.pop((kind, id), None)
                    except CLEAR:
                        assert not self.valid(kind, id)
                if not commit:
                    raise Rollback
        except Rollback:
            return
        self.model = staged

    def check(self) -> None:
        s, m = self.store, self.model
        kinds = sorted({k for k, _ in m})
        assert s.kinds() == kinds, (s.kinds(), kinds)
        for kind in kinds:
            want = [m[kind, i] for i in sorted((i for k, i in m if k == kind), key=str.encode)]
            assert s.list_resources(kind) == want
        by_model: dict[str, list[str]] = {}
        for (kind, id), data in m.items():
            if kind == "Agent":
                by_model.setdefault(Agent.FromString(data).model, []).append(id)
        by_model.pop("", None)  # the default value makes no entry
        for value, ids in by_model.items():
            assert s.find_ids("Agent", "by_model", value) == sorted(ids, key=str.encode)
        assert s.indexes("Agent")[0].entries == sum(len(v) for v in by_model.values())

    def reset(self) -> None:
        for kind in self.store.kinds():
            self.store.delete_resources_by_kind(kind)
        self.model.clear()


HARNESS: Harness | None = None


def test_one_input(data: bytes) -> None:
    global HARNESS
    if HARNESS is None:
        HARNESS = Harness()
    fdp = atheris.FuzzedDataProvider(data)
    HARNESS.reset()
    for _ in range(fdp.ConsumeIntInRange(1, 40)):
        if fdp.remaining_bytes() == 0:
            break
        HARNESS.step(fdp)
    HARNESS.check()


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    try:
        atheris.Fuzz()
    finally:
        if HARNESS is not None:
            HARNESS.store.close()
            shutil.rmtree(HARNESS.dir, ignore_errors=True)
    os._exit(0)


if __name__ == "__main__":
    main()
