"""The systems under test, each behind the same small set of callables.

Every callable is the system's natural call for the job (a bound method for
pystore, a small function for the others), so the benchmark loop costs the
same for all of them.  Saves take a message: serializing it is part of the
job everywhere.  Reads exist both raw (bytes) and parsed (a message).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import lmdb
from google.protobuf.message import Message

import pystore

MAP_SIZE = 4 << 30


def disk_bytes(path: str) -> int:
    """Bytes allocated on disk by the files of a directory (sparse files count what is used)."""
    total = 0
    for name in os.listdir(path):
        st = os.stat(os.path.join(path, name))
        total += st.st_blocks * 512
    return total


def apparent_bytes(path: str) -> int:
    """The files' sizes (st_size): what ``ls -l`` shows, preallocated or not."""
    return sum(os.stat(os.path.join(path, name)).st_size for name in os.listdir(path))


class System:
    name = ""
    label = ""
    path = ""
    save_one: Callable[[str, str, Message], Any]
    save_many: Callable[[str, list[tuple[str, Message]]], Any]
    get_raw: Callable[[str, str], bytes]
    get_parsed: Callable[[str, str, type[Message]], Message]
    list_raw: Callable[[str], list[bytes]]
    list_parsed: Callable[[str, type[Message]], list[Message]]
    iter_pages: Callable[[str], int]
    iter_records: Callable[[str], int]  # iterate a kind record by record; returns the count
    delete_one: Callable[[str, str], bool]
    delete_kind: Callable[[str], int]

    def open(self, path: str, durable: bool = False) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def load(self, records: Iterable[tuple[str, str, Message]], chunk: int) -> None:
        raise NotImplementedError

    def size_on_disk(self) -> int:
        return disk_bytes(self.path)


# -- pystore ---------------------------------------------------------------


class PyStore(System):
    """pystore with its default options (every feature as configured by
    default: revisions, change log, history, hygiene); only ``sync`` is set."""

    name, label = "pystore", "pystore"

    def open(self, path: str, durable: bool = False) -> None:
        self.path = path
        s = self.store = pystore.Store(path, sync=durable)
        self.save_one = s.save_resource
        self.save_many = s.save_resources
        get_bytes = getattr(s, "get_bytes", None)
        if get_bytes is None:  # before the fast path existed
            get_record = s.get_record

            def get_bytes(kind: str, id: str) -> bytes:
                return get_record(kind, id).data

        self.get_raw = get_bytes
        self.get_parsed = s.get_resource
        self.list_raw = s.list_resources
        self.list_parsed = s.list_resources
        self.delete_one = s.delete_resource
        self.delete_kind = s.delete_resources_by_kind
        iter_resources = s.iter_resources

        def iter_pages(kind: str) -> int:
            n = 0
            for _ in iter_resources(kind):
                n += 1
            return n

        self.iter_pages = self.iter_records = iter_pages

    def close(self) -> None:
        self.store.close()

    def load(self, records: Iterable[tuple[str, str, Message]], chunk: int) -> None:
        batch = list(records)
        for start in range(0, len(batch), chunk):
            with self.store.transaction() as t:
                for kind, id, msg in batch[start : start + chunk]:
                    t.save_resource(kind, id, msg)


# -- py-lmdb ---------------------------------------------------------------


def _key(kind: str, id: str) -> bytes:
    return f"{kind}/{id}".encode()


