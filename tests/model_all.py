"""A pure-Python model of one LMDB store as ONE system (tests/test_model_all.py):
records with revisions, the change log, kept versions of versioned kinds,
secondary indexes (unique and not) and event streams, with the rules the
docs state (README's API tour, docs/format.md).

Each write is a method that first decides the outcome (an error, or the
changes) and only then changes the model, so a refused call leaves it as it
was.  ``rev`` is the revision the write would commit at (a transaction's
writes share one); the caller moves ``Model.rev`` when the log grew."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from pystore.samples.agent_pb2 import Agent

Key = tuple[str, str]
# (revision, op, kind, id, stream, seq): Change's fields but updated_at
LogEntry = tuple[int, str, "str | None", "str | None", "str | None", "int | None"]

# index definitions the machine may create: name -> (field, values of a message)
FIELDS = {
    "model": lambda m: {m.model} - {""},
    "metadata.slug": lambda m: {m.metadata.slug} - {""},
    "metadata.labels": lambda m: set(m.metadata.labels.items()),
}


def values_of(field_: str, data: bytes) -> set[object]:
    return FIELDS[field_](Agent.FromString(data))  # type: ignore[no-untyped-call]


def id_order(ids: object) -> list[str]:
    return sorted(ids, key=lambda i: i.encode())  # type: ignore[attr-defined]


class Refused(Exception):
    """The model's verdict: the call must raise ``expected`` (a tuple of
    exception classes, any of which is right) and change nothing."""

    def __init__(self, *expected: type[BaseException], holder: str | None = None,
                 poisons: bool = False) -> None:
        super().__init__(expected)
        self.expected = expected
        self.holder = holder
        # inside a transaction, the refusal leaves it unusable (a batch
        # refused after some of its records were written): later calls and
        # the exit raise TransactionError, and nothing of it is committed
        self.poisons = poisons


@dataclass
class Model:
    rev: int = 0
    live: dict[Key, tuple[int, bytes]] = field(default_factory=dict)
    kept: dict[Key, list[tuple[int, bytes]]] = field(default_factory=dict)  # oldest first
    keep: dict[str, int] = field(default_factory=dict)
    log: list[LogEntry] = field(default_factory=list)
    indexes: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    events: dict[str, dict[int, bytes]] = field(default_factory=dict)
    hwm: dict[str, int] = field(default_factory=dict)
    forgot: dict[str, int] = field(default_factory=dict)

    def copy(self) -> Model:
        return copy.deepcopy(self)

    # -- indexes ----------------------------------------------------------------

    def holder(self, kind: str, id_: str, data: bytes) -> tuple[str, str] | None:
        """(index, holder id) of the first unique value of ``data`` another id holds."""
        for (k, name), (fld, unique) in sorted(self.indexes.items()):
            if k != kind or not unique:
                continue
            mine = values_of(fld, data)
            for (k2, i2), (_, d2) in self.live.items():
                if k2 == kind and i2 != id_ and mine & values_of(fld, d2):
                    return name, i2
        return None

    def find_ids(self, kind: str, name: str, value: object) -> list[str]:
        fld = self.indexes[kind, name][0]
        return id_order(i for (k, i), (_, d) in self.live.items()
                        if k == kind and value in values_of(fld, d))

    def entries(self, kind: str, name: str) -> int:
        fld = self.indexes[kind, name][0]
        return sum(len(values_of(fld, d)) for (k, _), (_, d) in self.live.items() if k == kind)

    # -- records ----------------------------------------------------------------

    def _supersede(self, key: Key, rev: int) -> None:
        old = self.live.get(key)
        keep = self.keep.get(key[0], 0)
        if old is None or keep == 0 or old[0] == rev:  # a version of this txn: never committed
            return
        self.kept[key] = [*self.kept.get(key, []), old][-keep:]

    def _put(self, key: Key, data: bytes, rev: int) -> None:
        self._supersede(key, rev)
        self.live[key] = (rev, data)
        self.log.append((rev, "put", key[0], key[1], None, None))

    def save(self, kind: str, id_: str, data: bytes, cond: int | None, rev: int) -> None:
        from pystore import ConflictError, UniqueViolationError
        actual = self.live.get((kind, id_), (0, b""))[0]
        conflict = cond is not None and cond != actual
        uv = self.holder(kind, id_, data)
        if conflict and uv:
            raise Refused(ConflictError, UniqueViolationError)
        if conflict:
            raise Refused(ConflictError)
        if uv:
            raise Refused(UniqueViolationError, holder=uv[1])
        self._put((kind, id_), data, rev)

    def create(self, kind: str, id_: str, data: bytes, rev: int) -> None:
        from pystore import AlreadyExistsError, UniqueViolationError
        if (kind, id_) in self.live:
            raise Refused(AlreadyExistsError)
        uv = self.holder(kind, id_, data)
        if uv:
            raise Refused(UniqueViolationError, holder=uv[1])
        self._put((kind, id_), data, rev)

    def save_many(self, kind: str, items: list[tuple[str, bytes]], rev: int) -> None:
        """LMDB checks a batch's unique values record by record, all or nothing."""
        from pystore import UniqueViolationError
        trial = self.copy()
        for n, (id_, data) in enumerate(items):
            uv = trial.holder(kind, id_, data)
            if uv:
                raise Refused(UniqueViolationError, holder=uv[1], poisons=n > 0)
            trial._put((kind, id_), data, rev)
        self.__dict__.update(trial.__dict__)

    def update(self, kind: str, id_: str, model: str, slug: str, create: bool,
               fail: bool, rev: int) -> bytes:
        from pystore import NotFoundError, UniqueViolationError
        old = self.live.get((kind, id_))
        if old is None and not create:
            raise Refused(NotFoundError)
        if fail:
            raise Refused(UpdateFailed)
        msg = Agent() if old is None else Agent.FromString(old[1])
        msg.model = model
        msg.metadata.slug = slug
        data = msg.SerializeToString()
        uv = self.holder(kind, id_, data)
        if uv:
            raise Refused(UniqueViolationError, holder=uv[1])
        self._put((kind, id_), data, rev)
        return data

    def delete(self, kind: str, id_: str, cond: int | None, rev: int) -> bool:
        from pystore import ConflictError
        actual = self.live.get((kind, id_), (0, b""))[0]
        if cond is not None and cond != actual:
            raise Refused(ConflictError)
        if (kind, id_) not in self.live:
            return False
        self._supersede((kind, id_), rev)
        del self.live[kind, id_]
        self.log.append((rev, "delete", kind, id_, None, None))
        return True

    def delete_prefix(self, kind: str, prefix: str | None, rev: int) -> int:
        """A kind delete (prefix None) or a prefix delete: the records and
        their kept versions go; one change when anything was deleted."""
        def hit(k: Key) -> bool:
            return k[0] == kind and (prefix is None or k[1].startswith(prefix))
        gone = [k for k in self.live if hit(k)]
        for k in gone:
            del self.live[k]
        for k in [k for k in self.kept if hit(k)]:
            del self.kept[k]
        if gone:
            op = "delete_kind" if prefix is None else "delete_prefix"
            self.log.append((rev, op, kind, prefix, None, None))
        return len(gone)

    # -- history ----------------------------------------------------------------

    def set_history(self, kind: str, keep: int) -> None:
        self.keep[kind] = keep
        for key in [k for k in self.kept if k[0] == kind]:
            self.kept[key] = self.kept[key][len(self.kept[key]) - keep:] if keep else []
            if not self.kept[key]:
                del self.kept[key]

    def delete_history(self, kind: str, id_: str) -> int:
        return len(self.kept.pop((kind, id_), []))

    def versions(self, key: Key) -> list[tuple[int, bytes]]:
        """history(kind, id): newest first, the live version first."""
        out = [self.live[key]] if key in self.live else []
        return out + list(reversed(self.kept.get(key, [])))

    # -- events -----------------------------------------------------------------

    def last_seq(self, stream: str) -> int:
        return max(self.hwm.get(stream, 0), self.forgot.get(stream, 0))

    def _append(self, stream: str, seq: int, data: bytes, rev: int) -> bool:
        evs = self.events.setdefault(stream, {})
        if seq in evs or seq <= self.forgot.get(stream, 0):
            return False
        evs[seq] = data
        self.hwm[stream] = max(self.hwm.get(stream, 0), seq)
        self.log.append((rev, "append", None, None, stream, seq))
        return True

    def append_event(self, stream: str, data: bytes, rev: int) -> int:
        seq = self.last_seq(stream) + 1
        assert self._append(stream, seq, data, rev)
        return seq

    def append_events(self, stream: str, items: list[tuple[int, bytes]], rev: int) -> int:
        return sum(self._append(stream, seq, data, rev) for seq, data in items)

    def delete_events(self, stream: str, upto: int | None) -> int:
        evs = self.events.get(stream, {})
        gone = [s for s in evs if upto is None or s <= upto]
        for s in gone:
            del evs[s]
        mark = self.last_seq(stream) if upto is None else upto
        if mark > self.forgot.get(stream, 0):
            self.forgot[stream] = mark
        return len(gone)

    def streams(self) -> list[str]:
        return sorted(s for s, evs in self.events.items() if evs)


class UpdateFailed(Exception):
    """Raised by an update's function: the update changes nothing."""
