"""Files and directories of a store on disk."""

from __future__ import annotations

import os

__all__ = ["make_dirs"]


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
