"""The ``pystore`` command line and its tools (dump, load, verify, progress, demo)."""

from .main import main

__all__ = ["main"]
