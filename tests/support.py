"""Helpers shared by the tests (importable: pyproject sets pythonpath = tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pystore.samples import agent_pb2, common_pb2

WRITEMAP_FS = {"ext2/ext3", "tmpfs", "xfs"}  # `stat -f -c %T` names of the writemap mode's


def fs_type(path: Path) -> str:
    """The filesystem type of ``path``, as `stat -f -c %T` names it."""
    r = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True)
    return r.stdout.strip()


def mount_fs(args: list[str], mnt: Path) -> None:
    """``mount ARGS MNT`` (MNT created); the test is skipped without root or
    when this machine cannot mount it.  Undo with ``umount_fs``."""
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    mnt.mkdir()
    r = subprocess.run(["mount", *args, str(mnt)], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.skip(f"cannot mount here: {r.stderr.strip()}")


def umount_fs(mnt: Path) -> None:
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=60)


def fill_fs(fs: Path, sizes: tuple[int, ...] = (1 << 16, 4096, 1)) -> None:
    """Fill the filesystem of directory ``fs`` with a file ``filler``, in
    writes of each size in turn until one fails (down to 1 byte: to the
    last block)."""
    fd = os.open(fs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in sizes:
            try:
                while os.write(fd, b"\0" * size) == size:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)


def mount_image(tmp: Path, mkfs: list[str], size: int, mnt: Path) -> None:
    """A fresh filesystem made by ``mkfs`` (+ the image path) on a sparse
    ``size``-byte image in ``tmp``, loop-mounted at MNT (skipped when the
    mkfs tool is missing or this machine cannot mount it).  Undo with
    ``umount_fs``."""
    if shutil.which(mkfs[0]) is None:
        pytest.skip(f"{mkfs[0]} is not installed")
    img = tmp / f"{mkfs[0]}.img"
    with open(img, "wb") as f:
        f.truncate(size)
    r = subprocess.run([*mkfs, str(img)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.skip(f"{mkfs[0]} failed: {r.stderr.strip()}")
    mount_fs(["-o", "loop", str(img)], mnt)


def make_agent(i: int, *, org: str = "org-1", project: str = "proj-1") -> agent_pb2.Agent:
    """A realistic Agent carrying tenancy fields at several depths."""
    agent = agent_pb2.Agent(
        metadata=common_pb2.ResourceMetadata(
            id=f"agt-{i:06d}", name=f"Agent {i}", slug=f"agent-{i}",
            org_id=org, project_id=project, labels={"team": "core", "n": str(i)},
        ),
        instructions="Be helpful. " * 20,
        model="local-llm",
        temperature=0.5,
    )
    agent.tools.add(name="search", description="searches", parameters={"q": "str"})
    agent.skills.add(kind="Skill", id=f"sk-{i}", org_id=org, project_id=project)
    agent.environments["dev"].CopyFrom(
        common_pb2.ResourceRef(kind="Environment", id="env-1", org_id=org, project_id=project)
    )
    return agent


def unprivileged_argv(*, fowner: bool = False) -> list[str]:
    """argv prefix that runs a command as a user whom file modes bind: none
    for a non-root user; for root, setpriv(1) with CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH (and with ``fowner``, CAP_FOWNER: no chmod of
    another's file) dropped.  Skips the test when root has no setpriv."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root without setpriv(1): cannot run as an unprivileged user")
    caps = "-dac_override,-dac_read_search" + (",-fowner" if fowner else "")
    return ["setpriv", f"--bounding-set={caps}"]
