"""A tiny progress bar for the CLI: drawn on a terminal, silent otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

_WIDTH = 30
_EVERY = 0.1  # seconds between redraws


class Progress:
    """``update(done)`` redraws at most every 0.1 s; ``close()`` clears the line.

    Draws only when ``stream`` is a terminal, so piped or redirected output
    (and CI logs) stay clean.  ``total`` 0 means unknown: a counter is shown.
    """

    def __init__(
        self, label: str, total: int, unit: str = "", stream: TextIO | None = None,
        show: bool = True,
    ):
        self.stream = sys.stderr if stream is None else stream
        try:
            self.enabled = show and self.stream.isatty()
        except (AttributeError, ValueError):
            self.enabled = False
        self.label = label
        self.total = max(0, total)
        self.unit = unit
        self.done = 0
        self._last = 0.0
        self._drawn = False

    def update(self, done: int) -> None:
        self.done = done
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < _EVERY:
            return
        self._last = now
        self._draw()

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)

    def _draw(self) -> None:
        if self.total:
            frac = min(1.0, self.done / self.total)
            filled = int(frac * _WIDTH)
            bar = "#" * filled + "." * (_WIDTH - filled)
            text = f"{self.label} [{bar}] {frac * 100:5.1f}% {self.done}/{self.total}{self.unit}"
        else:
            text = f"{self.label} {self.done}{self.unit}"
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        """Erase the bar (before printing a line); the next update redraws it."""
        self.close()
        self._last = 0.0

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self._drawn = False

    def __enter__(self) -> Progress:
        if self.enabled:
            self._draw()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
