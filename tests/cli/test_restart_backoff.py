"""``ringctl restart`` and ``scale`` of a kernel that waits out its restart backoff."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import TOPOLOGIES, Ringctl, ringctl_for, wait_for

#: Kernel `a` fails every 300 messages and then waits 20 s (then 30 s) to restart.
BACKOFF = TOPOLOGIES / "backoff.yaml"


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def waiting(cli: Ringctl) -> dict[str, Any] | None:
    a = cli.kernel("backoff", "a")
    return a if a["restart_in_s"] is not None and a["restart_in_s"] > 5 else None


def test_restart_of_a_kernel_in_backoff_restarts_it_now(ringctl: Ringctl) -> None:
    ringctl.up_detached(BACKOFF)
    before = wait_for(lambda: waiting(ringctl), what="a waits for its restart")
    t0 = time.monotonic()
    result = ringctl("restart", "backoff", "a")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "restarted: a\n"
    assert time.monotonic() - t0 < 10  # not after the 20 s backoff
    after = ringctl.kernel("backoff", "a")
    assert after["restarts"] == before["restarts"] + 1  # the pending restart, not a second
    texts = [e["text"] for e in ringctl.status("backoff")["events"]]
    assert f"a restarted on request; restart {after['restarts']}" in texts
    down = ringctl("down", "backoff", "--timeout", "5")
    assert down.returncode == 0, down.stderr


def test_scale_of_a_kernel_in_backoff_says_why_not(ringctl: Ringctl) -> None:
    ringctl.up_detached(BACKOFF)
    wait_for(lambda: waiting(ringctl), what="a waits for its restart")
    result = ringctl("scale", "backoff", "a=2")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: cannot scale 'a' while it waits for its restart (in ")
    assert lines[1] == "hint: ringctl restart backoff a restarts it now; then scale it"
