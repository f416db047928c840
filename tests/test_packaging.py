"""Packaging: distribution name, licences in the install, the limited API, the
message a source build without LMDB gives, and `import pystore` from the
checkout root (the installed wheel itself: test_wheel.py)."""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
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
