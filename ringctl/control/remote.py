"""A running topology reached by name from any process: what ``ringctl ps``, ``pause``,
``resume``, ``restart``, ``scale``, ``tap``, ``top`` and ``down`` call (``ringctl.api``).

Each call is one request over the supervisor's Unix socket; the answers are the
JSON documents ``--json`` prints. Errors are ``RingctlError``s with their exit code
(3: not running or not answering).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringctl.checks import check_name
from ringctl.control.client import ControlClient, find, refusal
from ringctl.control.client import running as _running
from ringctl.control.history import clean_if_stale, read_applies, read_history
from ringctl.control.paths import TopologyFiles, state_dir
from ringctl.exceptions import TopologyNotRunningError


class Running:
    """One running topology's supervisor; ``timeout`` bounds the wait for each answer."""

    def __init__(self, files: TopologyFiles, timeout: float = 10.0) -> None:
        self._files = files
        self._client = ControlClient(files, timeout=timeout)

    @property
    def name(self) -> str:
        return self._files.name

    def _ask(self, op: str, wait: float | None = None, /, **args: Any) -> dict[str, Any]:
        """One request; ``wait``: a command's own timeout, which its answer may take."""
        client = self._client if wait is None else ControlClient(self._files, timeout=wait + 30)
        answer: dict[str, Any] = client.request(op, **args)
        return answer

    def ping(self) -> dict[str, Any]:
        """Name, state, pid, uptime: answered even while the kernels' loop is busy."""
        return self._ask("ping")

    def status(self) -> dict[str, Any]:
        """The status document (``ringctl ps NAME --json``)."""
        return self._ask("status")

    def pause(self, kernels: list[str] | None = None) -> dict[str, Any]:
        """Deactivate every kernel, or those named: ``{"paused": [...]}``."""
        return self._ask("pause", **({"kernels": kernels} if kernels else {}))

    def resume(self, kernels: list[str] | None = None) -> dict[str, Any]:
        """Reactivate paused kernels: ``{"resumed": [...]}``."""
        return self._ask("resume", **({"kernels": kernels} if kernels else {}))

    def down(
        self,
        timeout: float = 10.0,
        *,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        wait_gone_s: float = 10.0,
    ) -> dict[str, Any]:
        """Drain and terminate (``timeout`` per kernel before a force stop); the drain's
        report. ``on_progress`` gets each progress document (``waiting_on``) as the
        drain goes. Returns once the supervisor removed its files (at most
        ``wait_gone_s`` later), so an ``up`` of the same name works next."""

        def event(message: dict[str, Any]) -> None:
            if on_progress is not None:
                on_progress(message.get("data") or {})

        report: dict[str, Any] = self._client.request("down", on_event=event, timeout=timeout)
        deadline = time.monotonic() + wait_gone_s
        files = self._files
        while time.monotonic() < deadline and (files.socket.exists() or files.pid.exists()):
            time.sleep(0.02)
        return report

    def restart(self, kernels: list[str], timeout: float = 5.0) -> dict[str, Any]:
        """Stop and relaunch kernels (``timeout`` each to stop): ``{"restarted": [...]}``."""
        return self._ask("restart", timeout, kernels=kernels, timeout=timeout)

    def scale(self, kernel: str, replicas: int, timeout: float = 5.0) -> dict[str, Any]:
        """Change a kernel's replica count: ``{"kernel", "before", "after"}``."""
        return self._ask("scale", timeout, kernel=kernel, replicas=replicas, timeout=timeout)

    def tap(
        self, kernel: str, port: str = "out", count: int | None = None
    ) -> Generator[dict[str, Any] | None, None, dict[str, Any]]:
        """Sample the messages leaving ``kernel.port``: yields each ``message`` document
        (``n``, ``t``, ``missed``, ``value``) and ``None`` once per lull; returns the
        tap's summary (``messages``, ``ended``) as the generator's value."""
        for message in self._client.stream("tap", kernel=kernel, port=port, count=count):
            if "ok" in message:
                if not message["ok"]:
                    raise refusal(message)
                summary: dict[str, Any] = message.get("result") or {}
                return summary
            if message.get("event") == "waiting":
                yield None
            elif message.get("event") == "message":
                yield message.get("data") or {}
        raise TopologyNotRunningError(
            f"the supervisor of {self.name!r} closed the connection during the tap",
            hint=f"ringctl ps -a shows how the run ended; ringctl logs {self.name} what it said",
        )

    def watch(self, interval: float) -> Iterator[dict[str, Any]]:
        """A status document every ``interval`` seconds until the run ends (the last one
        is the run's final document)."""
        for message in self._client.stream("watch", interval=interval):
            if message.get("event") == "status":
                yield message.get("data") or {}


def connect(name: str | None = None, *, timeout: float = 10.0) -> Running:
    """The running topology of that name, or the only one running (raises when none, or
    when several run and no name says which)."""
    return Running(find(check_name(name) if name is not None else None), timeout)


def listing(died: list[str] | None = None) -> list[dict[str, Any]]:
    """Every running topology's ping (a stuck one as ``state: "not responding"``); the
    names of supervisors found dead on the way go into ``died``."""
    return _running(died=died)


def finished() -> list[dict[str, Any]]:
    """Runs that ended (outcome, exit code, duration, end), newest first."""
    return list(reversed(read_history(state_dir())))


def applies() -> list[dict[str, Any]]:
    """The ``ringctl apply`` runs that changed a topology, newest first."""
    return list(reversed(read_applies(state_dir())))


def names() -> list[str]:
    """The topology names the state directory holds files of (running or not)."""
    return state_dir().names()


def last_run(name: str) -> dict[str, Any] | None:
    """The newest history entry of that name, if any."""
    return next((e for e in reversed(read_history(state_dir())) if e.get("name") == name), None)


@dataclass(frozen=True, slots=True)
class KernelLog:
    """A topology's kernel log (JSON lines of what its kernels printed, logged, raised)."""

    name: str
    path: Path
    files: TopologyFiles

    def running(self) -> bool:
        """Whether a supervisor still holds the name (so the log may still grow)."""
        return clean_if_stale(self.files) == "held"


def kernel_log(name: str | None) -> KernelLog:
    """The kernel log of that name (the only one running when ``None``); it outlives the
    run. Raises when that name never ran from this state directory."""
    directory = state_dir()
    if name is None:
        name = find(None, directory).name
    files = directory.files(check_name(name))
    if not files.kernel_log.exists():
        raise TopologyNotRunningError(
            f"no kernel log for topology {name!r}: it has not run from {directory.path}",
            hint="ringctl ps -a lists the runs this state directory knows",
        )
    return KernelLog(name, files.kernel_log, files)
