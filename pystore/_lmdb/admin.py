"""Operator methods of ``Store``: ``stats()`` and ``backup()``."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..errors import StoreError, StoreOSError, check
from ._native import ffi, lib
from .core import CTxn, encode_kind
from .files import make_dirs
from .schema import read_schema

__all__ = ["AdminOps", "KindStats", "StoreStats", "switch_to_writemap"]


@dataclass(frozen=True, slots=True)
class KindStats:
    """One kind: how many resources, and the message type recorded for it."""

    count: int
    type_name: str | None


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What ``Store.stats()`` reports.

    Sizes are bytes: ``map_size`` is the current memory map (the file may
    grow up to it; in ``write_mode`` "writemap" the file is the whole map,
    allocated on disk), ``used_bytes`` the pages below LMDB's high-water mark,
    ``file_bytes`` the size of ``data.mdb`` on disk, ``data_bytes`` the
    pages that hold live data (the high-water mark less the pages on LMDB's
    free list: what a compacted ``backup()`` writes) and
    ``reclaimable_bytes`` what such a backup would save
    (``file_bytes - data_bytes``, never below 0).
    """

    path: str
    format_version: int
    map_size: int
    used_bytes: int
    file_bytes: int
    page_size: int
    entries: int
    depth: int
    max_readers: int
    num_readers: int
    kinds: dict[str, KindStats] = field(default_factory=dict)
    data_bytes: int = 0
    reclaimable_bytes: int = 0
    revision: int = 0  # the last committed revision
    # how writers write the file: "writemap" (through LMDB's writable map of
    # a preallocated data.mdb), "pwrite" (write(2) per page) or "" (etcd)
    write_mode: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the shape of ``pystore --json stats``)."""
        return {
            "path": self.path,
            "format_version": self.format_version,
            "revision": self.revision,
            "write_mode": self.write_mode,
            "entries": self.entries,
            "map_size": self.map_size,
            "used_bytes": self.used_bytes,
            "file_bytes": self.file_bytes,
            "data_bytes": self.data_bytes,
            "reclaimable_bytes": self.reclaimable_bytes,
            "page_size": self.page_size,
            "depth": self.depth,
            "readers": {"max": self.max_readers, "active": self.num_readers},
            "kinds": {
                k: {"count": v.count, "type": v.type_name} for k, v in self.kinds.items()
            },
        }


class AdminOps:
    """Mixed into ``Store``; uses its env and lifecycle checks."""

    path: str
    _env: Any

    def _check_usable(self) -> None:
        raise NotImplementedError

    def _begin(self, write: bool) -> CTxn:
        raise NotImplementedError

    def _end(self, txn: CTxn, ok: bool) -> int:
        raise NotImplementedError

    def _prepare(self, write: bool) -> CTxn:
        raise NotImplementedError

    def _start(self, txn: CTxn) -> None:
        raise NotImplementedError

    @contextmanager
    def _reading(self) -> Iterator[CTxn]:
        """One read transaction (a consistent snapshot) for the ``with`` block."""
        t = self._prepare(False)
        try:
            self._start(t)
            yield t
        finally:
            t.finish(t.slot, 0, t.rc, ffi.NULL)

    def _schema_of(self, kind: str) -> tuple[str, bytes] | None:
        """(message type name, FileDescriptorSet bytes) recorded for ``kind``."""
        kb = encode_kind(kind)
        with self._reading() as t:
            return read_schema(t, kb)

    def stats(self) -> StoreStats:
        """Counts per kind (with the recorded message type), sizes, format version."""
        self._check_usable()
        info = ffi.new("ps_env_info *")
        check(lib.ps_env_get_info(self._env, info), "stats")
        kinds: dict[str, KindStats] = {}
        with self._reading() as t:
            psize, _, _, live = t.space()
            for kind in t.kinds():
                kb = encode_kind(kind)
                schema = read_schema(t, kb)
                kinds[kind] = KindStats(t.count(kb), schema[0] if schema else None)
        try:
            file_bytes = os.stat(os.path.join(self.path, "data.mdb")).st_size
        except OSError:
            file_bytes = 0
        return StoreStats(
            path=self.path,
            format_version=int(info.format_version),
            map_size=int(info.map_size),
            used_bytes=int(info.used_bytes),
            file_bytes=file_bytes,
            page_size=int(info.page_size),
            entries=int(info.entries),
            depth=int(info.depth),
            max_readers=int(info.max_readers),
            num_readers=int(info.num_readers),
            kinds=kinds,
            data_bytes=live * psize,
            reclaimable_bytes=max(0, file_bytes - live * psize),
            revision=int(info.revision),
            write_mode="writemap" if lib.ps_env_writemap(self._env) else "pwrite",
        )

    def backup(self, dest: str | os.PathLike[str], compact: bool = True) -> int:
        """Write a consistent copy of the store into directory ``dest``.

        Safe while this and other processes write: the copy is one snapshot.
        ``dest`` is created (mode 0700, with parents) if missing and must be
        empty; ``compact`` leaves free pages out.  The copy is a store that
        ``Store(dest)`` opens.  Returns the size of the copied ``data.mdb``.
        """
        if not isinstance(dest, (str, os.PathLike)):
            raise TypeError(f"dest must be str or os.PathLike, not {type(dest).__name__}")
        target = os.fspath(dest)
        if not isinstance(target, str):
            raise TypeError("dest must be a str path")
        self._check_usable()
        if os.path.abspath(target) == os.path.abspath(self.path):
            raise StoreError(f"backup destination {target!r} is the store itself")
        if os.path.exists(target):
            if not os.path.isdir(target):
                raise StoreOSError(
                    errno.ENOTDIR, f"backup destination {target!r} is not a directory"
                )
            if os.listdir(target):
                raise StoreOSError(
                    errno.ENOTEMPTY,
                    f"backup destination {target!r} is not empty (choose a new or empty directory)",
                )
        else:
            try:
                make_dirs(target)
            except OSError as exc:
                raise StoreOSError(
                    exc.errno, f"backup destination {target!r}: {exc.strerror}"
                ) from None
        check(lib.ps_env_copy(self._env, os.fsencode(target), 1 if compact else 0),
              f"backup to {target!r}")
        return os.stat(os.path.join(target, "data.mdb")).st_size


def switch_to_writemap(path: str | os.PathLike[str]) -> bool:
    """Switch the pwrite store at ``path`` to the writemap mode, in place.

    A store's write mode is chosen when it is created (docs/durability.md);
    stores made before the writemap mode, or with ``PYSTORE_WRITEMAP=0``,
    are written with pwrite.  This records the writemap mode in the store
    (one durable write, nothing else changes); the next writable open
    allocates its map on disk and writes it through LMDB's writable map.
    Returns True if it switched, False if the store was in the writemap mode
    already.  Every Store on it, in every process, must be closed:
    ``StoreInUseError`` otherwise (nothing changes).  Only on ext4, XFS and
    tmpfs (``StoreError`` elsewhere); a format-1 store must be opened
    writable once first (``IncompatibleStoreError``).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be str or os.PathLike, not {type(path).__name__}")
    target = os.fspath(path)
    if not isinstance(target, str):
        raise TypeError("path must be a str path")
    changed = ffi.new("int *")
    check(lib.ps_store_to_writemap(os.fsencode(target), changed), f"switch {target!r} to writemap")
    return bool(changed[0])
