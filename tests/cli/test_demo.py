"""``make demo``'s run lasts long enough to watch; the same file stays quick for CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "topologies" / "quickstart.yaml"


def up(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "ringctl.cli", "up", str(QUICKSTART), "--no-dashboard",
         "--interval", "0.5"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={**os.environ, "RINGCTL_STATE_DIR": str(tmp_path), **env},
    )  # fmt: skip
    return result, time.monotonic() - started


def test_the_demo_is_paced_and_shows_rates(tmp_path: Path) -> None:
    assert "QUICKSTART_RATE=$${QUICKSTART_RATE:-30}" in (REPO / "Makefile").read_text()
    result, seconds = up(tmp_path, QUICKSTART_RATE="40")
    assert result.returncode == 0, result.stdout + result.stderr
    assert seconds >= 100 / 40  # 100 batches at 40 a second
    rates = [int(r) for r in re.findall(r"source (\d+)/s busy", result.stdout)]
    assert rates and max(rates) > 0, result.stdout
    assert "total=333328333350000" in result.stderr  # the same answer, paced


def test_unpaced_it_is_the_quick_ci_run(tmp_path: Path) -> None:
    result, _ = up(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "total=333328333350000" in result.stderr
