"""Data hygiene on the serialized bytes (the fast path of ``Stripper.serialize``).

A hygiene plan (``_hygiene._Plan``) is compiled once per message type into
the flat table of ``ps_wire_strip`` (see csrc/ps_strip.c); the message is
then serialized once and the C core copies the bytes without the tenancy
fields.  Before this, each save copied the whole message (``CopyFrom``),
cleared the fields in the copy and serialized the copy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, cast

from google.protobuf.descriptor import Descriptor

from ._native import ffi, lib

__all__ = ["WirePlan", "compile_plan"]

DROP: int = lib.PS_STRIP_DROP
_SLACK: int = lib.PS_STRIP_SLACK
_SINGLE, _REPEATED, _MAP = 0, 1, 2  # as in _hygiene
_KEEP_MAX = 1 << 20
_strip = lib.ps_wire_strip
_unpack = ffi.unpack


def compile_plan(desc: Descriptor, plan_of: Callable[[Descriptor], Any]) -> list[int]:
    """The u32 table for ``desc``: node 0 is the root (``plan_of(desc)`` is not None)."""
    table: list[int] = []
    offsets: dict[Descriptor, int] = {}

    def node(d: Descriptor) -> int:
        if d in offsets:
            return offsets[d]
        plan = plan_of(d)
        off = offsets[d] = len(table)
        n = len(plan.clear) + len(plan.nested)
        table.extend([n] + [0] * (2 * n))
        i = 0
        for name in plan.clear:
            table[off + 1 + 2 * i : off + 3 + 2 * i] = [d.fields_by_name[name].number, DROP]
            i += 1
        for name, how, _ in plan.nested:
            fd = d.fields_by_name[name]
            sub = cast(Descriptor, fd.message_type)
            child = entry(sub) if how == _MAP else node(sub)
            table[off + 1 + 2 * i : off + 3 + 2 * i] = [fd.number, child]
            i += 1
        return off

    def entry(d: Descriptor) -> int:  # a map entry: descend into its value
        if d in offsets:
            return offsets[d]
        off = offsets[d] = len(table)
        value = d.fields_by_name["value"]
        table.extend([1, value.number, 0])
        table[off + 2] = node(cast(Descriptor, value.message_type))
        return off

    node(desc)
    return table


class _Tls(threading.local):
    def __init__(self) -> None:
        # One attribute: each access to a threading.local costs ~0.1 us.
        self.out: list[Any] = _out_space(1 << 16)


def _out_space(n: int) -> list[Any]:
    """[buffer of n bytes, n, the out-length, busy]: busy from the C call to
    the copy of its output (see WirePlan.strip)."""
    return [ffi.new("char[]", n), n, ffi.new("size_t *"), False]


_tls = _Tls()


class WirePlan:
    """One compiled plan; ``strip(data)`` is the stripped bytes, or None when
    the C core declines (the caller then strips the slow way)."""

    __slots__ = ("_n", "_table", "fw")

    def __init__(self, table: list[int]) -> None:
        self._table: Any = ffi.new("uint32_t[]", table)
        self._n = len(table)
        # The same table for the one-call writes (ps_fastwrite.c); it points
        # into self._table, which lives as long as this plan.
        self.fw: Any = ffi.new("ps_fw_plan *", (self._table, self._n))

    def strip(self, data: bytes) -> bytes | None:
        o = _tls.out
        need = len(data) + _SLACK
        busy = o[3]
        if busy or need > o[1]:
            # A space of its own: the thread's is too small, or holds the
            # output of another strip run between its C call and its copy,
            # in this thread (a signal handler's or a finalizer's save).  Its
            # own out-length too: one past _KEEP_MAX is not made the
            # thread's, so a handler's strip uses the thread's.
            o = _out_space(need)
            if not busy and need <= _KEEP_MAX:
                _tls.out = o
        o[3] = True
        try:
            rc = _strip(self._table, self._n, data, len(data), o[0], o[1], o[2])
            if rc:
                return None
            out: bytes = _unpack(o[0], o[2][0])
            return out
        finally:
            o[3] = False
