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


def _kernel(status: dict[str, Any], kernel_id: str) -> dict[str, Any]:
    return next(k for k in status["kernels"] if k["id"] == kernel_id)


def test_tap_restart_and_scale_on_ray_lose_nothing(ringctl: Ringctl, ray_head: str) -> None:
    ringctl("up", str(TOPOLOGY), "-d", "--engine", "ray", "--address", ray_head)
    wait_for(lambda: counts(ringctl.ps())["total"][0] > 5, what="messages reach the sink")

    tap = ringctl("tap", NAME, "source", "-n", "3", "--json")
    docs = [json.loads(line) for line in tap.stdout.splitlines()]
    assert tap.returncode == 0 and [d["n"] for d in docs] == [1, 2, 3], tap.stdout + tap.stderr
    assert {(d["kernel"], d["port"]) for d in docs} == {("source", "out")}

    total_in = lambda: counts(ringctl.ps())["total"][0]  # noqa: E731
    for step in (("restart", NAME, "square"), ("scale", NAME, "square=3"),
                 ("restart", NAME, "square", "total"), ("scale", NAME, "square=1"),
                 ("scale", NAME, "square=2")):  # fmt: skip
        before = total_in()
        done = ringctl(*step, ok=False)
        assert done.returncode == 0, f"{step}: {done.stdout}{done.stderr}"
        wait_for(lambda b=before: total_in() > b + 20, what=f"messages flow after {step}")
    status = ringctl.ps()
    assert (_kernel(status, "square")["restarts"], _kernel(status, "square")["replicas"]) == (2, 2)
    assert _kernel(status, "total")["restarts"] == 1

    report = json.loads(ringctl("down", NAME, "--json", "--timeout", "20").stdout)
    assert report["graceful"] and report["messages_left"] == 0, report
    # Every message the source sent reached the sink once, and its restart kept the
    # running total (``ctx.state``): the sum is exact.
    log = wait_for(lambda: "items=" in ringctl.log() and ringctl.log(), what="the summary")
    sent = int(_metric(log, "sent"))
    assert sent > 0 and int(_metric(log, "items")) == sent
    assert int(_metric(log, "total")) == sum(x * x for x in range(sent))
    (run,) = json.loads(ringctl("ps", "-a", "--json").stdout)["finished"]
    assert (run["outcome"], run["exit_code"]) == ("stopped", 0), run


def _seq_topology(folder: Path, label: str, *, rate: int = 400, keep_state: bool = True) -> Path:
    tests = REPO / "tests"
    path = folder / "seq.yaml"
    path.write_text(
        f'version: 1\nname: seq\npython_path: ["{tests}"]\nengine: ray\n'
        "defaults:\n  queue: {capacity: 64}\nkernels:\n"
        "  source:\n    entry: orchestrator.applykernels:numbered\n"
        f'    params: {{rate: {rate}, report: "{folder}/source.json"}}\n'
        "  sink:\n    entry: orchestrator.applykernels:collect\n"
        f'    params: {{label: "{label}", report: "{folder}/sink.json"}}\n'
        + ("" if keep_state else "    keep_state: false\n")
        + "queues:\n  - {from: source, to: sink}\n"
    )
    return path


