"""Run code with something done at its N-th check point (test helper).

A check point is where CPython may run a signal handler (and raise the
KeyboardInterrupt of a SIGINT): a Python function's entry, or the end of a
call.  ``at_check_point`` traces the functions of one source file and runs
``action`` at the ``point``-th one, with the tracing suspended meanwhile,
so a test can walk every point of a code path in turn, deterministically:
raise KeyboardInterrupt there (``interrupted_at``), or run other reads of a
store there (a handler's); ``walk_check_points`` does the walk.
"""

from __future__ import annotations

import dis
import functools
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["EXCEPTION_TABLE", "at_check_point", "interrupted_at", "walk_check_points"]

_CALLS = {dis.opmap[n] for n in ("CALL", "CALL_KW", "CALL_FUNCTION_EX") if n in dis.opmap}
_exception_table = getattr(dis, "_parse_exception_table", None)
EXCEPTION_TABLE = _exception_table is not None  # same_try needs it
_TABLES: dict[Any, Any] = {}


def _handler(code: Any, offset: int) -> int | None:
    if code not in _TABLES:
        _TABLES[code] = _exception_table(code)  # type: ignore[misc]
    for e in _TABLES[code]:
        if e.start <= offset < e.end:
            return int(e.target)
    return None


def at_check_point(point: int, call: Callable[[], object], filename: str,
                   action: Callable[[], None], *, same_try: bool = True) -> str | None:
    """Run ``call`` with ``action`` run at its ``point``-th check point inside
    ``filename``; where that was, or None when ``call`` has fewer.

    With ``same_try``, the end of a call counts only when the next
    instruction lies in the same ``try`` as the call: an exception raised by
    ``action`` (here, before that instruction) then lands where a real
    SIGINT's would.  A KeyboardInterrupt out of ``call`` is swallowed."""
    n = 0
    last: dict[int, int | None] = {}
    where: list[str] = []

    def hit(frame: Any, what: str) -> None:
        nonlocal n
        n += 1
        if n == point:
            where.append(f"{frame.f_code.co_name}:{frame.f_lineno} {what}")
            sys.settrace(None)
            action()
            sys.settrace(trace)

    def local(frame: Any, event: str, arg: object) -> Any:
        if where:
            return None
        if event == "opcode":
            prev, last[id(frame)] = last.get(id(frame)), frame.f_lasti
            code = frame.f_code
            if (prev is not None and code.co_code[prev] in _CALLS
                    and (not same_try or _handler(code, prev) == _handler(code, frame.f_lasti))):
                hit(frame, "after a call")
        return local

    def trace(frame: Any, event: str, arg: object) -> Any:
        if where or frame.f_code.co_filename != filename:
            return None
        frame.f_trace_opcodes = True
        last[id(frame)] = None  # a new frame (ids are reused)
        hit(frame, "entry")
        return local

    sys.settrace(trace)
    try:
        call()
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
    return where[0] if where else None


def _interrupt() -> None:
    raise KeyboardInterrupt


def interrupted_at(point: int, call: Callable[[], object], filename: str) -> str | None:
    """``call`` with a KeyboardInterrupt raised at its ``point``-th check
    point inside ``filename``: where it landed, or None (fewer points)."""
    return at_check_point(point, call, filename, _interrupt)


def walk_check_points(call: Callable[[], object], filename: str, action: Callable[[], None],
                      want: object) -> tuple[int, list[tuple[int, str, object]]]:
    """``call`` run again with ``action`` at each of its check points inside
    ``filename`` in turn (every call's end counts: ``same_try=False``):
    (points walked, [(point, where, result)] of the results other than
    ``want``)."""
    wrong: list[tuple[int, str, object]] = []
    point = 1
    while True:
        got: list[object] = []
        run = functools.partial(lambda out: out.append(call()), got)
        where = at_check_point(point, run, filename, action, same_try=False)
        if where is None:
            return point - 1, wrong
        if got != [want]:
            wrong.append((point, where, got))
        point += 1
