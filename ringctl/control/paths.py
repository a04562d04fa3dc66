"""Where running topologies keep their socket, pid file and log: the private state dir.

``RINGCTL_STATE_DIR`` overrides the default (``$XDG_STATE_HOME/ringctl``, else
``~/.local/state/ringctl``). A directory ringctl creates is made mode 0700; one that
exists already is used as it is, provided it is the user's own and nobody else can
write to it (ringctl never changes the mode of a directory it did not create). Sockets,
pid files and logs are 0600, so only the user who started a topology can control it.
Every name is checked (``ringctl.checks.check_name``) before it becomes a path.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringctl.checks import check_name
from ringctl.exceptions import UserInputError

__all__ = [
    "StateDir",
    "TopologyFiles",
    "claim_name",
    "forget_lock",
    "release_name",
    "state_dir",
]

#: sun_path is 108 bytes on Linux (104 on macOS), NUL included.
_MAX_SOCKET_PATH = 103


_HINT = "set RINGCTL_STATE_DIR to a directory of your own, e.g. mkdir -m 700 /tmp/ringctl-$USER"


def state_dir() -> StateDir:
    """The state directory this process uses (not created, not checked yet)."""
    override = os.environ.get("RINGCTL_STATE_DIR")
    if override:
        try:
            return StateDir(Path(override).expanduser())
        except RuntimeError:  # `~someone` for an unknown user, or `~` with no home
            raise UserInputError(
                f"RINGCTL_STATE_DIR={override!r}: cannot find the home folder it names",
                hint=_HINT,
            ) from None
    xdg = os.environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec: a relative value is ignored
        return StateDir(Path(xdg) / "ringctl")
    home = os.environ.get("HOME")
    if home is None:
        try:
            home = str(Path.home())
        except (RuntimeError, KeyError):
            home = ""
    if not os.path.isabs(home):
        # An empty or relative HOME would put the state directory under the current one.
        raise UserInputError(
            f"cannot find a state directory: HOME is {repr(home) if home else 'not set'}",
            hint=_HINT,
        )
    return StateDir(Path(home) / ".local" / "state" / "ringctl")


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
        """Locked (a POSIX record lock) by the supervisor for as long as it runs, from
        before it makes the socket until after it removed it; the kernel unlocks it when
        the supervisor dies, whatever children it forked (see ``claim_name``)."""
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


#: The lock files this process holds: fd -> (st_dev, st_ino). A POSIX lock never
#: conflicts with its own process, and closing *any* fd of the file drops it, so the
#: process must never open a lock file it holds; this says which those are.
_held: dict[int, tuple[int, int]] = {}
_held_guard = threading.Lock()


def claim_name(files: TopologyFiles) -> int | None:
    """Take the name's lock (``NAME.lock``); its fd, or None if someone holds it.

    A lock rather than "does the socket answer?": two ``up`` racing each other, or a
    live supervisor too busy to answer a ping in time, must never both get the name
    (binding a Unix socket removes the old one, orphaning its supervisor). It is a POSIX
    record lock (``lockf``), owned by the process that took it: the kernel drops it when
    that process dies, and a child it forked (a kernel's ``multiprocessing`` helper, say)
    never holds it, so a supervisor killed with -9 frees its name at once even while
    its children live on (an ``flock`` would be shared with them). Lock files are
    removed by whoever releases them (``release_name``), so a lock taken on a file that
    was unlinked meanwhile is worthless: then it tries again.
    """
    while True:
        with _held_guard:
            try:
                here = os.stat(files.lock)
            except FileNotFoundError:
                pass
            else:
                if (here.st_dev, here.st_ino) in _held.values():
                    return None  # this very process holds it
            fd = os.open(files.lock, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return None
            held = os.fstat(fd)
            try:
                same = os.stat(files.lock).st_ino == held.st_ino
            except FileNotFoundError:
                same = False
            if same:
                _held[fd] = (held.st_dev, held.st_ino)
                return fd
            os.close(fd)  # released by someone who removed the file: take the new one


def release_name(files: TopologyFiles, fd: int) -> None:
    """Remove the lock file and release the lock (in that order: see ``claim_name``).

    A lock file that is no longer ``fd``'s (removed, and maybe taken anew by another
    run) is left alone."""
    with _held_guard:
        key = _held.pop(fd, None)
        with contextlib.suppress(FileNotFoundError):
            here = os.stat(files.lock)
            if key is None or (here.st_dev, here.st_ino) == key:
                files.lock.unlink()
        os.close(fd)


def forget_lock(fd: int) -> None:
    """Close a lock fd whose file was removed (its lock guarded nothing any more)."""
    with _held_guard:
        _held.pop(fd, None)
        os.close(fd)


@dataclass(frozen=True, slots=True)
class StateDir:
    path: Path

    def ensure(self) -> Path:
        """Create the directory (0700), or check the one that is there (``check``)."""
        try:
            self.path.mkdir(parents=True, mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise UserInputError(
                f"cannot create the state directory {self.path}: {exc.strerror or exc}",
                hint=_HINT,
            ) from None
        self.check()
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise UserInputError(f"the state directory {self.path} is not writable", hint=_HINT)
        return self.path

    def check(self) -> bool:
        """False if there is no directory yet; a ``UserInputError`` if it is not one
        ringctl may use: not a directory, someone else's, or writable by others (who
        could then replace a topology's socket with their own)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise UserInputError(
                f"cannot use the state directory {self.path}: {exc.strerror or exc}", hint=_HINT
            ) from None
        mode = stat.S_IMODE(st.st_mode)
        others = (
            f"is writable by others (mode {mode:o}); ringctl will not keep control sockets there"
        )
        for bad, problem in (
            (not stat.S_ISDIR(st.st_mode), "is not a directory"),
            (st.st_uid != os.getuid(), f"belongs to another user (uid {st.st_uid})"),
            (mode & 0o022, others),
        ):
            if bad:
                raise UserInputError(f"the state directory {self.path} {problem}", hint=_HINT)
        # Every command that looks here also frees the shared memory of runs whose
        # supervisor was killed together with its workers (nobody else could).
        from ringctl.engine.local.persistent.leftovers import reclaim

        reclaim()
        return True

    def files(self, name: str) -> TopologyFiles:
        check_name(name)
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
        if not self.check():
            return []
        return sorted({p.stem for kind in ("*.sock", "*.pid") for p in self.path.glob(kind)})
