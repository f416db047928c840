"""The typed README tour (examples/tour.py) runs as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOUR = Path(__file__).resolve().parents[1] / "examples" / "tour.py"


def test_tour_runs(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, str(TOUR), str(tmp_path)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.rstrip().endswith("tour done")
    assert "resource not found: Agent/agt-1" in p.stdout