class LmdbAdr(System):
    """py-lmdb used the way the ADR's Go code uses Badger: one txn per call,
    ``f"{kind}/{id}"`` keys, collect-then-delete for a kind."""

    name, label = "lmdb_adr", "py-lmdb (ADR-style)"
    env_kwargs: ClassVar[dict[str, Any]] = {}

    def open(self, path: str, durable: bool = False) -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)
        env = self.env = lmdb.open(
            path, map_size=MAP_SIZE, sync=durable, metasync=durable, **self.env_kwargs
        )
        self._bind(env)

    def _bind(self, env: Any) -> None:
        def save_one(kind: str, id: str, msg: Message) -> None:
            data = msg.SerializeToString()
            with env.begin(write=True) as txn:
                txn.put(_key(kind, id), data)

        def save_many(kind: str, items: list[tuple[str, Message]]) -> int:
            with env.begin(write=True) as txn:
                for id, msg in items:
                    txn.put(_key(kind, id), msg.SerializeToString())
            return len(items)

        def get_raw(kind: str, id: str) -> bytes:
            with env.begin() as txn:
                v = txn.get(_key(kind, id))
            if v is None:
                raise KeyError(f"resource not found: {kind}/{id}")
            return v

        def get_parsed(kind: str, id: str, cls: type[Message]) -> Message:
            with env.begin() as txn:
                v = txn.get(_key(kind, id))
            if v is None:
                raise KeyError(f"resource not found: {kind}/{id}")
            return cls.FromString(v)

        def list_raw(kind: str) -> list[bytes]:
            prefix = f"{kind}/".encode()
            out = []
            with env.begin() as txn:
                cur = txn.cursor()
                if cur.set_range(prefix):
                    for k, v in cur:
                        if not k.startswith(prefix):
                            break
                        out.append(v)
            return out

        def list_parsed(kind: str, cls: type[Message]) -> list[Message]:
            return [cls.FromString(v) for v in list_raw(kind)]

        def iter_pages(kind: str) -> int:
            prefix = f"{kind}/".encode()
            start, n = prefix, 0
            while True:
                page = []
                with env.begin() as txn:
                    cur = txn.cursor()
                    if cur.set_range(start):
                        for k, v in cur:
                            if not k.startswith(prefix) or len(page) == 512:
                                break
                            if k == start:
                                continue
                            page.append((k, v))
                n += len(page)
                if len(page) < 512:
                    return n
                start = page[-1][0]

        def delete_one(kind: str, id: str) -> bool:
            with env.begin(write=True) as txn:
                return bool(txn.delete(_key(kind, id)))

        def delete_kind(kind: str) -> int:
            prefix = f"{kind}/".encode()
            keys = []
            with env.begin() as txn:
                cur = txn.cursor()
                if cur.set_range(prefix):
                    for k in cur.iternext(keys=True, values=False):
                        if not k.startswith(prefix):
                            break
                        keys.append(k)
            with env.begin(write=True) as txn:
                for k in keys:
                    txn.delete(k)
            return len(keys)

        self.save_one, self.save_many = save_one, save_many
        self.get_raw, self.get_parsed = get_raw, get_parsed
        self.list_raw, self.list_parsed = list_raw, list_parsed
        self.iter_pages, self.delete_one, self.delete_kind = iter_pages, delete_one, delete_kind
        self.iter_records = iter_pages

    def close(self) -> None:
        self.env.close()

    def load(self, records: Iterable[tuple[str, str, Message]], chunk: int) -> None:
        batch = list(records)
        for start in range(0, len(batch), chunk):
            with self.env.begin(write=True) as txn:
                for kind, id, msg in batch[start : start + chunk]:
                    txn.put(_key(kind, id), msg.SerializeToString())


class LmdbExpert(LmdbAdr):
    """py-lmdb as an expert uses it: writemap, spare (reused) read txns,
    zero-copy buffers for parsing, putmulti, a cursor delete loop."""

    name, label = "lmdb_expert", "py-lmdb (expert)"
    env_kwargs: ClassVar[dict[str, Any]] = {"writemap": True, "max_spare_txns": 4}

    def _bind(self, env: Any) -> None:
        super()._bind(env)

        def save_many(kind: str, items: list[tuple[str, Message]]) -> int:
            pairs = [(f"{kind}/{id}".encode(), m.SerializeToString()) for id, m in items]
            with env.begin(write=True) as txn:
                txn.cursor().putmulti(pairs)
            return len(pairs)

        def get_parsed(kind: str, id: str, cls: type[Message]) -> Message:
            msg = cls()
            with env.begin(buffers=True) as txn:  # parse straight from the map
                v = txn.get(f"{kind}/{id}".encode())
                if v is None:
                    raise KeyError(f"resource not found: {kind}/{id}")
                msg.ParseFromString(v)
            return msg

        def list_raw(kind: str) -> list[bytes]:
            prefix = f"{kind}/".encode()
            n = len(prefix)
            with env.begin(buffers=True) as txn:
                cur = txn.cursor()
                out = []
                if cur.set_range(prefix):
                    for k, v in cur:
                        if k[:n] != prefix:
                            break
                        out.append(bytes(v))
            return out

        def list_parsed(kind: str, cls: type[Message]) -> list[Message]:
            prefix = f"{kind}/".encode()
            n = len(prefix)
            out = []
            with env.begin(buffers=True) as txn:
                cur = txn.cursor()
                if cur.set_range(prefix):
                    for k, v in cur:
                        if k[:n] != prefix:
                            break
                        m = cls()
                        m.ParseFromString(v)
                        out.append(m)
            return out

        def delete_kind(kind: str) -> int:
            prefix = f"{kind}/".encode()
            n = 0
            with env.begin(write=True) as txn:
                cur = txn.cursor()
                if cur.set_range(prefix):
                    while cur.key().startswith(prefix):
                        if not cur.delete():
                            break
                        n += 1
            return n

        def iter_records(kind: str) -> int:
            """One cursor loop over the kind building (id, bytes) per record."""
            prefix = f"{kind}/".encode()
            n = len(prefix)
            count = 0
            with env.begin() as txn:
                cur = txn.cursor()
                if cur.set_range(prefix):
                    for k, v in cur:
                        if k[:n] != prefix:
                            break
                        rec = (k[n:].decode(), v)  # noqa: F841 - the work being measured
                        count += 1
            return count

        self.save_many, self.get_parsed = save_many, get_parsed
        self.list_raw, self.list_parsed, self.delete_kind = list_raw, list_parsed, delete_kind
        self.iter_records = iter_records


