"""Every way a run can end is a reported end: a kernel that leaves the process, a down
during a slow launch, a forced stop while a kernel blocks the event loop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import REPO, TOPOLOGIES, Ringctl, ringctl_for, wait_for

QUITS = TOPOLOGIES / "quits.yaml"
SLOWLAUNCH = TOPOLOGIES / "slowlaunch.yaml"
BLOCKING = TOPOLOGIES / "blocking.yaml"


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def _history(ringctl: Ringctl, name: str) -> dict[str, object]:
    runs = [r for r in ringctl.json("ps", "-a", "--json")["finished"] if r["name"] == name]
    assert runs, f"no finished run of {name}"
    entry: dict[str, object] = max(runs, key=lambda r: float(r["ended"]))
    return entry


def test_a_kernel_that_calls_sys_exit_fails_the_run(ringctl: Ringctl) -> None:
    result = ringctl("up", "--no-dashboard", QUITS)
    assert result.returncode == 1, result.stderr
    assert "error: kernel 'sink' failed: SystemExit: 0" in result.stderr
    # The summary and the accounting line are printed: 100 taken, the rest lost.
    assert "accounting: accepted 300 = delivered 100 + dropped 0 + lost 200" in result.stderr
    entry = _history(ringctl, "quits")
    assert (entry["outcome"], entry["exit_code"]) == ("failed", 1)
    assert "SystemExit: 0" in str(entry["reason"])
    smoke = ringctl("smoke", QUITS)
    assert smoke.returncode == 1, smoke.stdout + smoke.stderr
    assert "SystemExit: 0" in smoke.stdout + smoke.stderr


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt", "GeneratorExit"])
def test_the_library_returns_a_report_when_a_kernel_leaves(kind: str) -> None:
    # In a child interpreter: a kernel's SystemExit must not end the caller's process.
    code = (
        "import ringctl\n"
        f"t = ringctl.load({str(QUITS)!r}, env={{'QUIT_KIND': {kind!r}}})\n"
        "report = t.run()\n"
        "print('REPORT', report.exit_code, report.failure)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert f"REPORT 1 kernel 'sink' failed: {kind}" in result.stdout, result.stdout


def test_down_during_a_slow_launch_stops_it(ringctl: Ringctl) -> None:
    up = ringctl.spawn("up", "-d", SLOWLAUNCH)  # comes back once the topology is up
    wait_for(lambda: ringctl.state.joinpath("slowlaunch.sock").exists(), what="the socket")
    ringctl.note_pids()
    wait_for(lambda: ringctl.status("slowlaunch")["state"] == "starting", what="the launch")
    down = ringctl("down", "slowlaunch", "--json")
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["state"] == "stopped"
    _out, err = up.communicate(timeout=60)
    assert up.returncode == 0, err
    assert "slowlaunch was stopped during launch" in err
    entry = _history(ringctl, "slowlaunch")
    assert (entry["outcome"], entry["exit_code"]) == ("stopped", 0)
    assert "stopped during launch" in str(entry["reason"])
    assert entry["launch_stopped"] is True
    log = (ringctl.state / "slowlaunch.log").read_text()
    assert "Traceback" not in log
    assert "stopped during launch; rolled back" in log
    assert "accounting: accepted 0 = delivered 0" in log


def _backlog(ringctl: Ringctl) -> bool:
    """At least two messages wait for ``slow``: in its inbox, or taken in the batch its
    ``messages()`` hands out but not yet processed (its ``received`` metric). The figures
    are only published between two batches (each holds the loop for 2 s a message), and
    whether the source had sent by then is up to the loop's order: it may take a while."""
    try:
        k = ringctl.kernel("blocking", "slow")
        taken = int(k["messages_in"]) - int(k["metrics"].get("received", 0))
        return int(k["inbox_depth"]) + taken >= 2
    except (AssertionError, StopIteration, KeyError, TypeError):
        return False


def test_down_timeout_bounds_a_stop_while_a_kernel_blocks_the_loop(ringctl: Ringctl) -> None:
    ringctl.up_detached(BLOCKING)
    wait_for(lambda: _backlog(ringctl), timeout=60, what="a backlog")
    t0 = time.monotonic()
    down = ringctl("down", "blocking", "--timeout", "3", "--json")
    took = time.monotonic() - t0
    # T, plus the one message in hand (2 s of time.sleep), plus a short grace.
    assert took < 3 + 2 + 4, f"down --timeout 3 took {took:.1f} s"
    assert down.returncode != 0, down.stderr
    report = json.loads(down.stdout)
    assert report["graceful"] is False
    assert report["left"].get("slow", 0) >= 1  # what was queued is counted, as left
    entry = _history(ringctl, "blocking")
    assert entry["exit_code"] != 0
    assert "kernel `slow`" in str(entry["reason"])


def test_a_second_ctrl_c_ends_the_run_while_a_kernel_blocks_the_loop(ringctl: Ringctl) -> None:
    up = ringctl.spawn("up", "--no-dashboard", BLOCKING)
    wait_for(lambda: ringctl.state.joinpath("blocking.sock").exists(), what="the socket")
    wait_for(lambda: _backlog(ringctl), timeout=60, what="a backlog")
    up.send_signal(signal.SIGINT)
    time.sleep(0.3)
    t0 = time.monotonic()
    up.send_signal(signal.SIGINT)
    _out, err = up.communicate(timeout=60)
    took = time.monotonic() - t0
    assert took < 2 + 4, f"the forced stop took {took:.1f} s"
    assert up.returncode not in (0, 130), err
    assert "second interrupt: forcing the stop" in err, err
    assert "kernel `slow`" in err
    assert "left" in err.split("accounting:")[-1]
