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
    listed = ringctl("ps")  # nobody was left to remove it: the next command does
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


def test_logs_follow_shows_every_line_once_in_order_across_a_rotation(
    ringctl: Ringctl, tmp_path: Path
) -> None:
    count = 20_000  # 1,000-byte lines: over 16 MiB of log, so it rotates once
    topology = tmp_path / "prints.yaml"
    topology.write_text(
        f"version: 1\nname: prints\npython_path: [{str(TESTS)!r}]\n"
        "kernels:\n  p:\n    entry: orchestrator.crashkernels:printer\n"
        f"    params: {{count: {count}, width: 1000, rate: 4000}}\n"
    )
    ringctl.up_detached(topology)
    ringctl.pid_of("prints")
    log = ringctl.state / "prints.kernels.jsonl"
    # Start following mid-run: a backlog to print while the kernel goes on printing.
    wait_for(lambda: log.exists() and log.stat().st_size > 2_000_000, timeout=30)
    follower = ringctl.spawn("logs", "prints", "-f")
    out, err = follower.communicate(timeout=120)
    assert follower.returncode == 0, err
    assert (ringctl.state / "prints.kernels.jsonl.1").exists()  # it did rotate
    numbers = [int(line.split(" | ", 1)[1][:8]) for line in out.splitlines()]
    assert numbers == list(range(1, count + 1))
    assert "rotated away" not in err


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_stalled_tap_reader_does_not_pin_the_supervisors_memory(
    ringctl: Ringctl, tmp_path: Path
) -> None:
    # Faster than a tap shows them (it reads 400 a second at most): it must drop some.
    count, start = 2000, tmp_path / "start"
    topology = tmp_path / "big.yaml"
    topology.write_text(
        f"version: 1\nname: big\npython_path: [{str(TESTS)!r}]\n"
        "defaults:\n  queue: {capacity: 4}\n"
        "kernels:\n  src:\n    entry: orchestrator.crashkernels:big_source\n"
        f"    params: {{count: {count}, mib: 1, start_file: {str(start)!r}}}\n"
        "  sink:\n    entry: orchestrator.crashkernels:counter\n"
        "queues:\n  - {from: src, to: sink}\n"
    )
    ringctl.up_detached(topology)
    pid = ringctl.pid_of("big")
    before = _peak_rss_mib(pid)
    reader = ringctl.spawn("tap", "big", "src")
    assert reader.stderr is not None
    assert "still waiting" in reader.stderr.readline()  # attached, nothing sent yet
    os.kill(reader.pid, signal.SIGSTOP)  # a reader that never reads again
    try:
        start.touch()
        wait_for(
            lambda: ringctl.kernel("big", "sink")["messages_in"] >= count,
            timeout=60,
            what="every array through the pipeline",
        )
        peak = _peak_rss_mib(pid)
        # The tap keeps at most 8 MiB of messages; the queue and the arrays in flight
        # a few more. Keeping the newest 256 whole messages would be 256 MiB.
        assert peak - before < 100, f"supervisor peak RSS grew {peak - before:.0f} MiB"
        status = ringctl.status("big")
        src, sink = (next(k for k in status["kernels"] if k["id"] == i) for i in ("src", "sink"))
        assert src["messages_out"] == count and sink["messages_in"] == count
        assert src["drops"] == sink["drops"] == sink["lost"] == 0
        assert sink["metrics"]["received"] == count
    finally:
        os.kill(reader.pid, signal.SIGCONT)
    assert ringctl("down", "big", timeout=60).returncode == 0