# -- sqlite3 ---------------------------------------------------------------


class Sqlite(System):
    """stdlib sqlite3: WAL, a WITHOUT ROWID table keyed (kind, id), autocommit per call."""

    name, label = "sqlite", "sqlite3 (WAL)"

    def open(self, path: str, durable: bool = False) -> None:
        self.path = path
        os.makedirs(path, exist_ok=True)
        db = self.db = sqlite3.connect(
            os.path.join(path, "store.db"), isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        db.execute(
            "CREATE TABLE IF NOT EXISTS r (kind TEXT NOT NULL, id TEXT NOT NULL, "
            "data BLOB NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID"
        )
        ex = db.execute

        def save_one(kind: str, id: str, msg: Message) -> None:
            ex("INSERT OR REPLACE INTO r VALUES (?, ?, ?)", (kind, id, msg.SerializeToString()))

        def save_many(kind: str, items: list[tuple[str, Message]]) -> int:
            ex("BEGIN")
            try:
                db.executemany(
                    "INSERT OR REPLACE INTO r VALUES (?, ?, ?)",
                    [(kind, id, m.SerializeToString()) for id, m in items],
                )
            except BaseException:
                ex("ROLLBACK")
                raise
            ex("COMMIT")
            return len(items)

        def get_raw(kind: str, id: str) -> bytes:
            row = ex("SELECT data FROM r WHERE kind = ? AND id = ?", (kind, id)).fetchone()
            if row is None:
                raise KeyError(f"resource not found: {kind}/{id}")
            return row[0]  # type: ignore[no-any-return]

        def get_parsed(kind: str, id: str, cls: type[Message]) -> Message:
            return cls.FromString(get_raw(kind, id))

        def list_raw(kind: str) -> list[bytes]:
            return [r[0] for r in ex("SELECT data FROM r WHERE kind = ? ORDER BY id", (kind,))]

        def list_parsed(kind: str, cls: type[Message]) -> list[Message]:
            return [cls.FromString(v) for v in list_raw(kind)]

        def iter_pages(kind: str) -> int:
            after, n = "", 0
            while True:
                rows = ex(
                    "SELECT id, data FROM r WHERE kind = ? AND id > ? ORDER BY id LIMIT 512",
                    (kind, after),
                ).fetchall()
                n += len(rows)
                if len(rows) < 512:
                    return n
                after = rows[-1][0]

        def delete_one(kind: str, id: str) -> bool:
            return ex("DELETE FROM r WHERE kind = ? AND id = ?", (kind, id)).rowcount > 0

        def delete_kind(kind: str) -> int:
            return ex("DELETE FROM r WHERE kind = ?", (kind,)).rowcount  # type: ignore[no-any-return]

        self.save_one, self.save_many = save_one, save_many
        self.get_raw, self.get_parsed = get_raw, get_parsed
        self.list_raw, self.list_parsed = list_raw, list_parsed
        self.iter_pages, self.delete_one, self.delete_kind = iter_pages, delete_one, delete_kind
        self.iter_records = iter_pages

    def close(self) -> None:
        self.db.close()

    def load(self, records: Iterable[tuple[str, str, Message]], chunk: int) -> None:
        batch = list(records)
        for start in range(0, len(batch), chunk):
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO r VALUES (?, ?, ?)",
                [(k, i, m.SerializeToString()) for k, i, m in batch[start : start + chunk]],
            )
            self.db.execute("COMMIT")

    def size_on_disk(self) -> int:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return disk_bytes(self.path)


SYSTEMS: dict[str, type[System]] = {s.name: s for s in (PyStore, LmdbAdr, LmdbExpert, Sqlite)}
