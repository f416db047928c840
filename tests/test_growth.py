"""The map grows by itself under load; a full filesystem is a clear, recoverable error."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import mount_fs, umount_fs

from pystore import StorageFullError, Store, StoreError
from pystore.samples.agent_pb2 import Agent

MIB = 1 << 20
VALUE = 256 * 1024


def _value(kind: str, id: str, size: int = VALUE) -> Agent:
    unit = f"{kind}/{id}|"
    return Agent(model=id, instructions=(unit * (size // len(unit) + 1))[:size])


class _Readers:
    """Threads that keep reading committed records while the writer grows the map."""

    def __init__(self, store: Store, n: int) -> None:
        self.store = store
        self.committed: list[tuple[str, str]] = []
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.reads = 0
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(n)]

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not self.stop.is_set():
                known = len(self.committed)
                if known == 0:
                    threading.Event().wait(0.001)
                    continue
                kind, id = self.committed[rng.randrange(known)]
                assert self.store.get_resource(kind, id, Agent) == _value(kind, id)
                if rng.random() < 0.1:
                    done = sum(1 for k, _ in self.committed[:known] if k == kind)
                    assert self.store.count(kind) >= done
                    assert len(list(self.store.iter_resources(kind, limit=3))) >= min(3, done)
                self.reads += 1
        except BaseException as exc:
            self.errors.append(exc)

    def __enter__(self) -> _Readers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in self.threads)


def _bump(msg: Agent) -> None:
    msg.model = str(int(msg.model or "0") + 1)


def test_one_mib_map_takes_fifty_mb_single_and_batched(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with Store(path, map_size=MIB, sync=False) as store:
        first = store.stats().map_size
        assert first <= 2 * MIB
        store.save_resource("Counter", "c", Agent(model="0"))
        with _Readers(store, 3) as readers:
            # ~20 MB of single saves, each commit growing the map when needed.
            for i in range(80):
                store.save_resource("Single", f"s{i:03d}", _value("Single", f"s{i:03d}"))
                readers.committed.append(("Single", f"s{i:03d}"))
                if i % 10 == 0:
                    store.update_resource("Counter", "c", Agent, _bump)
            # ~20 MB in batches of 20 (one commit each, grown and replayed inside).
            for b in range(4):
                ids = [f"b{b}-{j:02d}" for j in range(20)]
                store.save_resources("Batch", [(x, _value("Batch", x)) for x in ids])
                readers.committed += [("Batch", x) for x in ids]
            # ~10 MB in one transaction that reads its own writes as the map grows.
            with store.transaction() as t:
                for j in range(40):
                    x = f"t{j:02d}"
                    t.save_resource("Txn", x, _value("Txn", x))
                    assert t.get_resource("Txn", f"t{j // 2:02d}", Agent) == _value(
                        "Txn", f"t{j // 2:02d}"
                    )
            readers.committed += [("Txn", f"t{j:02d}") for j in range(40)]
        assert not readers.errors, readers.errors
        assert readers.reads > 0
        stats = store.stats()
        assert stats.map_size >= 50 * MIB > first
        assert store.count("Single") == 80 and store.count("Batch") == 80
        assert store.count("Txn") == 40
        assert store.get_resource("Counter", "c", Agent).model == "8"
    # Reopened with the same tiny map_size: the file's size wins, all intact.
    with Store(path, map_size=MIB, readonly=True) as store:
        for kind, x in readers.committed:
            assert store.get_resource(kind, x, Agent) == _value(kind, x)


def test_growth_inside_one_huge_value(tmp_path: Path) -> None:
    with Store(tmp_path / "store", map_size=MIB, sync=False) as store:
        big = _value("Huge", "h", 24 * MIB)
        store.save_resource("Huge", "h", big)
        assert store.get_resource("Huge", "h", Agent) == big


# -- full filesystem ---------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted for the test (needs root and mount rights)."""
    mnt = tmp_path / "mnt"
    mount_fs(["-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs"], mnt)
    try:
        yield mnt
    finally:
        umount_fs(mnt)


@pytest.mark.parametrize("batched", [False, True])
def test_full_filesystem_is_a_clear_error_and_recoverable(small_fs: Path, batched: bool) -> None:
    filler = small_fs / "filler"
    filler.write_bytes(b"\0" * (3 * MIB))
    saved: list[str] = []
    with Store(small_fs / "store", sync=True) as store:
        with pytest.raises(StorageFullError) as info:
            for i in range(400):
                ids = [f"r{i:03d}-{j}" for j in range(4 if batched else 1)]
                store.save_resources("Fill", [(x, _value("Fill", x, 64 * 1024)) for x in ids])
                saved += ids
        assert isinstance(info.value, StoreError) and isinstance(info.value, OSError)
        assert "space" in str(info.value)
        assert len(saved) > 10
        # Everything acknowledged before is there and intact; the failed
        # commit left nothing behind.
        assert store.count("Fill") == len(saved)
        for x in saved:
            assert store.get_resource("Fill", x, Agent) == _value("Fill", x, 64 * 1024)
        # Free space outside the store: writes work again.
        filler.unlink()
        more = [f"m{j}" for j in range(8)]
        store.save_resources("More", [(x, _value("More", x, 64 * 1024)) for x in more])
        assert store.count("More") == 8
    with Store(small_fs / "store", readonly=True) as store:
        assert store.count("Fill") == len(saved)
        assert store.get_resource("More", "m7", Agent) == _value("More", "m7", 64 * 1024)
