"""The client side of the control socket (plain blocking sockets: a CLI call is one request).

``find(name)`` turns "the topology called X" (or "the only one running") into its files,
cleaning up after a supervisor that was killed without a chance to remove them.

Every request carries the client's deadline (``timeout`` from now): the supervisor never
applies a command it could not start before then. After the first reply line, each
further line (``down`` progress, ``watch`` frames) gets ``timeout`` again.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

from ringctl.control import wire
from ringctl.control.history import clean_if_stale
from ringctl.control.paths import StateDir, TopologyFiles, state_dir
from ringctl.exceptions import ControlPlaneError, TopologyNotRunningError, UserInputError

__all__ = ["ControlClient", "SupervisorDiedError", "find", "refusal", "running"]


class SupervisorDiedError(TopologyNotRunningError):
    """The topology's supervisor died before its run ended (its leftovers were just
    cleaned up, and the run recorded in the history as ``died``)."""


class ControlClient:
    def __init__(self, files: TopologyFiles, *, timeout: float = 10.0) -> None:
        self.files = files
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        if self.files.socket.exists():
            found = clean_if_stale(self.files)
            if found != "held":
                # Nobody holds the name: whatever still listens on this socket (a child
                # the dead supervisor forked, holding its fd) is no supervisor.
                raise self._not_running(found)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.files.socket))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise self._not_running() from exc
        except OSError as exc:
            sock.close()
            raise TopologyNotRunningError(
                f"cannot reach topology {self.files.name!r}: {exc}",
                hint=f"its socket is {self.files.socket}",
            ) from exc
        return sock

    def _not_running(
        self, found: Literal["held", "cleaned", "absent"] | None = None
    ) -> TopologyNotRunningError:
        """Why the socket does not answer; cleans up after a supervisor that died
        (``found``: what ``clean_if_stale`` said, if it was just called)."""
        info = self.files.read_pid() or {}
        pid = info.get("pid")
        found = found or clean_if_stale(self.files)
        if found == "held":
            who = f" (pid {pid})" if pid else ""
            return TopologyNotRunningError(
                f"the supervisor of {self.files.name!r}{who} does not answer on "
                f"{self.files.socket}",
                hint=f"see its log{': ' + str(info['log']) if info.get('log') else ''}; "
                + (f"kill {pid} if it is stuck" if pid else "it may still be starting"),
            )
        if found == "cleaned":
            return SupervisorDiedError(
                f"topology {self.files.name!r} is not running "
                "(its supervisor died; cleaned up its stale files)",
                hint=f"ringctl ps -a shows how its run ended; ringctl logs {self.files.name} "
                "what its kernels said last",
            )
        return TopologyNotRunningError(
            f"topology {self.files.name!r} is not running",
            hint="ringctl ps lists what is running; ringctl up FILE starts one",
        )

    def stream(self, op: str, **args: Any) -> Iterator[dict[str, Any]]:
        """Every line the supervisor sends for one request, until its final reply."""
        deadline = time.time() + self.timeout
        request = {"v": wire.PROTOCOL_VERSION, "op": op, "args": args, "deadline": deadline}
        with self._connect() as sock:
            try:
                sock.sendall(wire.encode(request))
                reader = sock.makefile("rb")
                while True:
                    line = reader.readline()
                    if not line:
                        return
                    try:
                        message = json.loads(line)
                    except ValueError as exc:
                        raise ControlPlaneError(
                            f"the supervisor of {self.files.name!r} sent a line that is not "
                            f"JSON ({exc})"
                        ) from None
                    yield message
                    if "ok" in message or message.get("event") == "end":
                        return
            except TimeoutError as exc:
                pid = (self.files.read_pid() or {}).get("pid")
                raise TopologyNotRunningError(
                    f"the supervisor of {self.files.name!r}"
                    + (f" (pid {pid})" if pid else "")
                    + f" did not answer within {self.timeout:g}s",
                    hint="a command it had not started by then will not be applied; "
                    "see its log, or give it longer with --wait",
                ) from exc
            except ConnectionError as exc:
                raise TopologyNotRunningError(
                    f"the supervisor of {self.files.name!r} closed the connection ({exc})"
                ) from exc

    def request(
        self, op: str, *, on_event: Callable[[dict[str, Any]], None] | None = None, **args: Any
    ) -> Any:
        """Send one request; return its result or raise its error (with its exit code)."""
        for message in self.stream(op, **args):
            if "ok" not in message:
                if on_event is not None:
                    on_event(message)
                continue
            if message["ok"]:
                return message.get("result")
            raise refusal(message)
        raise TopologyNotRunningError(
            f"the supervisor of {self.files.name!r} closed the connection without a reply"
        )


def refusal(reply: dict[str, Any]) -> ControlPlaneError:
    """The error a ``{"ok": false, "error": ...}`` reply carries, with its exit code."""
    error = reply.get("error") or {}
    exc = ControlPlaneError(str(error.get("message")), hint=error.get("hint"))
    exc.exit_code = int(error.get("exit_code", 1))
    return exc


#: How long ``running`` waits for each supervisor's ping.
PING_TIMEOUT_S = 1.0


def running(
    directory: StateDir | None = None, *, died: list[str] | None = None
) -> list[dict[str, Any]]:
    """Every topology whose supervisor is alive: its ping, or, for one that does not
    answer (stopped, or stuck), ``state: "not responding"`` with its pid and age from the
    pid file. Leftovers of dead supervisors are cleaned up on the way (their runs go into
    the history as ``died``); ``died`` gets their names."""
    directory = directory or state_dir()
    found = []
    for name in directory.names():
        try:
            files = directory.files(name)
        except UserInputError:
            continue  # not a name ringctl would have made: not ours
        try:
            found.append(ControlClient(files, timeout=PING_TIMEOUT_S).request("ping"))
        except SupervisorDiedError:
            if died is not None:
                died.append(name)
        except (TopologyNotRunningError, ControlPlaneError):
            state = clean_if_stale(files)
            if state == "held":
                found.append(_not_responding(files))
            elif state == "cleaned" and died is not None:
                died.append(name)
    return found


def _not_responding(files: TopologyFiles) -> dict[str, Any]:
    info = files.read_pid() or {}
    started = info.get("started")
    age = time.time() - started if isinstance(started, int | float) else None
    return {
        "name": files.name,
        "pid": info.get("pid"),
        "state": "not responding",
        "file": info.get("file"),
        "uptime_s": round(age, 3) if age is not None else None,
        "log": info.get("log"),
    }


def find(name: str | None, directory: StateDir | None = None) -> TopologyFiles:
    """The files of the named topology, or of the only one running."""
    directory = directory or state_dir()
    if name:
        files = directory.files(name)
        directory.check()
        return files
    alive = running(directory)
    if len(alive) == 1:
        return directory.files(str(alive[0]["name"]))
    if not alive:
        raise TopologyNotRunningError(
            "no topology is running",
            hint="start one with: ringctl up FILE (add -d to detach)",
        )
    names = ", ".join(str(t["name"]) for t in alive)
    raise UserInputError(
        f"several topologies are running ({names}); name the one you mean",
        hint="e.g. ringctl ps NAME",
    )
