"""Shared fixtures: real stores in real temporary directories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import pystore


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_path: Path) -> Iterator[pystore.Store]:
    s = pystore.Store(store_path, sync=False)
    try:
        yield s
    finally:
        s.close()
