"""What a crashed supervisor leaves behind never strands the user: a helper it forked
does not keep its name, and the next command reclaims what it can."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import TOPOLOGIES, Ringctl, pid_alive, reap, ringctl_for, wait_for

TESTS = TOPOLOGIES.parents[1]


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what=f"pid {pid} died")
    reap(pid)


def test_a_forked_helper_does_not_keep_a_dead_supervisors_name(
    ringctl: Ringctl, tmp_path: Path
) -> None:
    helper_file = tmp_path / "helper.pid"
    topology = tmp_path / "forks.yaml"
    topology.write_text(
        f"version: 1\nname: forks\npython_path: [{str(TESTS)!r}]\n"
        "kernels:\n  k:\n    entry: orchestrator.crashkernels:forks_helper\n"
        f"    params: {{pid_file: {str(helper_file)!r}}}\n"
    )
    ringctl.up_detached(topology)
    pid = ringctl.pid_of("forks")
    helper = int(wait_for(lambda: helper_file.exists() and helper_file.read_text()))
    helpers = [helper]
    try:
        _kill(pid)
        assert pid_alive(helper)  # it holds every fd the supervisor had
        down = ringctl("down", "forks", "--wait", "3")
        assert down.returncode == 3, down.stderr
        assert "did not answer" not in down.stderr
        assert "its supervisor died" in down.stderr
        listed = ringctl("ps", "--json")
        assert listed.returncode == 0, listed.stderr
        assert '"forks"' not in listed.stdout
        (run,) = ringctl.json("ps", "-a")["finished"]
        assert (run["name"], run["outcome"]) == ("forks", "died")
        # The name is free again at once: the same file starts again, and comes down.
        helper_file.unlink()
        ringctl.up_detached(topology)
        helpers.append(int(wait_for(lambda: helper_file.exists() and helper_file.read_text())))
        down = ringctl("down", "forks")
        assert down.returncode == 0, down.stderr
    finally:
        for h in helpers:
            if pid_alive(h):
                _kill(h)


def _arenas(name: str, pid: int) -> list[Path]:
    return list(Path("/dev/shm").glob(f"ringctl-{name}-{pid}-*"))


def test_shared_memory_of_a_process_group_killed_with_9_is_reclaimed(
    ringctl: Ringctl, tmp_path: Path
) -> None:
    topology = tmp_path / "group.yaml"
    topology.write_text(
        f"version: 1\nname: group\npython_path: [{str(TOPOLOGIES.parents[2])!r}]\n"
        "kernels:\n"
        "  readings:\n    entry: kernels.records_pipeline:readings\n"
        "    params: {channels: 2, batch: 64, batches: null, rate: 5000}\n"
        "  ewma_z:\n    entry: kernels.records_pipeline:ewma_z\n"
        "    persistent: {ring: 1048576}\n"
        "  alert_log:\n    entry: kernels.records_pipeline:alert_log\n"
        "queues:\n  - {from: readings, to: ewma_z}\n  - {from: ewma_z, to: alert_log}\n"
    )
    ringctl.up_detached(topology)
    pid = ringctl.pid_of("group")
    wait_for(lambda: ringctl.kernel("group", "ewma_z")["state"] == "ACTIVE", timeout=60)
    (memory,) = _arenas("group", pid)
    group = os.getpgid(pid)
    assert group == pid and group != os.getpgid(0)  # its own group: a service stop kills it
    os.killpg(group, signal.SIGKILL)  # the supervisor and its worker at once
    wait_for(lambda: not pid_alive(pid), what="the supervisor died")
    reap(pid)
    assert memory.exists()  # nobody was left to remove it
    listed = ringctl("ps")
    assert listed.returncode == 0, listed.stderr
    assert not memory.exists(), "the next command did not reclaim the dead run's memory"
    # A live run's memory is never taken for a dead one's.
    ringctl.up_detached(topology)
    again = ringctl.pid_of("group")
    wait_for(lambda: ringctl.kernel("group", "ewma_z")["state"] == "ACTIVE", timeout=60)
    (live,) = _arenas("group", again)
    assert ringctl("ps").returncode == 0
    assert live.exists()
    assert ringctl("down", "group", timeout=60).returncode == 0
    assert not live.exists()
