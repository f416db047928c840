"""Files and directories of a store on disk."""

from __future__ import annotations

import errno
import os

__all__ = ["denied_file", "make_dirs"]


def make_dirs(path: str) -> None:
    """Create ``path`` and missing parents, each new one mode 0700 whatever the umask."""
    missing = []
    p = os.path.abspath(path)
    while not os.path.exists(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)


def denied_file(path: str, readonly: bool, code: int) -> str:
    """For an open refused with EACCES/EPERM: " (NAME)" for the first of the
    store's files this process may not open as the open needs (a reader
    reads data.mdb; a writer also writes lock.mdb and write.lock), else ""."""
    if code not in (errno.EACCES, errno.EPERM):
        return ""
    files = ("data.mdb",) if readonly else ("data.mdb", "lock.mdb", "write.lock")
    mode = os.R_OK if readonly else os.R_OK | os.W_OK
    for name in files:
        f = os.path.join(path, name)
        try:
            if os.path.exists(f) and not os.access(f, mode, effective_ids=True):
                return f" ({name})"
        except (NotImplementedError, OSError):  # effective_ids not supported here
            return ""
    return ""
