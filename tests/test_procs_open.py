"""Opening a store while another process creates it.  A read-only open that
lands after the creator made data.mdb but before its first transaction
committed found an LMDB environment without pystore's tables and reported
CorruptionError ("not a pystore store": restore from a backup) for a store
that was fine; it is the same "no store yet" StoreError as before data.mdb
exists.  A writable open waits for the creator and opens the store."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pystore import CorruptionError, Store, StoreError

CREATE = (
    "import sys\n"
    "from pystore import Store\n"
    "from pystore.samples.agent_pb2 import Agent\n"
    "with Store(sys.argv[1]) as s:\n"
    "    s.save_resource('A', 'x', Agent())\n"
)


def test_an_lmdb_environment_without_tables_is_no_store_yet(tmp_path: Path) -> None:
    # What a reader sees between the creator's mdb_env_open and its first
    # commit: an LMDB environment whose main database is empty (made here
    # by LMDB's own mdb_load from an empty dump).
    path = tmp_path / "s"
    path.mkdir(mode=0o700)
    if shutil.which("mdb_load") is None:
        pytest.skip("needs mdb_load (lmdb-utils)")
    subprocess.run(["mdb_load", str(path)], check=True, text=True, input=(
        "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\nDATA=END\n"))
    for f in ("data.mdb", "lock.mdb"):
        (path / f).chmod(0o600)
    try:
        Store(path, readonly=True)
    except CorruptionError as exc:
        raise AssertionError(f"an empty environment read as damaged: {exc}") from None
    except StoreError as exc:
        assert "no store" in str(exc)
    else:
        raise AssertionError("a read-only open made a store")
    with Store(path) as s:  # a writable open makes it a store
        assert s.count("A") == 0
    with Store(path, readonly=True) as ro:
        assert ro.revision() == 0


def test_readers_racing_the_creator_never_see_corruption(tmp_path: Path) -> None:
    opened = 0
    for k in range(12):
        path = tmp_path / f"s{k}"
        p = subprocess.Popen([sys.executable, "-c", CREATE, str(path)])
        deadline = time.monotonic() + 30
        while p.poll() is None and time.monotonic() < deadline:
            try:
                with Store(path, readonly=True) as s:
                    s.revision()
                opened += 1
            except CorruptionError as exc:
                p.kill()
                raise AssertionError(f"round {k}: {exc}") from None
            except StoreError as exc:
                assert "no store" in str(exc), exc
        assert p.wait(timeout=30) == 0
        with Store(path, readonly=True) as s:
            assert s.count("A") == 1
    assert opened  # some opens landed while the creator ran