def test_apply_changes_params_live_on_ray(ringctl: Ringctl, ray_head: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="rc-seq-", dir="/tmp"))
    path = _seq_topology(folder, "one")
    ringctl("up", str(path), "-d", "--address", ray_head)
    seq = lambda: json.loads(ringctl("ps", "seq", "--json").stdout)  # noqa: E731
    got = lambda: int(_kernel(seq(), "sink")["metrics"].get("received", 0))  # noqa: E731
    wait_for(lambda: got() > 50, what="the sink receives")

    applied = ringctl("apply", str(_seq_topology(folder, "two", rate=300)), ok=False)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "params.label 'one' -> 'two' (restart, ctx.state kept)" in applied.stdout
    status = seq()
    assert (_kernel(status, "sink")["metrics"]["label"], _kernel(status, "sink")["restarts"]) == (
        "two", 1,
    )  # fmt: skip
    assert _kernel(status, "source")["metrics"]["rate"] == 300
    before = got()
    assert before > 50  # the restarted sink went on counting from its kept state

    applied = ringctl("apply", str(_seq_topology(folder, "three", rate=300, keep_state=False)))
    assert "ctx.state reset (keep_state: false)" in applied.stdout
    wait_for(lambda: _kernel(seq(), "sink")["metrics"]["label"] == "three", what="the label")
    assert got() < before  # a new, empty state
    assert ringctl("down", "seq", "--timeout", "20").returncode == 0
    sent = json.loads((folder / "source.json").read_text())["sent"]
    report = json.loads((folder / "sink.json").read_text())
    assert report["label"] == "three"
    # The numbers the fresh state saw are the tail of the sequence, each once.
    tail = report["seen"]
    assert tail and tail == list(range(sent - len(tail) + 1, sent + 1))
    (run,) = json.loads(ringctl("ps", "-a", "--json").stdout)["finished"]
    assert (run["outcome"], run["exit_code"]) == ("stopped", 0), run
    shutil.rmtree(folder, ignore_errors=True)


def _sinks_topology(folder: Path, queues: dict[str, int], source: str = "") -> Path:
    """The numbered source feeding one ``collect`` sink per entry of ``queues`` (the
    sink's id: the capacity of its queue); ``source``: more of the source's params."""
    tests = REPO / "tests"
    path = folder / "seq.yaml"
    sinks = "".join(
        f"  {kid}:\n    entry: orchestrator.applykernels:collect\n"
        f'    params: {{label: "{kid}", report: "{folder}/{kid}.json"}}\n'
        for kid in queues
    )
    path.write_text(
        f'version: 1\nname: seq\npython_path: ["{tests}"]\nengine: ray\n'
        "defaults:\n  queue: {capacity: 64}\nkernels:\n"
        "  source:\n    entry: orchestrator.applykernels:numbered\n"
        f'    params: {{rate: 400, report: "{folder}/source.json"{source}}}\n'
        + sinks
        + "queues:\n"
        + "".join(f"  - {{from: source, to: {kid}, capacity: {n}}}\n" for kid, n in queues.items())
    )
    return path


def test_apply_adds_removes_moves_and_retunes_on_ray(ringctl: Ringctl, ray_head: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="rc-seq-", dir="/tmp"))
    status = lambda: json.loads(ringctl("ps", "seq", "--json").stdout)  # noqa: E731
    got = lambda kid: int(_kernel(status(), kid)["metrics"].get("received", 0))  # noqa: E731
    try:
        path = _sinks_topology(folder, {"old": 64})
        ringctl("up", str(path), "-d", "--address", ray_head)
        wait_for(lambda: got("old") > 50, what="old receives")

        # A kernel added, the queue moved to it while the source sends, the old one removed.
        _sinks_topology(folder, {"new": 64})
        plan = ringctl("diff", "seq", str(path), ok=False)
        assert plan.returncode == 1, plan.stderr
        assert plan.stdout.splitlines()[1:] == [
            "  ~ queue source.out: old -> new (producer switched; what old holds drains there)",
            "  - kernel old: drained, then terminated (what it holds is counted)",
            f"seq vs {path}: 3 changes",
        ]
        applied = ringctl("apply", str(path), ok=False)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert applied.stdout.splitlines()[-1] == f"applied {path}: 3 changes"
        assert [k["id"] for k in status()["kernels"]] == ["new", "source"]
        wait_for(lambda: got("new") > 50, what="new receives")

        # A queue retuned, and a kernel added with a queue of its own.
        _sinks_topology(folder, {"new": 16, "extra": 64})
        applied = ringctl("apply", str(path), ok=False)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "  ~ queue source.out -> new: capacity 64 -> 16 (applied live)" in applied.stdout
        queues = {q["to"]: q for q in status()["queues"]}
        assert (queues["new"]["capacity"], queues["extra"]["capacity"]) == (16, 64)
        wait_for(lambda: got("extra") > 50, what="extra receives")

        # ... and removed again, with its queue: what it held is processed first.
        _sinks_topology(folder, {"new": 16})
        applied = ringctl("apply", str(path), ok=False)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "  - queue source.out -> extra: removed (with its consumer)" in applied.stdout
        assert ringctl("diff", "seq", str(path), ok=False).returncode == 0  # it matches its file

        # A kernel whose set-up hook raises: nothing changes, exit 1.
        broken = folder / "broken.yaml"
        broken.write_text(
            path.read_text()
            .replace("kernels:\n", "kernels:\n  broken:\n    entry: orchestrator.testkernels:"
                     "setup_fails\n")
            .replace("queues:\n", "queues:\n  - {from: source, to: broken}\n")
        )  # fmt: skip
        failed = ringctl("apply", "--name", "seq", str(broken), ok=False)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "apply failed at `+ kernel broken" in failed.stderr
        assert "seq runs as before" in failed.stderr
        assert [k["id"] for k in status()["kernels"]] == ["new", "source"]
        assert ringctl("diff", "seq", str(path), ok=False).returncode == 0
        down = ringctl("down", "seq", "--json", "--timeout", "20", ok=False)
        assert down.returncode == 0, down.stdout + down.stderr
        assert json.loads(down.stdout)["messages_left"] == 0
        (run,) = json.loads(ringctl("ps", "-a", "--json").stdout)["finished"]
        assert (run["outcome"], run["exit_code"]) == ("stopped", 0), run

        sent = json.loads((folder / "source.json").read_text())["sent"]
        seen = {kid: json.loads((folder / f"{kid}.json").read_text())["seen"]
                for kid in ("old", "new", "extra")}  # fmt: skip
        assert seen["old"] and seen["new"]
        assert sorted(seen["old"] + seen["new"]) == list(range(1, sent + 1))  # each once
        # The broadcast copy the extra kernel took while wired: a run of numbers, each once.
        extra = seen["extra"]
        assert extra == list(range(extra[0], extra[0] + len(extra))) and extra[-1] < sent
    finally:
        ringctl("down", "seq", "--timeout", "5", ok=False)
        shutil.rmtree(folder, ignore_errors=True)


