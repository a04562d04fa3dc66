"""The control socket for real: a supervisor serving in this process, clients connecting
to its Unix socket (the blocking CLI client runs in a thread, as another process would)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from orchestrator.harness import pid_alive, private_dir, wait_for
from orchestrator.testkernels import tally, ticker

from ringctl.control import protocol
from ringctl.control.client import ControlClient, find, running
from ringctl.control.paths import StateDir, state_dir
from ringctl.control.server import AlreadyRunningError, ControlServer
from ringctl.exceptions import ControlPlaneError, TopologyNotRunningError, UserInputError
from ringctl.orchestrator import EdgePlan, KernelPlan, Plan, Supervisor
from ringctl.orchestrator.service import SupervisorTarget


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Served:
    """A running supervisor with its control server, and a client for it."""

    def __init__(self, sup: Supervisor, server: ControlServer, directory: StateDir) -> None:
        self.sup, self.server, self.directory = sup, server, directory
        self.files = server.files
        self.client = ControlClient(self.files, timeout=5.0)

    async def request(self, op: str, **args: Any) -> Any:
        return await asyncio.to_thread(self.client.request, op, **args)

    async def raw(self, *lines: bytes) -> list[dict[str, Any]]:
        """Send raw request lines on one connection; one reply per line."""

        def talk() -> list[dict[str, Any]]:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5.0)
                sock.connect(str(self.files.socket))
                reader = sock.makefile("rb")
                replies = []
                for line in lines:
                    sock.sendall(line)
                    replies.append(json.loads(reader.readline()))
                return replies

        return await asyncio.to_thread(talk)


def plan(name: str = "ctl") -> Plan:
    return Plan(
        name=name,
        kernels=[
            KernelPlan("sink", tally),
            KernelPlan("source", ticker, {"rate": 2000}),
        ],
        edges=[EdgePlan("source", "sink")],
    )


async def serve(directory: StateDir, name: str = "ctl") -> Served:
    sup = Supervisor(plan(name))
    directory.ensure()
    server = ControlServer(SupervisorTarget(sup), directory.files(name), watch_interval=0.05)
    await server.start()
    await sup.up()
    return Served(sup, server, directory)


async def stop(served: Served) -> None:
    if not served.sup.ended:
        await served.sup.down(timeout=2)
    await served.server.close()
    await served.sup.runtime.close()


@pytest.fixture
def short(tmp_path: Path) -> Iterator[Path]:
    with private_dir(tmp_path) as path:
        yield path


@pytest.fixture
def directory(short: Path, monkeypatch: pytest.MonkeyPatch) -> StateDir:
    monkeypatch.setenv("RINGCTL_STATE_DIR", str(short / "state"))
    return state_dir()


@pytest.fixture
async def served(directory: StateDir) -> AsyncIterator[Served]:
    s = await serve(directory)
    yield s
    await stop(s)
    assert not s.files.socket.exists() and not s.files.pid.exists()


async def test_the_directory_is_private_and_the_socket_owner_only(served: Served) -> None:
    assert mode(served.directory.path) == 0o700
    assert stat.S_ISSOCK(served.files.socket.stat().st_mode)
    assert mode(served.files.socket) == 0o600
    assert mode(served.files.pid) == 0o600
    info = json.loads(served.files.pid.read_text())
    assert (info["pid"], info["name"], info["socket"]) == (
        os.getpid(),
        "ctl",
        str(served.files.socket),
    )


async def test_ping_status_pause_and_resume_over_the_socket(served: Served) -> None:
    ping = await served.request("ping")
    assert (ping["name"], ping["state"], ping["pid"]) == ("ctl", "running", os.getpid())
    status = await served.request("status")
    assert [k["id"] for k in status["kernels"]] == ["sink", "source"]
    assert await served.request("pause", kernels=["source"]) == {
        "paused": ["source"],
        "state": "running",
    }
    assert served.sup.runtime.get_state("source").name == "DEACTIVATED"
    assert await served.request("pause") == {"paused": ["sink"], "state": "paused"}
    assert await served.request("resume") == {"resumed": ["sink", "source"], "state": "running"}
    with pytest.raises(ControlPlaneError, match="has no kernel 'nope'") as caught:
        await served.request("pause", kernels=["nope"])
    assert caught.value.hint == "its kernels are: sink, source"
    assert caught.value.exit_code == 2  # the supervisor's verdict travels: bad input


async def test_bad_requests_get_an_error_reply_and_the_connection_stays_usable(
    served: Served,
) -> None:
    replies = await served.raw(
        b"this is not json\n",
        b"[1, 2]\n",
        protocol.encode({"v": 99, "op": "ping"}),
        protocol.encode({"v": 1, "op": "explode"}),
        protocol.encode({"v": 1, "op": "ping"}),
    )
    errors = [r.get("error", {}) for r in replies[:4]]
    assert [r["ok"] for r in replies] == [False, False, False, False, True]
    assert all(e["exit_code"] == 2 for e in errors)
    assert errors[0]["message"].startswith("bad request: ")
    assert errors[1]["message"] == "bad request: a protocol message is a JSON object"
    assert errors[2]["message"] == (
        "protocol version 99 is not supported (this supervisor speaks 1)"
    )
    assert errors[3]["message"].startswith("unknown op 'explode' (known: apply, down, pause, ping")
    assert replies[4]["result"]["name"] == "ctl"


async def test_a_request_line_over_the_limit_is_refused(served: Served) -> None:
    (reply,) = await served.raw(b"x" * (protocol.MAX_LINE + 10) + b"\n")
    assert reply["ok"] is False and reply["error"]["message"] == "request too long"
    assert (await served.request("ping"))["state"] == "running"  # the server is fine


async def test_watch_streams_snapshots_until_the_topology_ends(served: Served) -> None:
    received: list[dict[str, Any]] = []

    def watch() -> None:
        for message in ControlClient(served.files, timeout=5).stream("watch", interval=0.05):
            received.append(message)

    watcher = asyncio.create_task(asyncio.to_thread(watch))
    while sum(1 for m in received if m.get("event") == "status") < 3:
        await asyncio.sleep(0.01)
    report = await served.request("down", timeout=5)
    await asyncio.wait_for(watcher, 5)
    assert report["graceful"] is True and report["state"] == "stopped"
    assert {m["event"] for m in received} == {"status", "end"}
    assert received[-1] == {"v": 1, "event": "end", "data": {"state": "stopped"}}
    assert received[0]["data"]["name"] == "ctl"


async def test_down_over_the_socket_streams_progress_while_it_drains(directory: StateDir) -> None:
    sup = Supervisor(
        Plan(
            name="slow",
            kernels=[KernelPlan("sink", tally, {"delay": 0.002}), KernelPlan("source", ticker)],
            edges=[EdgePlan("source", "sink", capacity=300)],
        )
    )
    directory.ensure()
    server = ControlServer(SupervisorTarget(sup), directory.files("slow"))
    await server.start()
    await sup.up()
    s = Served(sup, server, directory)
    try:
        while sup.runtime.queued("sink") < 250:
            await asyncio.sleep(0.01)
        events: list[dict[str, Any]] = []
        reply = await asyncio.to_thread(
            s.client.request, "down", on_event=events.append, timeout=10
        )
        assert reply["graceful"] is True and reply["messages_left"] == 0
        waiting = [w for e in events for w in e["data"]["waiting_on"]]
        assert events and all(e["event"] == "progress" for e in events)
        assert waiting[0]["kernel"] == "sink" and waiting[0]["queued"] > 0
    finally:
        await stop(s)


async def test_a_second_supervisor_of_the_same_name_is_refused(served: Served) -> None:
    twin = ControlServer(SupervisorTarget(Supervisor(plan())), served.files)
    with pytest.raises(AlreadyRunningError, match="'ctl' is already running") as caught:
        await twin.start()
    assert caught.value.exit_code == 1
    assert (await served.request("ping"))["state"] == "running"  # the first is untouched
    assert served.files.socket.exists()


async def test_a_stale_socket_is_cleaned_up_by_the_next_command(directory: StateDir) -> None:
    directory.ensure()
    files = directory.files("gone")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(files.socket))  # bound, never listening: what a killed supervisor leaves
    dead.close()
    files.pid.write_text(json.dumps({"pid": 2**22 + 12345, "name": "gone"}))
    with pytest.raises(TopologyNotRunningError) as caught:
        ControlClient(files).request("ping")
    assert caught.value.exit_code == 3
    assert caught.value.message == (
        "topology 'gone' is not running (its supervisor died; cleaned up its stale files)"
    )
    assert not files.socket.exists() and not files.pid.exists()
    assert running(directory) == []


async def test_a_stale_socket_does_not_stop_a_new_supervisor(directory: StateDir) -> None:
    directory.ensure()
    files = directory.files("ctl")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(files.socket))
    dead.close()
    s = await serve(directory)
    try:
        assert (await s.request("ping"))["pid"] == os.getpid()
    finally:
        await stop(s)


async def test_find_picks_the_only_one_running_or_asks_for_a_name(directory: StateDir) -> None:
    with pytest.raises(TopologyNotRunningError, match="no topology is running"):
        find(None, directory)
    first = await serve(directory, "first")
    try:
        found = await asyncio.to_thread(find, None, directory)
        assert found.name == "first"
        second = await serve(directory, "second")
        try:
            with pytest.raises(UserInputError, match=r"several topologies are running \(first, "):
                await asyncio.to_thread(find, None, directory)
            names = [t["name"] for t in await asyncio.to_thread(running, directory)]
            assert names == ["first", "second"]
        finally:
            await stop(second)
    finally:
        await stop(first)


def test_a_state_dir_ringctl_creates_is_private_one_it_finds_is_left_alone(
    short: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = StateDir(short / "new" / "state")
    made.ensure()
    assert mode(made.path) == 0o700
    loose = short / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    monkeypatch.setenv("RINGCTL_STATE_DIR", str(loose))
    directory = state_dir()
    assert directory.path == loose
    directory.ensure()
    assert mode(loose) == 0o755  # readable by others is the user's choice; never chmodded


def test_socket_paths_must_fit(short: Path) -> None:
    deep = StateDir(short / ("d" * 60))
    with pytest.raises(UserInputError, match="too long for a Unix socket") as caught:
        deep.files("n" * 40)
    assert caught.value.hint is not None and "RINGCTL_STATE_DIR" in caught.value.hint


def test_the_default_state_dir_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RINGCTL_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert state_dir().path == tmp_path / "ringctl"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="zombies are read from /proc")
def test_a_supervisor_that_died_unreaped_counts_as_gone(directory: StateDir) -> None:
    import subprocess

    directory.ensure()
    files = directory.files("zombie")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # A zombie: exited, not yet reaped (what a killed supervisor is under an init
        # that does not reap, e.g. a container's PID 1).
        wait_for(lambda: not pid_alive(child.pid), timeout=10, what="the child exited")
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(str(files.socket))
        dead.close()
        files.pid.write_text(json.dumps({"pid": child.pid, "name": "zombie"}))
        with pytest.raises(TopologyNotRunningError, match="cleaned up its stale files"):
            ControlClient(files).request("ping")
        assert not files.socket.exists() and not files.pid.exists()
    finally:
        child.wait()


async def test_every_malformed_request_gets_an_error_reply_and_nothing_is_logged(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    bad = [
        {"v": 1, "op": ["pause"]},
        {"v": 1, "op": "pause", "args": ["source"]},
        {"v": 1, "op": "pause", "args": {"kernels": 5}},
        {"v": 1, "op": "pause", "args": {"kernels": ["source"], "extra": 1}},
        {"v": 1, "op": "watch", "args": {"interval": "abc"}},
        {"v": 1, "op": "down", "args": {"timeout": "soon"}},
        {"v": 1, "op": "down", "args": {"timeout": -1}},
        {"v": 1, "op": "ping", "deadline": "later"},
        {"v": "1", "op": "ping"},
        {"v": True, "op": "ping"},
    ]
    lines = [protocol.encode(doc) for doc in bad]
    lines += [b"[" * 100_000 + b"\n", b'{"v": 1, "op": "down", "args": {"timeout": 1e400}}\n']
    lines.append(protocol.encode({"v": 1, "op": "ping"}))
    replies = await served.raw(*lines)
    assert [r["ok"] for r in replies] == [False] * (len(lines) - 1) + [True]
    messages = [r["error"]["message"] for r in replies[:-1]]
    assert all(r["error"]["exit_code"] == 2 for r in replies[:-1])
    assert messages[0] == "bad request: op: input should be a valid string, got list"
    assert messages[1] == "bad request: args: input should be a valid dictionary, got list"
    assert (
        messages[2] == "bad request for 'pause': args.kernels: input should be a valid list, got 5"
    )
    assert messages[3].startswith("bad request for 'pause': args.extra: extra inputs")
    assert messages[4] == (
        "bad request for 'watch': args.interval: input should be a valid number, got 'abc'"
    )
    assert messages[5].endswith("args.timeout: input should be a valid number, got 'soon'")
    assert messages[6].endswith("args.timeout: input should be greater than 0, got -1")
    assert messages[7].startswith("bad request: deadline: input should be a valid number")
    assert messages[8] == ("bad request: v must be the protocol version as an integer (1), not '1'")
    assert messages[9].startswith("bad request: v must be the protocol version")
    assert messages[10] == "bad request: nested too deeply"
    assert messages[11].endswith("args.timeout: input should be a finite number, got inf")
    assert [r for r in caplog.records if r.levelno >= 30] == []
    assert served.sup.state == "running"


def _request_in_thread(
    served: Served, op: str, timeout: float
) -> tuple[threading.Thread, list[Any]]:
    """A client in a plain thread: it runs while the test blocks the kernels' loop."""
    outcome: list[Any] = []

    def talk() -> None:
        try:
            outcome.append(ControlClient(served.files, timeout=timeout).request(op))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=talk)
    thread.start()
    return thread, outcome


async def test_the_server_answers_while_the_kernels_loop_is_blocked(served: Served) -> None:
    await served.request("status")  # a document was published
    thread, outcome = _request_in_thread(served, "status", 5.0)
    started = time.monotonic()
    time.sleep(1.0)  # noqa: ASYNC251  (the point: this test blocks the kernels' loop)
    thread.join(timeout=5)
    (status,) = outcome
    assert isinstance(status, dict) and status["name"] == "ctl"
    assert status["stale_s"] is not None and status["state"] == "running"
    assert time.monotonic() - started < 5


async def test_a_command_not_started_by_its_deadline_is_refused_and_never_applied(
    served: Served,
) -> None:
    thread, outcome = _request_in_thread(served, "pause", 1.0)
    time.sleep(1.5)  # noqa: ASYNC251  (block the kernels' loop past the client's deadline)
    thread.join(timeout=5)
    (error,) = outcome
    assert isinstance(error, ControlPlaneError) and error.exit_code == 3
    assert error.message.startswith("pause of 'ctl' not applied: ")
    await asyncio.sleep(0.2)  # the loop runs again: the handed-over pause must not run
    assert served.sup.state == "running"
    assert served.sup.runtime.get_state("source").name == "ACTIVE"
