"""Where running topologies keep their socket, pid file and log: the private state dir.

``RINGCTL_STATE_DIR`` overrides the default (``$XDG_STATE_HOME/ringctl``, else
``~/.local/state/ringctl``). The directory is made mode 0700 and each socket 0600, so only
the user who started a topology can control it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ringctl.exceptions import UserInputError

__all__ = ["StateDir", "TopologyFiles", "state_dir"]

#: sun_path is 108 bytes on Linux (104 on macOS), NUL included.
_MAX_SOCKET_PATH = 103


def state_dir() -> StateDir:
    override = os.environ.get("RINGCTL_STATE_DIR")
    if override:
        return StateDir(Path(override).expanduser())
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return StateDir(Path(base) / "ringctl")


@dataclass(frozen=True, slots=True)
class TopologyFiles:
    """The files one running topology owns in the state directory."""

    name: str
    socket: Path
    pid: Path
    log: Path

    def read_pid(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.pid.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @property
    def lock(self) -> Path:
        """Locked (``flock``) by the supervisor for as long as it runs, from before it
        makes the socket until after it removed it; the kernel unlocks it if it dies."""
        return self.pid.with_suffix(".lock")

    @property
    def kernel_log(self) -> Path:
        """What the kernels printed, logged and raised (JSON lines, ``ringctl logs``).

        Kept after the run ends; the next run of the same name starts it afresh."""
        return self.pid.with_name(f"{self.name}.kernels.jsonl")

    def remove(self) -> None:
        for path in (self.socket, self.pid):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def clean_if_stale(self) -> Literal["held", "cleaned", "absent"]:
        """``held`` if a supervisor holds the name (running, starting or too busy to
        answer); otherwise remove what a dead one left: ``cleaned``, or ``absent``.

        The check and the removal happen under the lock, so a supervisor that is
        starting (socket bound, pid file not yet written) is never mistaken for a dead
        one and has its socket deleted under it.
        """
        try:
            fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            return "absent"  # no state directory: nothing was ever here
        except OSError:
            return "held"  # cannot tell: leave it alone
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return "held"
            leftovers = self.socket.exists() or self.pid.exists()
            self.remove()
            return "cleaned" if leftovers else "absent"
        finally:
            os.close(fd)


@dataclass(frozen=True, slots=True)
class StateDir:
    path: Path

    def ensure(self) -> Path:
        """Create the directory (0700) and refuse one that others can read or write."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = stat.S_IMODE(self.path.stat().st_mode)
        if mode & 0o077:
            try:
                self.path.chmod(0o700)
            except OSError as exc:
                raise UserInputError(
                    f"state directory {self.path} is mode {mode:o} and cannot be made private",
                    hint="set RINGCTL_STATE_DIR to a directory you own",
                ) from exc
        return self.path

    def files(self, name: str) -> TopologyFiles:
        files = TopologyFiles(
            name,
            self.path / f"{name}.sock",
            self.path / f"{name}.pid",
            self.path / f"{name}.log",
        )
        if len(os.fsencode(files.socket)) > _MAX_SOCKET_PATH:
            raise UserInputError(
                f"the socket path {files.socket} is too long for a Unix socket "
                f"({len(os.fsencode(files.socket))} bytes, at most {_MAX_SOCKET_PATH})",
                hint="set RINGCTL_STATE_DIR to a shorter directory, e.g. /tmp/ringctl-$USER",
            )
        return files

    def names(self) -> list[str]:
        """Names that have a socket or pid file here (running, or stale and not yet cleaned)."""
        if not self.path.is_dir():
            return []
        found = {p.stem for p in self.path.glob("*.sock")} | {
            p.stem for p in self.path.glob("*.pid")
        }
        return sorted(found)
