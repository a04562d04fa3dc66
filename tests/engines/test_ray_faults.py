"""Faults on the Ray engine through the CLI: a run that loses work says so, counts every
message the producers sent, and ends without waiting on a consumer that is gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.engines.conftest import REPO

pytestmark = [pytest.mark.ray, pytest.mark.timeout(150)]

HERE = Path(__file__).resolve().parent / "topologies"

TOPOLOGY = """\
version: 1
name: ray-faults
python_path: [{here!r}, {repo!r}]
kernels:
  source:
    entry: kernels.sources:counter
    params: {{count: null, batch: 1, rate: 500}}
  mid:
    entry: ray_faults:relay
    params: {mid}
  sink:
    entry: kernels.sinks:summing
queues:
  - {{from: source, to: mid, capacity: 200}}
  - {{from: mid, to: sink, capacity: 200}}
"""


def _topology(folder: Path, mid: dict[str, Any]) -> Path:
    path = folder / "ray-faults.yaml"
    path.write_text(TOPOLOGY.format(here=str(HERE), repo=str(REPO), mid=json.dumps(mid)))
    return path


def _up(address: str, folder: Path, *args: str, interval: str = "30") -> subprocess.Popen[str]:
    env = {**os.environ, "RINGCTL_STATE_DIR": str(folder / "state")}
    return subprocess.Popen(
        [sys.executable, "-m", "ringctl.cli", "up", str(folder / "ray-faults.yaml"),
         "--engine", "ray", "--address", address, "--json-stream", "--interval", interval, *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _final(stdout: str) -> dict[str, Any]:
    doc = json.loads(stdout.strip().splitlines()[-1])
    return dict(doc)


def _kernel(doc: dict[str, Any], kid: str) -> dict[str, Any]:
    return next(k for k in doc["kernels"] if k["id"] == kid)


def _holds(totals: dict[str, int]) -> bool:
    # A push in flight when its consumer's actor is killed may or may not have arrived:
    # what it carried is in doubt, a term of the law like the others.
    rest = ("delivered", "dropped", "lost", "left", "queued", "in_doubt")
    return totals["accepted"] == sum(totals[t] for t in rest)


def test_a_failed_consumer_counts_what_the_source_sent_after_it(ray_head: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    _topology(folder, {"fail_at": 300})
    run = _up(ray_head, folder)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1, err
    doc = _final(out)
    acc = doc["result"]["accounting"]
    assert acc["holds"] and _holds(acc["totals"]), acc
    # Every message the source sent is on its queue: delivered to `mid`, or lost there
    # (queued when it failed, or sent after), none left uncounted in the source's outbox.
    [edge] = [q for q in acc["queues"] if q["to"] == "mid"]
    assert edge["accepted"] == _kernel(doc, "source")["messages_out"], acc
    assert edge["delivered"] == 300 and edge["lost"] == edge["accepted"] - 300, edge


def test_a_killed_actor_without_restart_policy_ends_the_run_at_once(ray_head: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    pid_file = folder / "mid.pid"
    _topology(folder, {"pid_file": str(pid_file)})
    run = _up(ray_head, folder, "--timeout", "40", interval="0.5")
    try:
        assert run.stdout is not None
        for line in run.stdout:  # until messages flow through `mid`
            if _kernel(json.loads(line), "sink")["messages_in"] > 0:
                break
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        killed = time.monotonic()
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    # The source does not wait on a consumer that will never come back: what it sends
    # from then on is lost (counted), and the drain does not run out its 40 s.
    assert time.monotonic() - killed < 20, err
    assert run.returncode == 1, err
    doc = _final(out)
    result = doc["result"]
    assert "died" in (result["failure"] or ""), result
    assert result["down"]["forced"] == [], result["down"]
    acc = result["accounting"]
    assert acc["holds"] and _holds(acc["totals"]), acc
    assert acc["totals"]["lost"] > 0


def test_sigterm_drains_a_ray_run_as_it_does_a_local_one(ray_head: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    env = {**os.environ, "RINGCTL_STATE_DIR": str(folder / "state")}
    run = subprocess.Popen(
        [sys.executable, "-m", "ringctl.cli", "up", str(HERE / "ray-endless.yaml"),
         "--address", ray_head, "--json-stream", "--interval", "0.5"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert run.stdout is not None
        for line in run.stdout:  # until messages reach the sink
            if _kernel(json.loads(line), "total")["messages_in"] > 0:
                break
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    # Ray's own SIGTERM handler (exit at once) must not replace the supervisor's drain.
    assert run.returncode == 0, err
    result = _final(out)["result"]
    assert result["outcome"] == "stopped" and result["reason"] == "terminated", result
    assert result["accounting"]["clean"], result["accounting"]


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> dict[int, str]:
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found[int(proc.name)] = cmd
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_a_run_whose_raylet_dies_is_in_the_history(ray_head: str) -> None:
    """The detached supervisor starts its own Ray; when its raylet dies, Ray may end the
    process while it closes the engine: the run's outcome is recorded before that."""
    folder = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    env = {
        **os.environ,
        "RINGCTL_STATE_DIR": str(folder / "state"),
        # Ray's own health checks, made quick: the dead node is noticed in about a second.
        "RAY_health_check_period_ms": "500",
        "RAY_health_check_failure_threshold": "2",
    }

    def ringctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ringctl.cli", *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    up = ringctl("up", "-d", str(HERE / "ray-endless.yaml"))
    assert up.returncode == 0, up.stderr
    pid = int(json.loads(ringctl("ps", "ray-endless", "--json").stdout)["pid"])
    try:
        [raylet] = [p for p, cmd in _children(pid).items() if "raylet/raylet" in cmd]
        os.kill(raylet, signal.SIGKILL)
        deadline = time.monotonic() + 90
        while _alive(pid):
            assert time.monotonic() < deadline, "the supervisor outlived its Ray node"
            time.sleep(0.2)
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    history = json.loads(ringctl("ps", "-a", "--json").stdout)["finished"]
    assert [(h["name"], h["outcome"], h["exit_code"]) for h in history] == [
        ("ray-endless", "failed", 1)
    ], history
    assert "died" in history[0]["reason"], history


