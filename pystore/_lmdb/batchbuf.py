"""A thread's kept buffer for a batch's joined bytes (``save_resources``).

A batch goes to the core as one buffer: each record's id then payload,
joined (``pack_pairs``).  ``b"".join`` allocated it anew per call: 22 MB for
20,000 ~1.1 KB Agents, which glibc maps fresh and hands back to the kernel
when it is freed (a size its heap does not keep), so in ``make bench``'s
20,000-record row every batch faulted in ~5,900 fresh pages.  The bytes
are written instead into a ``BytesIO`` this thread keeps between batches
(up to ``KEEP`` bytes of it: a bigger one is let go after its call), whose
pages stay mapped: ~40 faults per batch, ~0.37 µs less per record.  Each
message is serialized as it is written (``Joined`` takes an iterator), so
the 20,000 serialized ``bytes`` are not all alive at once either: each is
freed after its write and the next one reuses its memory (a list of them
faulted in as many fresh pages again: 1.1-1.4 -> 0.1-0.5 µs per record
for the packing beyond serializing, one process, thread CPU).

The buffer is taken from the thread while a batch uses it, so a batch saved
meanwhile in the same thread (by a signal handler or a finalizer) joins
into a buffer of its own; it is given back only once its exports are
released, so a ``Joined`` interrupted before ``close`` costs the thread its
kept buffer, never a ``BufferError``.  The core copies what it keeps of the
batch (the one-call save and the transaction's log alike), so the next
batch may overwrite the buffer.
"""

from __future__ import annotations

import io
import threading
from array import array
from collections.abc import Iterable
from typing import Any

from ._native import ffi

__all__ = ["KEEP", "Joined"]

KEEP = 32 << 20  # bytes of a thread's batch buffer kept for its next batch

_from_buffer = ffi.from_buffer
_release = ffi.release


class _Kept(threading.local):
    bio: io.BytesIO | None = None


_kept = _Kept()


class Joined:
    """``parts`` joined in this thread's kept buffer: ``data`` (a ``char[]``
    over it, valid until ``close``) holds them in its first ``size`` bytes,
    ``lens`` their lengths.

    ``parts`` may be an iterator that makes each part as it is written
    (``pack_pairs`` serializes each message there): then no part outlives
    its write, and the next one reuses its memory.  Whatever the iterator
    raises is raised here, the buffer given back to the thread."""

    __slots__ = ("_bio", "_view", "data", "lens", "size")

    def __init__(self, parts: Iterable[bytes]) -> None:
        bio = _kept.bio
        _kept.bio = None  # taken (see the module docstring)
        if bio is None:
            bio = io.BytesIO()
        else:
            bio.seek(0)  # overwritten; what lies past `size` is not read
        try:
            self.lens = array("I", map(bio.write, parts))
        except BaseException:
            if _kept.bio is None:
                _kept.bio = bio  # nothing exported yet: still the thread's
            raise
        self.size = bio.tell()
        self._bio = bio
        self._view = bio.getbuffer()
        self.data: Any = _from_buffer(self._view)

    def close(self) -> None:
        """Release the buffer (and keep it for this thread's next batch)."""
        _release(self.data)
        view = self._view
        kept = view.nbytes <= KEEP
        view.release()
        if kept:
            _kept.bio = self._bio
