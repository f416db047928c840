"""Generate the C source of the cffi module ``pystore._native`` (API mode).

Run by CMake at build time:  python gen_ffi.py pystore_core.h out.c
The declarations between the CDEF markers of the public header are the
cdef; the module's C prelude just includes that header.  Nothing is
compiled here: CMake compiles the emitted C and links it to the core.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import cffi


def cdef_from_header(header: str) -> str:
    match = re.search(r"/\* CDEF-BEGIN \*/(.*?)/\* CDEF-END \*/", header, re.S)
    if match is None:
        raise SystemExit("gen_ffi: CDEF markers not found in header")
    return match.group(1)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: gen_ffi.py HEADER OUT_C", file=sys.stderr)
        return 2
    header, out = Path(argv[1]), Path(argv[2])
    ffi = cffi.FFI()
    ffi.cdef(cdef_from_header(header.read_text()))
    ffi.set_source("pystore._lmdb._native", '#include "pystore_core.h"\n')
    ffi.emit_c_code(str(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
