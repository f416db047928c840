"""The checks of ``Store``'s keyword options, shared by both backends."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MAX_TIMEOUT", "check_options"]

# The longest ``timeout`` (about 31 years): gRPC deadlines and Python's
# timed waits overflow somewhere past 1e10 s (``inf`` failed every etcd call
# at once), so a larger value is refused, not silently broken.
MAX_TIMEOUT = 1e9


def check_options(
    map_size: object, keep_changes: object, timeout: object, strip_fields: Iterable[str]
) -> frozenset[str]:
    """Refuse bad option values with TypeError/ValueError; the strip field names.

    Every backend checks every option, also the ones it ignores (``map_size``
    on etcd, ``timeout`` on LMDB), so a typo fails the same way on both.
    """
    if map_size is not None and (isinstance(map_size, bool) or not isinstance(map_size, int)):
        raise TypeError(f"map_size must be int or None, not {type(map_size).__name__}")
    if map_size is not None and map_size <= 0:
        raise ValueError("map_size must be positive")
    if isinstance(keep_changes, bool) or not isinstance(keep_changes, int):
        raise TypeError(f"keep_changes must be int, not {type(keep_changes).__name__}")
    if not 1 <= keep_changes < 2**63:
        raise ValueError("keep_changes must be >= 1")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number of seconds, not {timeout!r}")
        if not 0 < timeout <= MAX_TIMEOUT:  # nan, inf: no clock holds the deadline
            raise ValueError(
                f"timeout must be > 0 and at most {MAX_TIMEOUT:g} seconds, not {timeout!r}")
    if isinstance(strip_fields, str):
        raise TypeError("strip_fields must be an iterable of field names, not a str")
    names = frozenset(strip_fields)
    if not all(isinstance(n, str) for n in names):
        raise TypeError("strip_fields must hold str field names")
    return names
