"""``ringctl up / ps / pause / resume / down / top`` end to end: real processes, real sockets.

Every test runs ``ringctl`` as a subprocess in its own state directory (the ``ringctl``
fixture); whatever supervisor a test starts is downed, or killed, when it ends.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import (
    TOPOLOGIES,
    Ringctl,
    pid_alive,
    reap,
    ringctl_for,
    wait_for,
)

from ringctl.control.client import ControlClient
from ringctl.control.paths import StateDir
from ringctl.exceptions import RingctlError

ENDLESS = TOPOLOGIES / "endless.yaml"
BACKLOG = TOPOLOGIES / "backlog.yaml"


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    """``ringctl`` in a private state dir; what a test starts there is gone after it."""
    yield from ringctl_for(tmp_path)


def counts(status: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {k["id"]: (k["messages_in"], k["messages_out"]) for k in status["kernels"]}


def drained_exactly(cli: Ringctl) -> int:
    """The sink received exactly what the source sent (their reports, written as they
    stopped); returns how many."""
    sent, received = cli.report("source"), cli.report("sink")
    assert received == {"received": sent["sent"], "sum": sent["sum"]}
    return int(sent["sent"])


def files_gone(cli: Ringctl, name: str) -> bool:
    return not (cli.state / f"{name}.sock").exists() and not (cli.state / f"{name}.pid").exists()


# -- the main flow ----------------------------------------------------------------------


def test_up_detached_then_ps_pause_resume_down(ringctl: Ringctl) -> None:
    up = ringctl("up", "-d", ENDLESS)
    assert up.returncode == 0, up.stderr
    pid = ringctl.pid_of("endless")
    assert f"ringctl: endless is up (pid {pid}); log: {ringctl.state / 'endless.log'}" in up.stderr
    assert pid_alive(pid) and pid != os.getpid()
    pid_file = json.loads((ringctl.state / "endless.pid").read_text())
    assert pid_file["log"] == str(ringctl.state / "endless.log")  # named in "does not answer"

    listed = ringctl.json("ps")["topologies"]
    assert [(t["name"], t["state"], t["pid"]) for t in listed] == [("endless", "running", pid)]

    status = ringctl.status("endless")
    assert (status["name"], status["state"], status["pid"]) == ("endless", "running", pid)
    assert isinstance(status["uptime_s"], float)
    assert [(k["id"], k["state"], k["backend"], k["replicas"]) for k in status["kernels"]] == [
        ("sink", "ACTIVE", "cpu", 1),
        ("source", "ACTIVE", "cpu", 1),
    ]
    for kernel in status["kernels"]:
        for field in ("messages_in", "messages_out", "inbox_depth", "inbox_capacity", "drops",
                      "errors", "restarts"):  # fmt: skip
            assert isinstance(kernel[field], int), field
        assert isinstance(kernel["rate_in"], int | float)
        for field in ("latency_p50_us", "latency_p99_us"):  # None until sampled
            assert kernel[field] is None or isinstance(kernel[field], int | float), field
    assert status["queues"] == [
        {**status["queues"][0], "from": "source.out", "to": "sink", "capacity": 64,
         "backpressure": "block", "drops": 0},
    ]  # fmt: skip

    pause = ringctl("pause", "endless")
    assert (pause.returncode, pause.stdout) == (0, "paused: sink, source\n")
    first = ringctl.status("endless")
    second = ringctl.status("endless")
    assert first["state"] == second["state"] == "paused"
    assert {k["state"] for k in first["kernels"]} == {"DEACTIVATED"}
    assert counts(first) == counts(second)  # frozen while paused
    assert counts(first)["sink"][0] > 0

    resume = ringctl("resume", "endless")
    assert (resume.returncode, resume.stdout) == (0, "resumed: sink, source\n")
    frozen = counts(second)["sink"][0]
    wait_for(lambda: counts(ringctl.status("endless"))["sink"][0] > frozen, what="counts move")

    down = ringctl("down", "endless")
    assert down.returncode == 0, down.stderr
    assert down.stdout.startswith("endless: down (drained in ")
    assert files_gone(ringctl, "endless")
    wait_for(lambda: not pid_alive(pid), what="the supervisor exited")
    assert drained_exactly(ringctl) > frozen
    gone = ringctl("ps", "endless")
    assert gone.returncode == 3
    assert "error: topology 'endless' is not running" in gone.stderr


def test_down_drains_a_backlog_and_reports_as_json(ringctl: Ringctl) -> None:
    ringctl.up_detached(BACKLOG)
    wait_for(lambda: ringctl.kernel("backlog", "sink")["inbox_depth"] >= 100, what="a backlog")
    down = ringctl("down", "backlog", "--json")
    assert down.returncode == 0, down.stderr
    report = json.loads(down.stdout)
    assert (report["graceful"], report["messages_left"], report["left"], report["forced"]) == (
        True, 0, {}, [],
    )  # fmt: skip
    assert report["state"] == "stopped"
    assert drained_exactly(ringctl) >= 100


def test_down_past_its_timeout_forces_and_says_what_was_left(ringctl: Ringctl) -> None:
    ringctl.up_detached(BACKLOG)
    wait_for(lambda: ringctl.kernel("backlog", "sink")["inbox_depth"] >= 150, what="a backlog")
    down = ringctl("down", "backlog", "--timeout", "0.2")
    assert down.returncode == 1
    assert "backlog: forced down after 0.2 s; " in down.stderr
    left = int(down.stderr.split("; ")[1].split(" messages left")[0])
    assert left > 0
    assert f"messages left (sink: {left})" in down.stderr
    sent, received = ringctl.report("source"), ringctl.report("sink")
    assert received["received"] + left <= sent["sent"]
    assert files_gone(ringctl, "backlog")


# -- up in the foreground ---------------------------------------------------------------


def test_a_finite_topology_runs_to_completion_and_exits_0(ringctl: Ringctl) -> None:
    result = ringctl("up", TOPOLOGIES / "finite.yaml")
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert "ringctl: phase 1: launched 3 kernels in " in err
    assert "ringctl: phase 2: activated 3 kernels in " in err
    assert "total=125250 items=500" in err  # 1 + ... + 500
    assert err.rstrip().endswith(
        "ringctl: finite completed: every source finished and every queue drained"
    )
    # The socket, pid and lock files are gone; what the kernels printed stays
    # (``ringctl logs finite``) until the next run of the name.
    assert sorted(ringctl.state.glob("finite.*")) == [ringctl.state / "finite.kernels.jsonl"]


@pytest.mark.parametrize(
    ("topology", "expected"),
    [
        ("setup_fails.yaml", "error: launch of kernel 'camera' failed: its set-up hook raised "
         "OSError: no such device: /dev/ring0 (at "),
        ("needs_gpu.yaml", "error: launch of kernel 'fft' failed: backend: cuda needs a usable "
         "NVIDIA GPU"),
    ],
    ids=["setup-hook", "cuda-without-gpu"],
)  # fmt: skip
def test_a_launch_failure_exits_1_naming_the_kernel(
    ringctl: Ringctl, topology: str, expected: str
) -> None:
    result = ringctl("up", TOPOLOGIES / topology)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "nothing was activated" in result.stderr
    assert "phase 2" not in result.stderr
    # The kernel's own code failed: its traceback is shown (once); a missing GPU is not
    # a bug in anyone's code and gets the error line alone.
    kernel_code = topology == "setup_fails.yaml"
    assert result.stderr.count("Traceback (most recent call last)") == int(kernel_code)
    assert not list(ringctl.state.glob("*.sock")) and not list(ringctl.state.glob("*.pid"))


def test_a_detached_launch_failure_exits_1_and_leaves_nothing(ringctl: Ringctl) -> None:
    result = ringctl("up", "-d", TOPOLOGIES / "setup_fails.yaml")
    assert result.returncode == 1
    assert "launch of kernel 'camera' failed" in result.stderr  # the log's tail
    assert "error: setup-fails failed to come up (exit 1); log: " in result.stderr
    assert files_gone(ringctl, "setup-fails")


def test_a_kernel_failing_past_its_restarts_exits_1(ringctl: Ringctl) -> None:
    result = ringctl("up", TOPOLOGIES / "fails.yaml")
    assert result.returncode == 1
    assert (
        "error: kernel 'sink' failed: ValueError: boom on 2 (after 1 restart, max_restarts is 1)"
        in result.stderr
    )
    # The first traceback on screen, once; every one in the kernel log and the topology's log.
    assert "hint: ringctl logs fails shows the kernels' output and tracebacks" in result.stderr
    # It has a restart policy: the fix is more restarts (or the bug), not a policy.
    assert "its max_restarts (1) is used up: raise `max_restarts` in its `restart:`" in (
        result.stderr
    )
    assert "a restart policy (restart: {policy: on-failure})" not in result.stderr
    assert result.stderr.count("Traceback (most recent call last)") == 1
    log = ringctl.state / "fails.log"
    assert "ValueError: boom on 2" in log.read_text()
    assert "ValueError: boom on 2" in ringctl("logs", "fails").stdout


def test_an_invalid_file_exits_2_with_its_position(ringctl: Ringctl) -> None:
    path = TOPOLOGIES / "invalid.yaml"
    for args in (("up", path), ("up", "-d", path)):
        result = ringctl(*args)
        assert result.returncode == 2
        assert f"{path}:6:15: kernels.source.replicas must be >= 1; got 0" in result.stderr
        assert f"error: {path} has 1 problem; nothing was started" in result.stderr
    assert not list(ringctl.state.glob("invalid.*"))


def test_sigint_on_a_foreground_up_drains_and_exits_130(ringctl: Ringctl) -> None:
    up = ringctl.spawn("up", ENDLESS)
    wait_for(lambda: _answers(ringctl, "endless"), what="the supervisor answering")
    wait_for(lambda: ringctl.kernel("endless", "sink")["messages_in"] > 0)
    up.send_signal(signal.SIGINT)
    _, err = up.communicate(timeout=30)
    assert up.returncode == 130, err
    assert "ringctl: stopping: draining queues (Ctrl-C again to force)" in err
    assert "ringctl: endless stopped (interrupted)" in err
    assert drained_exactly(ringctl) > 0
    assert files_gone(ringctl, "endless")


def test_sigterm_on_a_detached_supervisor_drains_it(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    pid = ringctl.pid_of("endless")
    wait_for(lambda: ringctl.kernel("endless", "sink")["messages_in"] > 0)
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), what="the supervisor exited")
    reap(pid)
    assert drained_exactly(ringctl) > 0
    assert files_gone(ringctl, "endless")
    assert "ringctl: endless stopped (terminated)" in (ringctl.state / "endless.log").read_text()


# -- one name, one supervisor; stale files --------------------------------------------


def test_kill_9_then_ps_reports_not_running_and_cleans_up(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    pid = ringctl.pid_of("endless")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), what="the supervisor died")
    assert (ringctl.state / "endless.sock").exists()  # left behind
    result = ringctl("ps", "endless")
    assert result.returncode == 3
    assert result.stderr.splitlines()[0] == (
        "error: topology 'endless' is not running (its supervisor died; cleaned up its stale files)"
    )
    assert files_gone(ringctl, "endless")
    assert ringctl("ps").stdout == "no topology is running (start one with: ringctl up FILE)\n"
    again = ringctl("up", "-d", ENDLESS)  # the name is free again
    assert again.returncode == 0, again.stderr
    reap(pid)


def test_a_second_up_of_the_same_name_is_refused(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    pid = ringctl.pid_of("endless")
    detached = ringctl("up", "-d", ENDLESS)
    assert detached.returncode == 1
    assert "error: topology 'endless' is already running" in detached.stderr
    foreground = ringctl("up", ENDLESS, "--duration", "1")
    assert foreground.returncode == 1
    assert f"error: topology 'endless' is already running (pid {pid})" in foreground.stderr
    assert ringctl.status("endless")["pid"] == pid  # the first one is untouched


def test_two_ups_racing_for_one_name_start_one_supervisor(ringctl: Ringctl) -> None:
    racers = [ringctl.spawn("up", "-d", ENDLESS) for _ in range(2)]
    errs = [p.communicate(timeout=60)[1] for p in racers]
    assert sorted(p.returncode for p in racers) == [0, 1], errs
    loser = errs[[p.returncode for p in racers].index(1)]
    assert "error: topology 'endless' is already running" in loser
    winner = ringctl.pid_of("endless")
    assert f"endless is up (pid {winner})" in errs[[p.returncode for p in racers].index(0)]
    assert [t["pid"] for t in ringctl.json("ps")["topologies"]] == [winner]


def test_a_busy_supervisor_keeps_its_name(ringctl: Ringctl) -> None:
    """A supervisor too busy to answer a ping is alive: a second ``up`` must not take
    its socket (that would leave the first running and unreachable)."""
    ringctl.up_detached(TOPOLOGIES / "busy.yaml")
    pid = ringctl.pid_of("busy")
    (ringctl.report_dir / "trigger").touch()  # its loop now blocks for 3 s
    wait_for(lambda: not (ringctl.report_dir / "trigger").exists(), what="the hog blocking")
    twin = ringctl("up", TOPOLOGIES / "busy.yaml", "--duration", "0.5")
    assert twin.returncode == 1, twin.stderr
    assert "error: topology 'busy' is already running" in twin.stderr
    assert ringctl.status("busy")["pid"] == pid  # answers again once unblocked, same one


def test_the_state_dir_is_private_and_the_socket_owner_only(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    assert stat.S_IMODE(ringctl.state.stat().st_mode) == 0o700
    sock = ringctl.state / "endless.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE((ringctl.state / "endless.pid").stat().st_mode) == 0o600


# -- many clients at once -------------------------------------------------------------


def test_concurrent_control_commands_are_answered_consistently(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    files = StateDir(ringctl.state).files("endless")
    replies: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        c = ControlClient(files, timeout=10)
        for i in range(6):
            op = ("pause", "resume", "status")[(n + i) % 3]
            try:
                result = c.request(op)
            except RingctlError as exc:  # pragma: no cover - reported by the assert below
                result = exc
            with lock:
                replies.append((op, result))

    def cli(n: int) -> None:
        args = ("pause", "endless") if n % 2 else ("ps", "endless", "--json")
        result = ringctl(*args)
        with lock:
            replies.append((args[0] + "-cli", result))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    threads += [threading.Thread(target=cli, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert len(replies) == 8 * 6 + 4
    for op, result in replies:
        assert not isinstance(result, Exception), (op, result)
        if op == "pause":
            assert result["state"] == "paused" and set(result["paused"]) <= {"sink", "source"}
        elif op == "resume":
            assert result["state"] == "running" and set(result["resumed"]) <= {"sink", "source"}
        elif op == "status":
            assert result["state"] in ("running", "paused")
        else:
            assert result.returncode == 0, result.stderr
    # Whatever order they came in, the supervisor is in one consistent state.
    status = ringctl.status("endless")
    states = {k["state"] for k in status["kernels"]}
    assert (status["state"], states) in (("paused", {"DEACTIVATED"}), ("running", {"ACTIVE"}))

    # Now down, with more clients racing it: each gets an answer, none hangs.
    racing: list[Any] = []

    def race(op: str) -> None:
        try:
            racing.append(ControlClient(files, timeout=10).request(op))
        except RingctlError as exc:
            racing.append(exc)

    racers = [threading.Thread(target=race, args=(op,)) for op in ("pause", "status", "resume")]
    for t in racers:
        t.start()
    down = ringctl("down", "endless")
    for t in racers:
        t.join(timeout=30)
    assert down.returncode == 0, down.stderr
    assert len(racing) == 3
    for answer in racing:
        if isinstance(answer, RingctlError):
            assert answer.exit_code in (1, 3), answer  # draining or stopped / not running
        else:
            assert isinstance(answer, dict)
    assert drained_exactly(ringctl) > 0


# -- top --------------------------------------------------------------------------------


def test_top_once_prints_a_frame(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    wait_for(lambda: ringctl.kernel("endless", "sink")["messages_in"] > 0)
    result = ringctl("top", "endless", "--once", "--width", "100")
    assert result.returncode == 0, result.stderr
    frame = result.stdout
    assert "endless" in frame
    assert "sink" in frame and "source" in frame
    assert max(len(line) for line in frame.splitlines()) <= 100
    missing = ringctl("top", "nothing-here", "--once")
    assert missing.returncode == 3


def test_top_into_a_pipe_writes_plain_lines_until_the_run_ends(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    top = ringctl.spawn("top", "endless")
    assert top.stdout is not None
    # stdout is a pipe here, as under `| tee` or in CI: the run's events, then progress.
    lines = [top.stdout.readline() for _ in range(3)]
    assert "event info: phase 1: 2 kernels launched" in lines[0], lines
    assert any(" endless running " in line for line in lines), lines
    assert not any("\x1b" in line for line in lines)  # no cursor moves, no colour
    assert ringctl("down", "endless").returncode == 0
    rest, _ = top.communicate(timeout=30)
    assert top.returncode == 0
    assert " endless stopped " in rest.splitlines()[-1], rest


def _answers(cli: Ringctl, name: str) -> bool:
    try:
        return cli.status(name)["state"] == "running"
    except (AssertionError, subprocess.SubprocessError, json.JSONDecodeError):
        return False


def test_ps_names_the_file_by_a_path_that_holds_from_any_folder(ringctl: Ringctl) -> None:
    relative = ENDLESS.relative_to(Path(__file__).resolve().parents[2])
    up = ringctl("up", "-d", relative)  # as typed in the repository's root
    assert up.returncode == 0, up.stderr
    try:
        [listed] = ringctl.json("ps")["topologies"]
        assert listed["file"] == str(ENDLESS)
        assert ringctl.status("endless")["file"] == str(ENDLESS)
        table = ringctl("ps").stdout
        assert str(ENDLESS) in table
    finally:
        assert ringctl("down", "endless").returncode == 0
