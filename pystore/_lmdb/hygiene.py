"""Data hygiene: clear the cloud tenancy fields before anything is persisted.

For each message type a *plan* is computed once and cached: which fields to
clear at this level and which message-typed fields (singular, repeated or
map values) lead to types that hold such fields.  A type that cannot reach
a field to strip has no plan, so serializing it costs nothing extra.

Limits: the contents of ``google.protobuf.Any`` (packed bytes) and unknown
fields are not inspected.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from ._native import ffi
from .wirestrip import WirePlan, compile_plan

__all__ = ["Stripper", "is_repeated"]

_SINGLE, _REPEATED, _MAP = 0, 1, 2


@dataclass(slots=True)
class _Plan:
    clear: list[str] = field(default_factory=list)
    nested: list[tuple[str, int, _Plan]] = field(default_factory=list)


def is_repeated(fd: FieldDescriptor) -> bool:
    """Whether ``fd`` is repeated, on every supported protobuf runtime (newer
    ones have ``is_repeated`` and dropped ``label``; older ones only ``label``)."""
    flag = getattr(fd, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(getattr(fd, "label", None) == FieldDescriptor.LABEL_REPEATED)


def _is_map(fd: FieldDescriptor) -> bool:
    mt = fd.message_type
    return mt is not None and mt.GetOptions().map_entry


def _message_children(desc: Descriptor) -> list[tuple[FieldDescriptor, int, Descriptor]]:
    """Message-typed fields of ``desc`` with how they are held and their type."""
    out = []
    for fd in desc.fields:
        if fd.message_type is None:
            continue
        if _is_map(fd):
            value = fd.message_type.fields_by_name["value"]
            if value.message_type is not None:
                out.append((fd, _MAP, value.message_type))
        elif is_repeated(fd):
            out.append((fd, _REPEATED, fd.message_type))
        else:
            out.append((fd, _SINGLE, fd.message_type))
    return out


class Stripper:
    """Clears the named fields at every depth; one instance per store."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self._plans: dict[Descriptor, _Plan | None] = {}
        self._lock = threading.Lock()
        # Per type: the compiled wire plan, or None when nothing needs stripping.
        self._wire: dict[Descriptor, WirePlan | None] = {}
        # Per message class: (its descriptor, its ps_fw_plan or NULL), for the
        # one-call writes (fastwrite.py, txnwrite.py); filled by fw_entry.
        self.fw_plans: dict[type, tuple[Descriptor, Any]] = {}

    def fw_entry(self, cls: type) -> tuple[Descriptor, Any] | None:
        """(descriptor, ps_fw_plan or NULL) of a message class, cached in
        ``fw_plans`` (hot paths read that dict first); None: not a message class."""
        entry = self.fw_plans.get(cls)
        if entry is not None:
            return entry
        if not (isinstance(cls, type) and issubclass(cls, Message)):
            return None
        desc = cast(Descriptor, cls.DESCRIPTOR)
        wire = self.wire_plan(desc)
        # The first entry stored wins (setdefault: one step under the GIL):
        # a thread that raced this one may have handed its plan to the core
        # already, and a transaction's log keeps it until the txn ends.
        return self.fw_plans.setdefault(cls, (desc, ffi.NULL if wire is None else wire.fw))

    def _wire_plan(self, desc: Descriptor) -> WirePlan | None:
        plan = self.plan(desc) if self.names else None
        wire = None if plan is None else WirePlan(compile_plan(desc, self.plan))
        # Two threads may compile one type at once: the first plan stored is
        # kept (its table must outlive every save that was given it).
        return self._wire.setdefault(desc, wire)

    def wire_plan(self, desc: Descriptor) -> WirePlan | None:
        """The compiled wire plan of a type (None: nothing to strip); cached."""
        try:
            return self._wire[desc]
        except KeyError:
            return self._wire_plan(desc)

    def plan(self, desc: Descriptor) -> _Plan | None:
        """The cached plan for a type, or None when nothing can need stripping.

        Plans are keyed by the descriptor, not its full name: two descriptor
        pools (two versions of a schema in one process) may each hold a type
        of one name, with and without the fields to strip."""
        try:
            return self._plans[desc]
        except KeyError:
            pass
        with self._lock:
            self._build(desc)
        return self._plans[desc]

    def _build(self, root: Descriptor) -> None:
        # Every type reachable from root, then which of them reach a field to strip.
        reach: list[Descriptor] = []
        seen: set[Descriptor] = set()
        stack = [root]
        while stack:
            d = stack.pop()
            if d in seen:
                continue
            seen.add(d)
            reach.append(d)
            stack.extend(child for _, _, child in _message_children(d))
        needs = {d for d in reach if any(f.name in self.names for f in d.fields)}
        changed = True
        while changed:  # fixed point: a type needs stripping if a child does
            changed = False
            for d in reach:
                if d not in needs and any(c in needs for _, _, c in _message_children(d)):
                    needs.add(d)
                    changed = True
        plans = {d: _Plan() for d in needs}
        for d in needs:
            plan = plans[d]
            plan.clear = [f.name for f in d.fields if f.name in self.names]
            plan.nested = [
                (fd.name, how, plans[child])
                for fd, how, child in _message_children(d)
                if child in needs and fd.name not in self.names
            ]
        for d in reach:
            self._plans.setdefault(d, plans.get(d))

    def serialize(self, msg: Message) -> bytes:
        """The message's bytes with the fields cleared; ``msg`` is left unchanged."""
        desc = cast(Descriptor, msg.DESCRIPTOR)
        try:
            wire = self._wire[desc]  # the steady state: one dict lookup
        except KeyError:
            wire = self._wire_plan(desc)
        if wire is None:
            return msg.SerializeToString()
        data = wire.strip(msg.SerializeToString())  # fast path: see _wirestrip.py
        if data is not None:
            return data
        plan = self.plan(desc)
        assert plan is not None
        copy = type(msg)()
        copy.CopyFrom(msg)
        _apply(copy, plan)
        return copy.SerializeToString()

    def serialize_unstripped(self, msg: Message) -> tuple[bytes, WirePlan | None]:
        """The message's bytes as they are, and the plan that strips them
        (None: nothing to strip).  No C call, so the GIL is kept: a durable
        writer serializes here and the leader of its group commit strips
        (see ``group.py``), so queueing writers do not convoy on the GIL."""
        desc = cast(Descriptor, msg.DESCRIPTOR)
        try:
            wire = self._wire[desc]
        except KeyError:
            wire = self._wire_plan(desc)
        return msg.SerializeToString(), wire

    def strip(self, msg: Message, data: bytes, wire: WirePlan) -> bytes:
        """``data`` (``msg`` serialized) without the fields ``wire`` names:
        what ``serialize(msg)`` returns."""
        out = wire.strip(data)
        if out is not None:
            return out
        plan = self.plan(cast(Descriptor, msg.DESCRIPTOR))
        assert plan is not None
        copy = type(msg)()
        copy.CopyFrom(msg)
        _apply(copy, plan)
        return copy.SerializeToString()

    def strip_in_place(self, msg: Message) -> None:
        """Clear the fields in ``msg`` itself (for messages pystore owns)."""
        plan = self.plan(cast(Descriptor, msg.DESCRIPTOR)) if self.names else None
        if plan is not None:
            _apply(msg, plan)


def _apply(msg: Message, plan: _Plan) -> None:
    for name in plan.clear:
        msg.ClearField(name)
    for name, how, sub in plan.nested:
        if how == _SINGLE:
            if msg.HasField(name):
                _apply(getattr(msg, name), sub)
        elif how == _REPEATED:
            for item in getattr(msg, name):
                _apply(item, sub)
        else:
            for item in getattr(msg, name).values():
                _apply(item, sub)
