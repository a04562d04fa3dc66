"""``ringctl up -d``: start the supervisor as its own process and wait until it is up.

The child is ``ringctl up FILE --no-dashboard`` in a new session, with its output going
to the name's log in the state directory; ``DETACHED_ENV`` tells it so (its log records
then go to that stream rather than to the file a second time). The parent returns once
the child's supervisor answers on its socket with a live state, or when the child ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from ringctl.control.client import ControlClient
from ringctl.control.history import clean_if_stale, read_history
from ringctl.control.paths import StateDir, state_dir
from ringctl.exceptions import RingctlError, RunFailedError

__all__ = ["DETACHED_ENV", "Detached", "start_detached"]

#: Set in the detached supervisor's environment.
DETACHED_ENV: Final = "RINGCTL_DETACHED"
_UP_STATES: Final = ("running", "paused", "completed", "draining")


@dataclass(frozen=True, slots=True)
class Detached:
    """How a detached start went.

    ``up``: running in the background; ``completed``: it ran to completion (exit 0)
    before it could detach; ``stopped``: a ``down`` came during its launch, which was
    stopped and rolled back (exit 0); ``failed``: the child exited with ``exit_code`` (its log's
    last lines in ``log_tail``); ``timeout``: not up within the wait.
    """

    name: str
    outcome: Literal["up", "completed", "stopped", "failed", "timeout"]
    pid: int
    log: Path
    exit_code: int | None = None
    log_tail: str = ""


def start_detached(
    file: Path,
    name: str,
    *,
    duration: float | None = None,
    timeout: float = 10.0,
    engine: str | None = None,
    address: str | None = None,
    wait_s: float = 120.0,
) -> Detached:
    """Start ``ringctl up FILE`` in the background under ``name``; wait until it is up.

    Raises ``RunFailedError`` when the name is already running or its log cannot be
    written (nothing started then).
    """
    directory = state_dir()
    directory.ensure()
    files = directory.files(name)
    if clean_if_stale(files) == "held":
        raise RunFailedError(
            f"topology {name!r} is already running",
            hint=f"ringctl down {name}, or run a second copy: ringctl up {file} --name {name}-2",
        )
    args = [sys.executable, "-m", "ringctl.cli", "up", str(file), "--no-dashboard",
            "--timeout", str(timeout), "--interval", "5", "--name", name]  # fmt: skip
    for option, value in (("--duration", duration), ("--engine", engine), ("--address", address)):
        if value is not None:
            args += [option, str(value)]
    try:
        fd = os.open(files.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} ringctl up -d {file}\n".encode())
            log.flush()
            child = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, DETACHED_ENV: "1"},
            )
    except OSError as exc:  # a full disk, say: nothing was started
        raise RunFailedError(
            f"cannot write the log of {name!r} ({files.log}): {exc.strerror or exc}; "
            "nothing was started",
            hint="free some space, or set RINGCTL_STATE_DIR to another directory",
        ) from None
    client = ControlClient(files, timeout=2.0)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        code = child.poll()
        if code is not None:
            if code == 0:
                if _stopped_during_launch(directory, name, child.pid):
                    return Detached(name, "stopped", child.pid, files.log, 0)
                return Detached(name, "completed", child.pid, files.log, 0)
            return Detached(name, "failed", child.pid, files.log, code, _log_tail(files.log))
        if files.socket.exists():
            try:
                ping = client.request("ping")
            except RingctlError:
                ping = {}
            # Only our own child counts: a twin `up -d` racing this one may hold the name,
            # and then our child is about to exit saying so.
            if ping.get("pid") == child.pid and ping.get("state") in _UP_STATES:
                _reap_later(child)
                return Detached(name, "up", child.pid, files.log)
        time.sleep(0.02)
    _reap_later(child)
    return Detached(name, "timeout", child.pid, files.log)


def _stopped_during_launch(directory: StateDir, name: str, pid: int) -> bool:
    """True if the history (``ringctl ps -a``) says the run of ``name`` that process
    ``pid`` supervised was stopped during its launch."""
    runs = [e for e in read_history(directory) if e.get("name") == name and e.get("pid") == pid]
    return bool(runs) and runs[-1].get("launch_stopped") is True


def _reap_later(child: subprocess.Popen[bytes]) -> None:
    """The supervisor runs on; a long-lived caller collects its exit status whenever it
    ends (no zombie left behind), and the process object is never dropped while it runs."""
    threading.Thread(target=child.wait, name="ringctl-detached", daemon=True).start()


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
