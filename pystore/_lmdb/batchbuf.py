"""A thread's kept buffer for a batch's joined bytes (``save_resources``).

A batch goes to the core as one buffer: each record's id then payload,
joined (``pack_pairs``).  ``b"".join`` allocated it anew per call: 22 MB for
20,000 ~1.1 KB Agents, which glibc maps fresh and hands back to the kernel
when it is freed (a size its heap does not keep), so in ``make bench``'s
20,000-record row every batch faulted in ~5,900 fresh pages.  The bytes
are written instead into a ``BytesIO`` this thread keeps between batches
(up to ``KEEP`` bytes of it: a bigger one is let go after its call), whose
pages stay mapped: ~40 faults per batch, ~0.37 µs less per record.

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
    over it, valid until ``close``) holds them in its first ``size`` bytes."""

    __slots__ = ("_bio", "_view", "data", "size")

    def __init__(self, parts: list[bytes]) -> None:
        bio = _kept.bio
        _kept.bio = None  # taken (see the module docstring)
        if bio is None:
            bio = io.BytesIO()
        else:
            bio.seek(0)  # overwritten; what lies past `size` is not read
        bio.writelines(parts)
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
