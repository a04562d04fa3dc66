"""Mistakes in a kernel that Python only warns about are shown where the user looks."""

from __future__ import annotations

import shutil
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import Ringctl, ringctl_for, wait_for

FORGOT = """
import asyncio


async def source(ctx):
    for i in range(3):
        ctx.send(i)
    while not ctx.should_terminate and ctx.params.get("stay"):
        await asyncio.sleep(0.05)


async def sink(ctx):
    while not ctx.should_terminate:
        try:
            await ctx.receive(timeout=0.05)
        except TimeoutError:
            pass
"""


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def pipeline(tmp_path: Path, name: str, stay: bool) -> Path:
    (tmp_path / "forgot.py").write_text(FORGOT)
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            name: {name}
            kernels:
              source: {{entry: "forgot:source", params: {{stay: {str(stay).lower()}}}}}
              sink: {{entry: "forgot:sink"}}
            queues:
              - {{from: source, to: sink}}
            """
        )
    )
    return path


@pytest.fixture
def short_path() -> Iterator[Path]:
    """A folder whose path fits the run summary's column (pytest's own may not, under xdist)."""
    folder = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_send_never_awaited_is_an_event_and_an_error_of_the_kernel(
    short_path: Path, ringctl: Ringctl
) -> None:
    where = f"{short_path / 'forgot.py'}:7: coroutine 'KernelContext.send' was never awaited"
    result = ringctl("up", pipeline(short_path, "forgot", stay=False), "--no-dashboard")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"event warning: source: {where}: add `await` before the call" in result.stdout
    summary = next(x for x in result.stderr.splitlines() if x.strip().startswith("source "))
    assert "errors 1" in summary and f"last_error={short_path / 'forgot.py'}:7" in summary, summary
    logs = ringctl("logs", "forgot", "source")
    assert where in logs.stdout, logs.stdout + logs.stderr


def test_ps_and_the_dashboard_show_it_while_the_run_goes_on(
    tmp_path: Path, ringctl: Ringctl
) -> None:
    where = f"{tmp_path / 'forgot.py'}:7: coroutine 'KernelContext.send' was never awaited"
    name = ringctl.up_detached(pipeline(tmp_path, "stays", stay=True))
    kernel = wait_for(lambda: (k := ringctl.kernel(name, "source"))["errors"] and k)
    assert kernel["metrics"]["last_error"].startswith(where)
    top = ringctl("top", name, "--once", "--width", "160")
    assert "last event: [" in top.stdout, top.stdout
    assert "warning: source: " in top.stdout and "'KernelContext.send' was" in top.stdout
    assert ringctl("down", name).returncode == 0
