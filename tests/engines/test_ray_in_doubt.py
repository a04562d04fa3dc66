"""An actor killed with -9 on the Ray engine: what it held is settled against what its
consumers say arrived, so a delivered message is never counted lost; what nobody can
settle is counted in doubt, shown as such, and fails the run."""

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


def _up(address: str, folder: Path, body: str) -> subprocess.Popen[str]:
    path = folder / "doubt.yaml"
    path.write_text(
        f"version: 1\nname: doubt\npython_path: [{str(HERE)!r}, {str(REPO)!r}]\n" + body
    )
    env = {**os.environ, "RINGCTL_STATE_DIR": str(folder / "state")}
    return subprocess.Popen(
        [sys.executable, "-m", "ringctl.cli", "up", str(path), "--engine", "ray",
         "--address", address, "--json-stream", "--interval", "0.3", "--timeout", "20"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _kill_when(run: subprocess.Popen[str], pid_file: Path, ready: Any) -> None:
    """Read the status lines until ``ready(doc)``, then kill -9 the actor in pid_file."""
    assert run.stdout is not None
    for line in run.stdout:
        if ready(json.loads(line)):
            break
    os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _kernel(doc: dict[str, Any], kid: str) -> dict[str, Any]:
    return next(k for k in doc["kernels"] if k["id"] == kid)


def _finish(run: subprocess.Popen[str]) -> tuple[dict[str, Any], str]:
    try:
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    return json.loads(out.strip().splitlines()[-1]), err


def test_what_a_killed_producer_held_and_still_arrived_is_not_lost(ray_head: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    pid_file, sent_file = folder / "source.pid", folder / "sent"
    run = _up(ray_head, folder, (
        "kernels:\n"
        "  source:\n    entry: ray_faults:counting_source\n"
        f"    params: {{pid_file: {str(pid_file)!r}, sent_file: {str(sent_file)!r}}}\n"
        "  sink:\n    entry: ray_faults:slow_sink\n    params: {delay: 0.01}\n"
        "queues:\n  - {from: source, to: sink, capacity: 20}\n"
    ))  # fmt: skip
    # The sink is slow: the source's sends wait on its full outbox and sink.
    _kill_when(run, pid_file, lambda doc: _kernel(doc, "sink")["messages_in"] >= 50)
    doc, err = _finish(run)
    assert run.returncode == 1, err
    sent = int(sent_file.read_text())  # what the source's sends returned for, exactly
    acc = doc["result"]["accounting"]
    assert acc["holds"], acc
    (edge,) = acc["queues"]
    # Every message the sink took was sent; none of them is also counted lost.
    assert edge["delivered"] + edge["lost"] + edge.get("in_doubt", 0) <= sent, (edge, sent)
    assert edge["delivered"] >= 50, edge
    # What its outbox held when it died did not arrive: lost, every one (a push takes what
    # is queued at once, so whether the outbox held any at that instant is timing).
    assert edge["lost"] == edge["accepted"] - edge["delivered"], edge
    # The sink lived to the end and said what arrived: nothing about this edge is in doubt.
    assert edge["in_doubt"] == 0, edge


def test_what_a_killed_consumer_held_is_in_doubt_and_fails_the_run(ray_head: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))
    pid_file = folder / "mid.pid"
    run = _up(ray_head, folder, (
        "kernels:\n"
        "  source:\n    entry: kernels.sources:counter\n"
        "    params: {count: null, batch: 1, rate: 500}\n"
        "  mid:\n    entry: ray_faults:slow_relay\n"
        f"    params: {{delay: 0.01, pid_file: {str(pid_file)!r}}}\n"
        "  sink:\n    entry: kernels.sinks:summing\n"
        "queues:\n  - {from: source, to: mid, capacity: 50}\n  - {from: mid, to: sink}\n"
    ))  # fmt: skip
    # Killed while it works through a full inbox: it may have taken some since it last
    # reported, and handled them or not. Nobody can tell.
    started = time.monotonic()
    _kill_when(run, pid_file, lambda doc: _kernel(doc, "mid")["inbox_depth"] >= 20)
    doc, err = _finish(run)
    assert time.monotonic() - started < 100
    assert run.returncode == 1, err
    result = doc["result"]
    acc = result["accounting"]
    assert acc["holds"], acc
    assert acc["totals"]["in_doubt"] > 0, acc["totals"]
    mid = _kernel(doc, "mid")
    assert mid["in_doubt"] == acc["totals"]["in_doubt"], mid
    assert "in doubt" in (result["failure"] or "") + err, (result["failure"], err)
