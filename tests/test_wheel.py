"""The manylinux wheel: one cp311-abi3 wheel, self-contained, with LMDB built in.

Runs only when ``WHEEL`` names a wheel (``make wheel-check`` and ``make
wheel-matrix`` set it): the wheel is installed into a fresh venv of the
running interpreter, and the installed package must load no liblmdb at all
(LMDB is compiled into the module), never the system's, and must run the
demo with the system library made unreadable (a private mount namespace
binds /dev/null over it, where the machine allows that).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

WHEEL = os.environ.get("WHEEL", "")

pytestmark = pytest.mark.skipif(
    not WHEEL, reason="set WHEEL=dist/pystore-...whl (make wheel-check does)"
)

# What the installed package maps: every file with "lmdb" in its name.
MAPPED_LMDB = (
    "import pystore._lmdb._native as n\n"
    "print(n.__file__)\n"
    "seen = {l.split()[-1] for l in open('/proc/self/maps') if 'lmdb' in l}\n"
    "print('\\n'.join(sorted(seen)))\n"
)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("wheel") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(d)], check=True, env=clean_env())
    subprocess.run([str(d / "bin" / "python"), "-m", "pip", "install", "-q", WHEEL],
                   check=True, env=clean_env(), timeout=600)
    return d


def test_wheel_is_one_abi3_manylinux_wheel_for_an_old_glibc() -> None:
    m = re.search(r"-cp311-abi3-(?:manylinux\w*\.)?manylinux_2_(\d+)_x86_64\.whl$", WHEEL)
    assert m, WHEEL
    assert int(m.group(1)) <= 28, f"glibc floor 2.{m.group(1)} is newer than 2.28"
    auditwheel = os.environ.get("AUDITWHEEL") or shutil.which("auditwheel")
    if auditwheel:  # make wheel-check passes it; the tag must be what it proves
        shown = subprocess.run([auditwheel, "show", WHEEL], capture_output=True, text=True,
                               check=True).stdout
        assert f'"manylinux_2_{m.group(1)}_x86_64"' in " ".join(shown.split()), shown


def test_wheel_holds_module_licences_samples_and_stubs() -> None:
    names = zipfile.ZipFile(WHEEL).namelist()
    assert "pystore/_lmdb/_native.abi3.so" in names
    assert not any(".libs/" in n for n in names), "nothing to bundle: LMDB is in the module"
    # LMDB's licence beside the module that contains LMDB, and in .dist-info.
    assert "pystore/_lmdb/LMDB-OpenLDAP.txt" in names
    lic = [n for n in names if ".dist-info/licenses/" in n]
    assert any(n.endswith("/LICENSE") for n in lic) and any(
        n.endswith("/LMDB-OpenLDAP.txt") for n in lic), lic
    text = zipfile.ZipFile(WHEEL).read("pystore/_lmdb/LMDB-OpenLDAP.txt").decode()
    assert "The OpenLDAP Public License" in text and "Version 2.8" in text
    assert "pystore/py.typed" in names
    # the console script's entry, beside the package (launcher/_pystore_cli.py)
    assert "_pystore_cli.py" in names
    ep = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "pystore = _pystore_cli:main" in zipfile.ZipFile(WHEEL).read(ep).decode()
    pb2 = {n for n in names if n.startswith("pystore/samples/") and n.endswith("_pb2.py")}
    assert pb2 and {n + "i" for n in pb2} <= set(names)
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    head = zipfile.ZipFile(WHEEL).read(meta).decode()
    assert "Name: pystore-lmdb" in head and "License-Expression: MIT" in head


def test_fresh_venv_loads_no_shared_lmdb(venv: Path, tmp_path: Path) -> None:
    py = str(venv / "bin" / "python")
    out = subprocess.run([py, "-c", MAPPED_LMDB], capture_output=True, text=True,
                         check=True, env=clean_env(), cwd=tmp_path).stdout.split()
    module, mapped = out[0], out[1:]
    assert module.startswith(str(venv / "lib")) and module.endswith("_native.abi3.so")
    assert mapped == [module], mapped  # no liblmdb*.so of any origin
    demo = subprocess.run([str(venv / "bin" / "pystore"), "demo", str(tmp_path / "demo")],
                          capture_output=True, text=True, env=clean_env(), cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "closed the store" in demo.stdout
    stats = subprocess.run([str(venv / "bin" / "pystore"), "kinds", str(tmp_path / "demo")],
                           capture_output=True, text=True, env=clean_env(), cwd=tmp_path)
    assert stats.stdout.split() == ["Agent", "Session", "Workflow"]


def _system_lmdb() -> list[str]:
    """Real paths of the system's liblmdb, if it has one."""
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        return []
    found = re.findall(r"liblmdb\.so[.0-9]*\s.*=>\s*(\S+)", listing)
    return sorted({os.path.realpath(p) for p in found})


def test_runs_with_the_system_lmdb_hidden(venv: Path, tmp_path: Path) -> None:
    libs = _system_lmdb()
    if not libs:  # already a machine without liblmdb: the plain run proves it
        test_fresh_venv_loads_no_shared_lmdb(venv, tmp_path)
        return
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to hide the system liblmdb")
    hide = " && ".join(f"mount --bind /dev/null {p}" for p in libs)
    probe = ("import ctypes\ntry:\n    ctypes.CDLL('liblmdb.so.0')\nexcept OSError:\n"
             "    print('hidden')\nelse:\n    print('visible')\n")
    script = (f"{hide} && {sys.executable} -c \"$PROBE\" && "
              f"{venv}/bin/pystore demo {tmp_path / 'demo'}")
    env = clean_env() | {"PROBE": probe}
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    if p.returncode != 0 and ("Operation not permitted" in p.stderr
                              or "permission denied" in p.stderr.lower()):
        pytest.skip(f"cannot make a mount namespace here: {p.stderr.strip()}")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "hidden", "the system liblmdb was still loadable"
    assert "closed the store" in p.stdout