def test_a_kernel_that_blocks_its_actor_does_not_hang_ps_or_down(ray_head: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    _topology(folder, {"block_at": 5})
    env = {**os.environ, "RINGCTL_STATE_DIR": str(folder / "state")}

    def ringctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ringctl.cli", *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=90,
        )  # fmt: skip

    def sent() -> int:
        doc = json.loads(ringctl("ps", "ray-faults", "--json").stdout)
        return int(_kernel(doc, "source")["messages_out"])

    up = ringctl("up", "-d", str(folder / "ray-faults.yaml"), "--engine", "ray",
                 "--address", ray_head)  # fmt: skip
    assert up.returncode == 0, up.stderr
    pid = int(json.loads(ringctl("ps", "ray-faults", "--json").stdout)["pid"])
    try:
        # `mid` blocks on its 5th message and takes nothing more; the other kernels are
        # still read: `ps` shows the source filling its outbox (200) meanwhile.
        deadline = time.monotonic() + 30
        while sent() < 150:
            assert time.monotonic() < deadline, ringctl("ps", "ray-faults").stdout
            time.sleep(0.2)
        t0 = time.monotonic()
        down = ringctl("down", "ray-faults", "--timeout", "2")
        # The actor that answers nothing is killed, and what waited for it is left.
        assert time.monotonic() - t0 < 30, down.stderr
        assert down.returncode == 1, down.stderr
        assert "forced down" in down.stderr and "messages left" in down.stderr, down.stderr
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    [run] = json.loads(ringctl("ps", "-a", "--json").stdout)["finished"]
    assert run["exit_code"] == 1, run
