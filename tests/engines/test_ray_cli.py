"""``ringctl up -d --engine ray --address ...``, then ps, pause, resume, down, as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engines.conftest import REPO

pytestmark = [pytest.mark.ray, pytest.mark.timeout(150)]

TOPOLOGY = Path(__file__).resolve().parent / "topologies" / "ray-endless.yaml"
NAME = "ray-endless"


def wait_for(condition: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout:g}s: {what}")
        time.sleep(0.05)
    return value


class Ringctl:
    """``ringctl`` as subprocesses sharing one private state directory."""

    def __init__(self) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))  # short: holds a socket
        self.env = {**os.environ, "RINGCTL_STATE_DIR": str(self.state)}

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "ringctl.cli", *args],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        if ok:
            assert done.returncode == 0, f"ringctl {' '.join(args)}:\n{done.stderr}"
        return done

    def ps(self) -> dict[str, Any]:
        return dict(json.loads(self("ps", NAME, "--json").stdout))

    def log(self) -> str:
        path = self.state / f"{NAME}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def cleanup(self) -> None:
        """Bring down (or kill) a supervisor a failed test left behind."""
        pid_file = self.state / f"{NAME}.pid"
        if pid_file.exists():
            with contextlib.suppress(Exception):
                self("down", NAME, "--timeout", "5", ok=False)
        with contextlib.suppress(Exception):
            os.kill(int(json.loads(pid_file.read_text())["pid"]), signal.SIGKILL)
        shutil.rmtree(self.state, ignore_errors=True)


@pytest.fixture
def ringctl(ray_head: str) -> Iterator[Ringctl]:
    cli = Ringctl()
    try:
        yield cli
    finally:
        cli.cleanup()


def counts(status: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {k["id"]: (k["messages_in"], k["messages_out"]) for k in status["kernels"]}


def settled(cli: Ringctl) -> dict[str, Any] | None:
    """A status whose counts a later one, ten probe intervals on, repeats exactly."""
    first = cli.ps()
    time.sleep(0.5)
    second = cli.ps()
    return second if counts(first) == counts(second) else None


def test_pause_resume_down_through_the_cli(ringctl: Ringctl, ray_head: str) -> None:
    ringctl("up", str(TOPOLOGY), "-d", "--engine", "ray", "--address", ray_head)
    status = ringctl.ps()
    assert status["engine"] == "ray"
    nodes = {k["node"] for k in status["kernels"]}
    assert len(nodes) == 1 and None not in nodes, f"each row names the one node: {nodes}"
    wait_for(lambda: counts(ringctl.ps())["total"][0] > 5, what="messages reach the sink")

    assert _named(ringctl("pause", NAME).stdout, "paused") == {"source", "square", "total"}
    frozen = wait_for(lambda: settled(ringctl), what="counts freeze while paused")
    assert {k["state"] for k in frozen["kernels"]} == {"DEACTIVATED"}
    assert settled(ringctl) is not None, "still frozen"

    assert _named(ringctl("resume", NAME).stdout, "resumed") == {"source", "square", "total"}
    before = counts(frozen)["total"][0]
    wait_for(lambda: counts(ringctl.ps())["total"][0] > before + 5, what="counts move again")

    report = json.loads(ringctl("down", NAME, "--json", "--timeout", "20").stdout)
    assert report["graceful"] and report["messages_left"] == 0, report
    # The drain delivered everything the source sent (the run's summary, in its log).
    log = wait_for(lambda: "items=" in ringctl.log() and ringctl.log(), what="the summary")
    sent = int(_metric(log, "sent"))
    assert sent > 0 and int(_metric(log, "items")) == sent
    assert int(_metric(log, "total")) == sum(x * x for x in range(sent))


def _metric(log: str, name: str) -> str:
    found = re.findall(rf"\b{name}=(\d+)", log)
    assert found, f"no {name}= in the log:\n{log}"
    return str(found[-1])


def _named(stdout: str, verb: str) -> set[str]:
    """The kernels a ``pause`` / ``resume`` line names (``paused: a, b``)."""
    head, _, names = stdout.strip().partition(": ")
    assert head == verb, stdout
    return set(names.split(", "))


CHATTY = """
import logging

log = logging.getLogger("chatty")


async def talk(ctx):
    print(f"hello from replica {ctx.replica}")
    log.warning("a warning from %s", ctx.kernel_id)
    for i in range(3):
        await ctx.send(i)
    print("done", flush=True)


async def listen(ctx):
    async for batch in ctx.batches(16):
        for m in batch:
            print(f"got {m}")
"""


def test_logs_shows_what_kernels_print_on_ray(ringctl: Ringctl, ray_head: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="rc-chatty-", dir="/tmp"))
    (folder / "chatty.py").write_text(CHATTY)
    topology = folder / "chatty.yaml"
    topology.write_text(
        "version: 1\nname: chatty\nengine: ray\nkernels:\n"
        "  talk: {entry: 'chatty:talk'}\n  listen: {entry: 'chatty:listen'}\n"
        "queues:\n  - {from: talk, to: listen}\n"
    )
    up = ringctl("up", str(topology), "--no-dashboard", "--address", ray_head, ok=False)
    assert up.returncode == 0, up.stdout + up.stderr
    talk = ringctl("logs", "chatty", "talk").stdout
    for line in ("hello from replica 0", "chatty: a warning from talk", "done"):
        assert line in talk, talk
    listen = ringctl("logs", "chatty", "listen").stdout
    assert all(f"got {i}" in listen for i in range(3)), listen
    assert "hello from replica 0" not in listen
    shutil.rmtree(folder, ignore_errors=True)
