"""Generate the C source of the cffi module ``pystore._native`` (API mode).

Run by CMake at build time:  python gen_ffi.py pystore_core.h out.c
The cdef is read from the public headers that pystore_core.h includes with
``#include "..."`` (pystore_env.h, pystore_records.h, ...), in the order of
those lines: each of them holds exactly one region between the markers
``/* CDEF-BEGIN */`` and ``/* CDEF-END */``, and the regions, joined in
that order, are the cdef (a type is declared before a later header uses
it).  The module's C prelude just includes pystore_core.h.  Nothing is
compiled here: CMake compiles the emitted C and links it to the core.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import cffi

_CDEF = re.compile(r"/\* CDEF-BEGIN \*/(.*?)/\* CDEF-END \*/", re.S)
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"', re.M)


def cdef_from_header(header: str, name: str) -> str:
    """The one CDEF region of a public header's text."""
    regions = _CDEF.findall(header)
    if len(regions) != 1:
        raise SystemExit(f"gen_ffi: {name} holds {len(regions)} CDEF regions (one expected)")
    return str(regions[0])


def cdef_from_umbrella(umbrella: Path) -> str:
    """The CDEF regions of the headers `umbrella` includes, in its order."""
    parts = _INCLUDE.findall(umbrella.read_text())
    if not parts:
        raise SystemExit(f"gen_ffi: {umbrella.name} includes no public header")
    if _CDEF.search(umbrella.read_text()):
        raise SystemExit(f"gen_ffi: {umbrella.name} holds a CDEF region of its own")
    return "".join(
        cdef_from_header((umbrella.parent / part).read_text(), part) for part in parts
    )


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: gen_ffi.py HEADER OUT_C", file=sys.stderr)
        return 2
    header, out = Path(argv[1]), Path(argv[2])
    ffi = cffi.FFI()
    ffi.cdef(cdef_from_umbrella(header))
    ffi.set_source("pystore._lmdb._native", '#include "pystore_core.h"\n')
    ffi.emit_c_code(str(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
