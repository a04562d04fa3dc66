"""The control plane when things go wrong: blocked loops, stopped supervisors, hostile
names and directories, absurd numbers, full disks, signals. Real supervisor processes,
the real socket, ``ringctl`` as a subprocess."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import REPO, TOPOLOGIES, Ringctl, pid_alive, ringctl_for, wait_for

from ringctl.orchestrator.status import StatusDocument

ENDLESS = TOPOLOGIES / "endless.yaml"
BUSY = TOPOLOGIES / "busy.yaml"
SLEEPY = TOPOLOGIES / "sleepy.yaml"


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The process is SIGSTOPped inside the block, and always continued after it."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def control_files(state: Path) -> list[str]:
    """What running supervisors keep in the state directory: their socket, pid and lock
    files (not their logs, nor the run history)."""
    return sorted(
        p.name
        for p in state.iterdir()
        if p.suffix in (".sock", ".pid", ".lock") and p.stem != "history"
    )


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text


# -- answers, whatever the kernels do --------------------------------------------------


def hog(tmp_path: Path, seconds: float) -> Path:
    """``busy.yaml`` with a longer block: time for several ``ringctl`` calls inside it."""
    path = tmp_path / "busy.yaml"
    text = BUSY.read_text().replace(
        'python_path: ["../../..", "../.."]', (f'python_path: ["{REPO}", "{REPO / "tests"}"]')
    )
    path.write_text(text.replace("params: {", f"params: {{seconds: {seconds}, "))
    return path


def test_ps_answers_while_a_kernel_blocks_the_loop(ringctl: Ringctl, tmp_path: Path) -> None:
    ringctl.up_detached(hog(tmp_path, 6.0))
    trigger = ringctl.report_dir / "trigger"
    trigger.touch()
    wait_for(lambda: not trigger.exists(), what="the hog blocking its loop")
    status = wait_for(  # asked while the loop is blocked (for 6 s)
        lambda: (s := ringctl.status("busy"))["loop"]["status"] == "blocked" and s,
        what="ps seeing the block",
    )
    loop = status["loop"]
    StatusDocument.check(status)  # the answer from the last published one fits the definition
    assert status["stale_s"] is not None
    assert loop["holder"] == "kernel `hog`"
    assert loop["message"].startswith("loop blocked ") and loop["message"].endswith(
        " s in kernel `hog`"
    )
    assert status["state"] == "running" and [k["id"] for k in status["kernels"]] == ["hog"]
    # The answer came while the block went on: later requests still find it blocked.
    listed = ringctl.json("ps")["topologies"]
    assert [(t["name"], t["state"], t["loop"]) for t in listed] == [("busy", "running", "blocked")]
    human = ringctl("ps", "busy")
    assert human.returncode == 0 and "BLOCKED" in human.stdout
    assert "in kernel `hog`" in human.stdout


def test_the_watchdog_names_the_kernel_in_ps_the_dashboard_and_the_log(
    ringctl: Ringctl, tmp_path: Path
) -> None:
    ringctl.up_detached(hog(tmp_path, 6.0))
    trigger = ringctl.report_dir / "trigger"
    trigger.touch()
    wait_for(lambda: not trigger.exists(), what="the hog blocking its loop")
    wait_for(lambda: ringctl.status("busy")["loop"]["status"] == "blocked", what="blocked")
    frame = ringctl("top", "busy", "--once", "--width", "120")
    assert frame.returncode == 0, frame.stderr
    assert "BLOCKED" in frame.stdout and "in kernel `hog`" in frame.stdout
    # Once the loop runs again: the block is an event, in the log, and in ps.
    wait_for(lambda: ringctl.status("busy")["loop"]["status"] == "ok", timeout=10)
    status = ringctl.status("busy")
    blocks = [e["text"] for e in status["events"] if e["text"].startswith("loop blocked ")]
    hog_blocks = [b for b in blocks if b.endswith(" s in kernel `hog`")]
    assert len(hog_blocks) == 1, blocks
    seconds = float(hog_blocks[0].split()[2])
    assert 5.5 <= seconds < 10, hog_blocks
    assert hog_blocks[0] in (ringctl.state / "busy.log").read_text()
    human = ringctl("ps", "busy").stdout
    assert "BLOCKED" not in human
    assert status["loop"]["last_block"]["message"] in human


def test_up_detached_ps_and_down_of_a_topology_whose_kernel_blocks_on_every_message(
    ringctl: Ringctl,
) -> None:
    up = ringctl("up", "-d", SLEEPY, timeout=30)  # it used to wait for the whole run
    assert up.returncode == 0, up.stderr

    def blocked() -> dict[str, str] | None:
        loop: dict[str, str] = ringctl.status("sleepy")["loop"]
        return loop if loop["status"] == "blocked" else None

    loop = wait_for(blocked, what="the slow kernel blocking the loop")
    assert loop["holder"] == "kernel `slow`"
    assert [t["name"] for t in ringctl.json("ps")["topologies"]] == ["sleepy"]
    down = ringctl("down", "sleepy", "--timeout", "0.5", timeout=30)
    # Drained, or forced past 0.5 s: either way it answered and went down (its loop
    # blocked for 2 s at a time, the drain may overrun its timeout by one message).
    if down.returncode == 0:
        assert "sleepy: down (drained in " in down.stdout
    else:
        assert down.returncode == 1 and "sleepy: forced down after 0.5 s" in down.stderr
    wait_for(lambda: not (ringctl.state / "sleepy.pid").exists(), what="files removed")


def test_ps_lists_a_supervisor_that_does_not_answer(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    pid = ringctl.pid_of("endless")
    with stopped(pid):
        listed = ringctl.json("ps")["topologies"]
        human = ringctl("ps")
    assert len(listed) == 1
    entry = listed[0]
    assert (entry["name"], entry["state"], entry["pid"]) == ("endless", "not responding", pid)
    assert entry["uptime_s"] > 0
    assert human.returncode == 0, human.stderr
    assert "not responding" in human.stdout and str(pid) in human.stdout
    assert "no topology is running" not in human.stdout
    assert ringctl.json("ps")["topologies"][0]["state"] == "running"  # continued: answers


@pytest.mark.parametrize("command", ["pause", "down"])
def test_a_command_the_client_gave_up_on_is_not_applied_later(
    ringctl: Ringctl, command: str
) -> None:
    ringctl.up_detached(ENDLESS)
    pid = ringctl.pid_of("endless")
    with stopped(pid):
        gave_up = ringctl(command, "endless", "--wait", "1")
    assert gave_up.returncode == 3, gave_up.stderr
    assert f"the supervisor of 'endless' (pid {pid}) did not answer within 1s" in gave_up.stderr
    # Continued, it reads the request that waited in its socket, and refuses it: the
    # deadline has passed. Nothing changes, now or later.
    wait_for(lambda: ringctl("ps", "endless").returncode == 0, what="answers again")
    status = ringctl.status("endless")
    assert status["state"] == "running"
    assert {k["state"] for k in status["kernels"]} == {"ACTIVE"}
    assert pid_alive(pid)
    events = " ".join(e["text"] for e in ringctl.status("endless")["events"])
    assert "paused" not in events and "down" not in events


# -- input that cannot trick it --------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["ps", "{bad}"],
        ["pause", "{bad}"],
        ["resume", "{bad}"],
        ["down", "{bad}"],
        ["top", "{bad}", "--once"],
    ],
)
def test_a_name_that_is_a_path_is_refused_and_touches_nothing(
    ringctl: Ringctl, argv: list[str]
) -> None:
    victim_dir = ringctl.state.parent
    for suffix in ("pid", "sock"):
        (victim_dir / f"victim.{suffix}").write_text("keep me")
    for bad in ("../victim", str(victim_dir / "victim"), "Victim", "a" * 64, ""):
        result = ringctl(*[a.replace("{bad}", bad) for a in argv])
        assert result.returncode == 2, (bad, result.stdout, result.stderr)
        assert "is not a topology name" in result.stderr, result.stderr
        no_traceback(result.stderr)
    assert (victim_dir / "victim.pid").read_text() == "keep me"
    assert (victim_dir / "victim.sock").read_text() == "keep me"
    assert not (victim_dir / "victim.lock").exists()


def test_a_world_writable_state_dir_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    try:
        shared.chmod(0o1777)
        cli = Ringctl(shared)
        for argv in (["up", "-d", ENDLESS], ["up", ENDLESS, "--duration", "1"], ["ps"]):
            result = cli(*argv)
            assert result.returncode == 2, result.stderr
            assert f"the state directory {shared} is writable by others (mode 1777)" in (
                result.stderr
            )
            assert "hint: set RINGCTL_STATE_DIR" in result.stderr
            no_traceback(result.stderr)
        assert stat.S_IMODE(shared.stat().st_mode) == 0o1777  # never chmodded
        assert list(shared.iterdir()) == []
    finally:
        shared.chmod(0o700)
        shared.rmdir()


@pytest.mark.skipif(os.getuid() != 0, reason="giving a directory away needs root")
def test_a_state_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    result = Ringctl(theirs)("up", "-d", ENDLESS)
    assert result.returncode == 2
    assert f"the state directory {theirs} belongs to another user (uid 65534)" in result.stderr
    no_traceback(result.stderr)


def test_a_state_dir_that_is_a_file_or_cannot_be_made_is_a_clean_error(
    tmp_path: Path,
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    for state, expected in (
        (a_file, f"the state directory {a_file} is not a directory"),
        (a_file / "sub", f"cannot create the state directory {a_file / 'sub'}: Not a directory"),
    ):
        result = Ringctl(state)("up", "-d", ENDLESS)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
        no_traceback(result.stderr)
    env = {k: v for k, v in os.environ.items() if k not in ("RINGCTL_STATE_DIR", "XDG_STATE_HOME")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    for home in ("", "relative/home"):
        result = subprocess.run(
            [sys.executable, "-m", "ringctl.cli", "up", "-d", str(ENDLESS)],
            capture_output=True, text=True, cwd=tmp_path, timeout=60, env={**env, "HOME": home},
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "cannot find a state directory: HOME is" in result.stderr
        no_traceback(result.stderr)
    assert list(tmp_path.iterdir()) == [a_file]  # nothing made under a relative HOME


@pytest.mark.skipif(os.getuid() == 0, reason="root may write anywhere")
def test_an_unwritable_state_dir_is_a_clean_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = Ringctl(locked)("up", "-d", ENDLESS)
    assert result.returncode == 2
    assert f"the state directory {locked} is not writable" in result.stderr
    no_traceback(result.stderr)


def test_logs_are_private_and_a_clean_down_leaves_no_socket_pid_or_lock(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    log = ringctl.state / "endless.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert (ringctl.state / "endless.lock").exists()  # held while it runs
    assert ringctl("down", "endless").returncode == 0
    wait_for(lambda: control_files(ringctl.state) == [])
    foreground = ringctl("up", ENDLESS, "--duration", "0.3")
    assert foreground.returncode == 0, foreground.stderr
    assert control_files(ringctl.state) == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["down", "endless", "--timeout", "inf"], "--timeout"),
        (["down", "endless", "--timeout", "1e400"], "--timeout"),
        (["down", "endless", "--timeout", "0"], "--timeout"),
        (["pause", "endless", "--wait", "nan"], "--wait"),
        (["up", str(ENDLESS), "--timeout", "nan"], "--timeout"),
        (["up", str(ENDLESS), "--duration", "-1"], "--duration"),
        (["up", str(ENDLESS), "--interval", "inf"], "--interval"),
        (["top", "endless", "--refresh", "nan"], "--refresh"),
    ],
)
def test_every_duration_is_finite_and_positive(
    ringctl: Ringctl, argv: list[str], expected: str
) -> None:
    result = ringctl(*argv)
    assert result.returncode == 2, result.stderr
    assert f"Invalid value for '{expected}'" in result.stderr
    no_traceback(result.stderr)


def test_top_of_a_topology_that_is_not_running_exits_3(ringctl: Ringctl) -> None:
    for argv in (["top", "nothing-here"], ["top", "nothing-here", "--once"]):
        result = ringctl(*argv)
        assert result.returncode == 3, result.stderr
        assert "error: topology 'nothing-here' is not running" in result.stderr


def test_replicas_and_kernels_have_an_upper_bound(ringctl: Ringctl, tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text(
        "version: 1\nname: huge\nkernels:\n"
        "  a: {entry: 'kernels.sources:counter', replicas: 10000000}\n"
    )
    result = ringctl("up", huge)
    assert result.returncode == 2
    assert "kernels.a.replicas must be <= 1024; got 10000000" in result.stderr
    many = tmp_path / "many.yaml"
    lines = [f"  k{i}: {{entry: 'kernels.sources:counter', replicas: 1000}}" for i in range(11)]
    many.write_text("version: 1\nname: many\nkernels:\n" + "\n".join(lines) + "\n")
    result = ringctl("validate", many)
    assert result.returncode == 2
    assert "11000 kernel instances (replicas added up) is more than one topology may run" in (
        result.stderr
    )


# -- full disks ------------------------------------------------------------------------


def test_a_full_disk_under_stdout_does_not_stop_the_run(ringctl: Ringctl) -> None:
    with open("/dev/full", "w") as full:  # every write: ENOSPC
        result = subprocess.run(
            ringctl.argv("up", ENDLESS, "--no-dashboard", "--interval", "0.05",
                         "--duration", "1"),
            stdout=full, stderr=subprocess.PIPE, text=True, cwd=REPO, env=ringctl.env,
            timeout=60,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    no_traceback(result.stderr)
    assert result.stderr.count("lines of output were lost") == 1
    assert "No space left on device" in result.stderr
    assert drained_exactly(ringctl) > 0  # the kernels went on to the end
    assert control_files(ringctl.state) == []


def drained_exactly(cli: Ringctl) -> int:
    sent, received = cli.report("source"), cli.report("sink")
    assert received == {"received": sent["sent"], "sum": sent["sum"]}
    return int(sent["sent"])


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs (needs root; skipped elsewhere), unmounted afterwards."""
    mount = Path(tempfile.mkdtemp(prefix="rcfull-", dir="/tmp"))
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mount)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        try:
            yield mount
        finally:
            subprocess.run(["umount", "-l", str(mount)], check=False)
    finally:
        mount.rmdir()


