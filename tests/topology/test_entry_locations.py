"""An error raised while a kernel module is imported points at the author's line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLAIN_DEF = """\
from ringctl import ring_kernel


@ring_kernel(kernel_id="k")
def k(ctx):
    pass
"""


def test_a_plain_def_under_ring_kernel_points_at_the_authors_file(tmp_path: Path) -> None:
    (tmp_path / "pd.py").write_text(PLAIN_DEF)
    path = tmp_path / "t.yaml"
    path.write_text("version: 1\nname: pd\nkernels:\n  k: {entry: 'pd:k'}\n")
    for command in (["validate", "--import"], ["up", "--no-dashboard"]):
        result = subprocess.run(
            [sys.executable, "-m", "ringctl.cli", *command, str(path)],
            capture_output=True, text=True, cwd=tmp_path, timeout=60,
            env={**os.environ, "RINGCTL_STATE_DIR": str(tmp_path / "state")},
        )  # fmt: skip
        assert result.returncode == 2, result.stdout + result.stderr
        assert "got the plain function 'k'; did you forget 'async' before 'def'?" in (result.stderr)
        assert "hint: the error is raised at pd.py:4" in result.stderr
        assert "ring.py" not in result.stderr


BARE = """\
from ringctl import ring_kernel


@ring_kernel
async def source(ctx):
    for i in range(3):
        await ctx.send(i)


@ring_kernel
async def sink(ctx):
    async for batch in ctx.batches(8):
        ctx.metrics["got"] = ctx.metrics.get("got", 0) + len(batch)
"""


def test_ring_kernel_without_parentheses_declares_the_kernel(tmp_path: Path) -> None:
    (tmp_path / "bare.py").write_text(BARE)
    path = tmp_path / "t.yaml"
    path.write_text(
        "version: 1\nname: bare\nkernels:\n  source: {entry: 'bare:source'}\n"
        "  sink: {entry: 'bare:sink'}\nqueues:\n  - {from: source, to: sink}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "ringctl.cli", "up", "--no-dashboard", str(path)],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
        env={**os.environ, "RINGCTL_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "got=3" in result.stderr