def test_apply_on_ray_refuses_a_queue_change_a_blocked_producer_cannot_take(
    ringctl: Ringctl, ray_head: str
) -> None:
    """A producer whose kernel holds its actor's event loop cannot switch a queue: the
    apply says so at once and changes nothing, instead of holding the supervisor."""
    folder = Path(tempfile.mkdtemp(prefix="rc-blk-", dir="/tmp"))
    trigger = folder / "block"
    status = lambda: json.loads(ringctl("ps", "seq", "--json").stdout)  # noqa: E731
    got = lambda kid: int(_kernel(status(), kid)["metrics"].get("received", 0))  # noqa: E731
    more = f', trigger: "{trigger}", block: 6'
    try:
        path = _sinks_topology(folder, {"old": 64}, more)
        ringctl("up", str(path), "-d", "--address", ray_head)
        wait_for(lambda: got("old") > 20, what="old receives")
        _sinks_topology(folder, {"old": 16}, more)  # a retune: it needs the source's actor
        trigger.touch()
        wait_for(lambda: not trigger.exists(), what="the source blocks")
        t0 = time.monotonic()
        refused = ringctl("apply", str(path), ok=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "'source' did not answer" in refused.stderr, refused.stderr
        assert time.monotonic() - t0 < 5.0, refused.stderr  # while the source still blocks
        assert "seq runs as before" in refused.stderr, refused.stderr
        assert status()["queues"][0]["capacity"] == 64
        before = got("old")
        wait_for(lambda: got("old") > before + 20, timeout=30, what="the source sends again")
        applied = ringctl("apply", str(path), ok=False)  # free again: the change goes through
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert status()["queues"][0]["capacity"] == 16
        down = ringctl("down", "seq", "--json", "--timeout", "20", ok=False)
        assert down.returncode == 0, down.stdout + down.stderr
        sent = json.loads((folder / "source.json").read_text())["sent"]
        seen = json.loads((folder / "old.json").read_text())["seen"]
        assert sorted(seen) == list(range(1, sent + 1))  # each once
    finally:
        ringctl("down", "seq", "--timeout", "5", ok=False)
        shutil.rmtree(folder, ignore_errors=True)