def fill(disk: Path) -> None:
    with open(disk / "filler", "wb", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 4096)


def test_up_detached_on_a_full_disk_is_a_clean_error(tiny_disk: Path, tmp_path: Path) -> None:
    fill(tiny_disk)
    cli = Ringctl(tiny_disk, report_dir=tmp_path)
    result = cli("up", "-d", ENDLESS)
    assert result.returncode == 1, result.stderr
    assert "No space left on device" in result.stderr
    assert "nothing was started" in result.stderr
    no_traceback(result.stderr)
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["endless.log", "filler"]


def test_a_disk_that_fills_up_under_a_running_supervisor(tiny_disk: Path, tmp_path: Path) -> None:
    """The log is on the full disk: the watchdog's lines are lost, counted and reported
    once; the kernels and the control socket go on; down is clean."""
    cli = Ringctl(tiny_disk, report_dir=tmp_path)
    up = cli.spawn("up", BUSY, "--no-dashboard", "--interval", "0.1")
    try:
        wait_for(lambda: (tiny_disk / "busy.pid").exists(), timeout=30, what="up")
        fill(tiny_disk)
        (tmp_path / "trigger").touch()  # the hog blocks: the watchdog writes to the log
        wait_for(lambda: cli.status("busy")["loop"].get("last_block"), timeout=15)
        events = [e["text"] for e in cli.status("busy")["events"]]
        assert any(
            "failed (No space left on device); lost lines are counted" in e for e in events
        ), events
        # The hog never waits for messages, so the drain runs out its timeout (exit 1).
        down = cli("down", "busy", "--timeout", "0.5")
        assert down.returncode in (0, 1), down.stderr
        no_traceback(down.stderr)
        _, err = up.communicate(timeout=30)
    finally:
        cli.cleanup()
    assert up.returncode == down.returncode, err
    no_traceback(err)
    assert err.count("lines of output were lost") == 1
    assert control_files(tiny_disk) == []


