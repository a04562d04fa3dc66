"""``ringctl ps NAME`` prints a kernel's metrics whole where there is room for them."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import Ringctl, ringctl_for

BUSY = """
import asyncio


async def busy(ctx):
    ctx.metrics.update({f"figure_{i:02d}": i * 1000 + 7 for i in range(10)})
    while not ctx.should_terminate:
        await asyncio.sleep(0.05)
"""
WHOLE = " ".join(f"figure_{i:02d}={i * 1000 + 7}" for i in range(10))  # 138 characters


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def in_a_terminal(cli: Ringctl, columns: int, *args: str) -> str:
    """What ``ringctl ARGS`` shows in a terminal ``columns`` wide (colours taken out)."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        cli.argv(*args),
        stdin=child, stdout=child, stderr=child, close_fds=True,
        env={**cli.env, "COLUMNS": str(columns), "LINES": "50", "TERM": "xterm"},
    )  # fmt: skip
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(main)
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", b"".join(chunks).decode()).replace("\r", "")


def test_metrics_are_whole_in_a_pipe_and_in_a_wide_terminal(
    tmp_path: Path, ringctl: Ringctl
) -> None:
    (tmp_path / "many.py").write_text(BUSY)
    path = tmp_path / "many.yaml"
    path.write_text("version: 1\nname: many\nkernels:\n  busy: {entry: 'many:busy'}\n")
    assert ringctl.up_detached(path) == "many"
    piped = ringctl("ps", "many")
    assert piped.returncode == 0, piped.stderr
    row = next(x for x in piped.stdout.splitlines() if x.startswith("busy"))
    assert row.rstrip().endswith(WHOLE), row

    wide = in_a_terminal(ringctl, 250, "ps", "many")
    row = next(x for x in wide.splitlines() if x.startswith("busy"))
    assert row.rstrip().endswith(WHOLE), wide

    narrow = in_a_terminal(ringctl, 120, "ps", "many")
    row = next(x for x in narrow.splitlines() if x.startswith("busy"))
    assert len(row.rstrip()) <= 120 and row.rstrip().endswith("…"), narrow
    assert "figure_00=7 figure_01=1007" in row and "RESTARTS" in narrow
    assert ringctl("down", "many").returncode == 0
