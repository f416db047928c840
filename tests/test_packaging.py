"""Packaging: distribution name, licences in the install, the limited API, the
message a source build without LMDB gives, and `import pystore` from the
checkout root (the installed wheel itself: test_wheel.py)."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import pystore
import pystore._lmdb._native as native

ROOT = Path(__file__).resolve().parents[1]


def test_distribution_name_and_import_name() -> None:
    meta = md.metadata("pystore-lmdb")
    assert meta["Name"] == "pystore-lmdb"
    assert meta["Version"] == pystore.__version__
    assert md.packages_distributions().get("pystore") == ["pystore-lmdb"]


def test_licences_are_installed_beside_the_module_and_in_dist_info() -> None:
    beside = Path(native.__file__).parent / "LMDB-OpenLDAP.txt"
    text = beside.read_text()
    assert "The OpenLDAP Public License" in text and "Version 2.8, 17 August 2003" in text
    files = {str(f) for f in md.files("pystore-lmdb") or []}
    assert any(re.search(r"\.dist-info/licenses/LICENSE$", f) for f in files), files
    assert any(f.endswith(".dist-info/licenses/LICENSES/LMDB-OpenLDAP.txt") for f in files)
    assert "MIT" in (md.metadata("pystore-lmdb")["License-Expression"] or "")


def test_module_uses_the_limited_api() -> None:
    assert native.__file__.endswith(".abi3.so"), native.__file__


def test_protobuf_floor_is_not_the_samples_runtime() -> None:
    reqs = md.requires("pystore-lmdb") or []
    core = [r for r in reqs if r.startswith("protobuf") and "extra ==" not in r]
    samples = [r for r in reqs if r.startswith("protobuf") and 'extra == "samples"' in r]
    assert core and samples
    assert re.search(r">=\s*4\.22\b", core[0]), core


def test_import_pystore_from_the_checkout_root() -> None:
    """After `make install` (and so `make demo`), the source tree imports too."""
    code = ("import pystore, pystore.samples.agent_pb2 as a, tempfile, os\n"
            "d = tempfile.mkdtemp()\n"
            "with pystore.Store(os.path.join(d, 's'), sync=False) as s:\n"
            "    s.save_resource('Agent', 'x', a.Agent(model='m'))\n"
            "    print(pystore.__file__, s.get_resource('Agent', 'x', a.Agent).model)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    path, model = p.stdout.split()
    assert Path(path).resolve() == ROOT / "pystore" / "__init__.py"
    assert model == "m"


def _cmake() -> str:
    found = shutil.which("cmake") or shutil.which("cmake", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("no cmake (make ctest installs one)")
    return found


def test_source_build_without_lmdb_names_the_package_to_install(tmp_path: Path) -> None:
    empty = tmp_path / "pkgconfig"
    empty.mkdir()
    env = dict(os.environ, PKG_CONFIG_LIBDIR=str(empty), PKG_CONFIG_PATH="")
    p = subprocess.run([_cmake(), "-S", str(ROOT), "-B", str(tmp_path / "b")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode != 0
    lines = [ln.strip() for ln in p.stderr.splitlines() if "liblmdb-dev" in ln]
    assert len(lines) == 1, p.stderr
    assert "install liblmdb-dev (Debian/Ubuntu) or lmdb-devel (Fedora)" in lines[0]


# The cffi module's cdef: the CDEF regions of the public headers that
# csrc/pystore_core.h includes, in its order (csrc/gen_ffi.py,
# docs/architecture.md "Build").
CSRC = ROOT / "csrc"


def _gen_ffi() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("gen_ffi", CSRC / "gen_ffi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _included() -> list[str]:
    return re.findall(r'^#include "([^"]+)"', (CSRC / "pystore_core.h").read_text(), re.M)


def test_the_cdef_is_every_public_header_region_in_include_order() -> None:
    included = _included()
    public = sorted(p.name for p in CSRC.glob("pystore_*.h") if p.name != "pystore_core.h")
    assert sorted(included) == public and len(set(included)) == len(included), included
    regions = []
    for name in included:
        found = re.findall(r"/\* CDEF-BEGIN \*/(.*?)/\* CDEF-END \*/",
                           (CSRC / name).read_text(), re.S)
        assert len(found) == 1, name
        regions.append(found[0])
    cdef = _gen_ffi().cdef_from_umbrella(CSRC / "pystore_core.h")
    assert cdef == "".join(regions)
    # ... and the installed module declares exactly what those regions do
    code = re.sub(r"/\*.*?\*/", "", cdef, flags=re.S)
    functions = set(re.findall(r"(\w+)\s*\(", code))
    constants = set(re.findall(r"^#define\s+(\w+)", code, re.M))
    assert functions and constants
    assert set(dir(native.lib)) == functions | constants


def test_gen_ffi_refuses_a_public_header_without_one_cdef_region(tmp_path: Path) -> None:
    gen = _gen_ffi()
    (tmp_path / "core.h").write_text('#include "a.h"\n#include "b.h"\n')
    (tmp_path / "a.h").write_text("/* CDEF-BEGIN */\nint a(void);\n/* CDEF-END */\n")
    (tmp_path / "b.h").write_text("int b(void);\n")
    with pytest.raises(SystemExit, match=r"b\.h holds 0 CDEF regions"):
        gen.cdef_from_umbrella(tmp_path / "core.h")
    (tmp_path / "b.h").write_text("/* CDEF-BEGIN */\nint b(void);\n/* CDEF-END */\n" * 2)
    with pytest.raises(SystemExit, match=r"b\.h holds 2 CDEF regions"):
        gen.cdef_from_umbrella(tmp_path / "core.h")
    (tmp_path / "b.h").write_text("/* CDEF-BEGIN */\nint b(void);\n/* CDEF-END */\n")
    assert gen.cdef_from_umbrella(tmp_path / "core.h") == "\nint a(void);\n\nint b(void);\n"


def test_editing_any_public_header_regenerates_the_cffi_source(tmp_path: Path) -> None:
    ninja = shutil.which("ninja") or shutil.which("ninja", path=str(Path(sys.executable).parent))
    if ninja is None:
        pytest.skip("no ninja")
    build = tmp_path / "b"
    p = subprocess.run([_cmake(), "-S", str(ROOT), "-B", str(build), "-G", "Ninja",
                        f"-DCMAKE_MAKE_PROGRAM={ninja}", "-DPYSTORE_PYTHON=ON",
                        "-DSKBUILD_SABI_COMPONENT=Development.SABIModule",
                        f"-DPython_EXECUTABLE={sys.executable}"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    q = subprocess.run([ninja, "-C", str(build), "-t", "query", "_native.c"],
                       capture_output=True, text=True, timeout=60)
    assert q.returncode == 0, q.stderr
    inputs = {Path(ln.strip()).name for ln in q.stdout.split("outputs:")[0].splitlines()}
    assert {"gen_ffi.py", "pystore_core.h", *_included()} <= inputs, q.stdout