# -- signals ---------------------------------------------------------------------------


def test_sighup_drains_like_sigterm(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    pid = ringctl.pid_of("endless")
    wait_for(lambda: ringctl.kernel("endless", "sink")["messages_in"] > 0)
    os.kill(pid, signal.SIGHUP)
    wait_for(lambda: not pid_alive(pid), what="the supervisor drained and exited")
    assert drained_exactly(ringctl) > 0
    assert control_files(ringctl.state) == []
    log = (ringctl.state / "endless.log").read_text()
    assert "stopping on SIGHUP: draining queues" in log
    assert "endless stopped (terminated)" in log


def test_sigterm_does_not_suggest_ctrl_c(ringctl: Ringctl) -> None:
    up = ringctl.spawn("up", ENDLESS, "--no-dashboard")
    wait_for(lambda: (ringctl.state / "endless.pid").exists(), timeout=30)
    wait_for(lambda: ringctl("ps", "endless").returncode == 0)
    up.send_signal(signal.SIGTERM)
    _, err = up.communicate(timeout=30)
    assert up.returncode == 0, err
    assert "stopping on SIGTERM: draining queues" in err
    assert "Ctrl-C" not in err
    assert drained_exactly(ringctl) > 0


def test_a_run_whose_state_files_were_removed_makes_them_again(ringctl: Ringctl) -> None:
    import shutil

    ringctl.up_detached(ENDLESS)
    pid = ringctl.pid_of("endless")
    shutil.rmtree(ringctl.state)  # a /tmp cleaner, an rm -rf by mistake
    # Within a heartbeat or two the run can be reached again, under its own name.
    wait_for(lambda: ringctl("ps", "endless").returncode == 0, what="ps reaching the run")
    assert ringctl.pid_of("endless") == pid
    assert (ringctl.state / "endless.sock").exists()
    assert stat.S_IMODE(ringctl.state.stat().st_mode) == 0o700
    down = ringctl("down", "endless")
    assert down.returncode == 0, down.stdout + down.stderr
    wait_for(lambda: not pid_alive(pid), what="the supervisor to exit")
    assert control_files(ringctl.state) == []  # and it cleaned up after itself
