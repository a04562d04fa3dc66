"""``ringctl up FILE 2>&1 | cat``: the run's own lines and the kernels' output in order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHATTY = """
async def talk(ctx):
    for i in range(3):
        print("kernel says", i)
        await ctx.send(i)


async def sink(ctx):
    async for batch in ctx.batches(8):
        print("sink got", len(batch))
"""


def test_phase_lines_come_before_what_the_kernels_print(tmp_path: Path) -> None:
    (tmp_path / "chat.py").write_text(CHATTY)
    path = tmp_path / "chat.yaml"
    path.write_text(
        "version: 1\nname: chat\nkernels:\n  talk: {entry: 'chat:talk'}\n"
        "  sink: {entry: 'chat:sink'}\nqueues:\n  - {from: talk, to: sink}\n"
    )
    # One pipe for both streams, as `2>&1 | cat` makes it.
    result = subprocess.run(
        [sys.executable, "-m", "ringctl.cli", "up", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
        cwd=tmp_path, env={**os.environ, "RINGCTL_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()

    def at(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    assert at("phase 1: launched") < at("phase 2: activated") < at("kernel says 0")
    assert at("kernel says 2") < at("sink got") < at("chat completed")
