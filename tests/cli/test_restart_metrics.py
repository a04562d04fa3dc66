"""``ringctl restart`` keeps a kernel's metrics: the new instance goes on from them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import Ringctl, ringctl_for, wait_for

KERNELS = """
import asyncio


async def ticks(ctx):
    i = 0
    while not ctx.should_terminate:
        await ctx.send(i)
        i += 1
        await asyncio.sleep(0.002)


async def tally(ctx):
    async for batch in ctx.batches(64):
        ctx.metrics["seen"] = ctx.metrics.get("seen", 0) + len(batch)
"""


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def test_a_restarted_kernel_goes_on_from_its_metrics(tmp_path: Path, ringctl: Ringctl) -> None:
    (tmp_path / "tallies.py").write_text(KERNELS)
    path = tmp_path / "tally.yaml"
    path.write_text(
        "version: 1\nname: tally\nkernels:\n  ticks: {entry: 'tallies:ticks'}\n"
        "  tally: {entry: 'tallies:tally'}\nqueues:\n  - {from: ticks, to: tally}\n"
    )
    assert ringctl.up_detached(path) == "tally"

    def seen() -> int:
        return int(ringctl.kernel("tally", "tally")["metrics"].get("seen", 0))

    wait_for(lambda: seen() > 200, timeout=30, what="messages counted")
    before = seen()
    restart = ringctl("restart", "tally", "tally")
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert ringctl.kernel("tally", "tally")["restarts"] == 1
    assert seen() >= before  # not back to 0
    wait_for(lambda: seen() > before + 100, what="counting on after the restart")
    assert ringctl("down", "tally").returncode == 0
