"""A supervisor killed with -9 never writes how its run ended: whoever finds what it
left says so, and ``ringctl ps -a`` keeps it, as ``died`` with exit code 1."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import TOPOLOGIES, Ringctl, pid_alive, reap, ringctl_for, wait_for

ENDLESS = TOPOLOGIES / "endless.yaml"


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def kill_after(cli: Ringctl, seconds: float) -> int:
    """Start ENDLESS detached, let it run ``seconds``, kill its supervisor with -9."""
    cli.up_detached(ENDLESS)
    pid = cli.pid_of("endless")
    wait_for(lambda: cli.status("endless")["uptime_s"] >= seconds, what=f"{seconds}s of run")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="the supervisor died")
    reap(pid)
    return pid


def finished(cli: Ringctl) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = cli.json("ps", "-a")["finished"]
    return runs


def test_ps_says_the_supervisor_died_and_ps_a_keeps_the_run(ringctl: Ringctl) -> None:
    pid = kill_after(ringctl, 2.5)
    listed = ringctl("ps")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == (
        "warning: endless: its supervisor died before the run ended (ringctl ps -a lists it)\n"
    )
    assert listed.stdout == "no topology is running (start one with: ringctl up FILE)\n"
    (run,) = finished(ringctl)
    assert run["name"] == "endless" and run["outcome"] == "died"
    assert run["exit_code"] == 1  # what it had in flight was never accounted for
    assert f"its supervisor (pid {pid}) died before the run ended" in run["reason"]
    # It ran 2.5 s or more: the end is when it was last seen alive (to the second), not
    # when it started.
    assert 1.4 <= run["duration_s"] <= 10.0
    assert ringctl("ps").stderr == ""  # said once; the history keeps it
    table = ringctl("ps", "-a").stdout
    assert "endless  died        1" in table


def test_an_up_of_the_same_name_records_the_dead_run_first(ringctl: Ringctl) -> None:
    kill_after(ringctl, 0.5)
    again = ringctl("up", ENDLESS, "--duration", "0.5", "--no-dashboard")
    assert again.returncode == 0, again.stderr
    assert [(r["outcome"], r["exit_code"]) for r in finished(ringctl)] == [
        ("stopped", 0),
        ("died", 1),
    ]


def test_ps_name_after_kill_9_points_at_the_history(ringctl: Ringctl) -> None:
    kill_after(ringctl, 0.5)
    result = ringctl("ps", "endless")
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "error: topology 'endless' is not running (its supervisor died; cleaned up its stale "
        "files)",
        "hint: ringctl ps -a shows how its run ended; ringctl logs endless what its kernels "
        "said last",
    ]
    assert [r["outcome"] for r in finished(ringctl)] == ["died"]


def test_logs_follow_ends_and_says_the_supervisor_died(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    pid = ringctl.pid_of("endless")
    follower = ringctl.spawn("logs", "endless", "-f")
    wait_for(lambda: ringctl.status("endless")["uptime_s"] >= 0.5, what="a short run")
    os.kill(pid, signal.SIGKILL)
    _out, err = follower.communicate(timeout=20)
    reap(pid)
    assert follower.returncode == 0, err
    assert err.startswith(f"warning: endless: its supervisor (pid {pid}) died before the run")
