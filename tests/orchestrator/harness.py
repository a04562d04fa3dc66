"""Running ``ringctl`` as a user does, in a private state directory, leaving nothing behind.

``Ringctl`` runs commands as subprocesses with its own ``RINGCTL_STATE_DIR`` (short
enough for a Unix socket path) and remembers every supervisor it saw, so ``cleanup``
can bring each one down (``ringctl down``, then ``SIGKILL`` if it does not go) and
check that no supervisor process outlives the test. Waits are on a condition with a
deadline (``wait_for``), never a sleep for luck.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
TOPOLOGIES = Path(__file__).resolve().parent / "topologies"
#: sun_path holds 108 bytes on Linux; the state dir's socket names must fit.
_ROOM_FOR_NAMES = 40

T = TypeVar("T")

__all__ = [
    "REPO",
    "TOPOLOGIES",
    "Ringctl",
    "become_subreaper",
    "pid_alive",
    "private_dir",
    "ringctl_for",
    "short_dir",
    "wait_for",
]


def wait_for(condition: Callable[[], T], *, timeout: float = 10.0, what: str = "") -> T:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {timeout:g}s: {what or condition}")
        time.sleep(0.01)


def short_dir(tmp_path: Path) -> Path:
    """A fresh private directory whose socket paths fit in ``sun_path``."""
    candidate = tmp_path / "st"
    if len(os.fsencode(candidate)) + _ROOM_FOR_NAMES <= 103:
        candidate.mkdir(mode=0o700)
        return candidate
    return Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp"))


@contextlib.contextmanager
def private_dir(tmp_path: Path) -> Iterator[Path]:
    """``short_dir`` that is removed afterwards when it had to live outside ``tmp_path``."""
    path = short_dir(tmp_path)
    try:
        yield path
    finally:
        if not path.is_relative_to(tmp_path):
            shutil.rmtree(path, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def become_subreaper(on: bool = True) -> bool:
    """Make this process the reaper of its orphaned descendants (Linux), so that a
    detached supervisor that exits (or is killed) is reaped by the test instead of
    lingering as a zombie where PID 1 does not reap (a container's, say)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(36, int(on), 0, 0, 0) == 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our (adopted) child; ignore it otherwise."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


class Ringctl:
    """The ``ringctl`` command bound to one private state directory."""

    def __init__(self, state: Path, *, report_dir: Path | None = None) -> None:
        self.state = state
        self.report_dir = report_dir or state
        self.env = {
            **os.environ,
            "RINGCTL_STATE_DIR": str(state),
            "RC_REPORT_DIR": str(self.report_dir),
            "PYTHONUNBUFFERED": "1",
        }
        self.popens: list[subprocess.Popen[str]] = []
        self.pids: set[int] = set()

    # -- running commands ----------------------------------------------------------------

    def argv(self, *args: str | Path) -> list[str]:
        return [sys.executable, "-m", "ringctl.cli", *map(str, args)]

    def __call__(
        self, *args: str | Path, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            cwd=REPO,
            env=self.env,
            timeout=timeout,
        )
        self.note_pids()
        return result

    def spawn(self, *args: str | Path) -> subprocess.Popen[str]:
        """Start a command without waiting for it (a foreground ``up``, say)."""
        proc = subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=self.env,
        )
        self.popens.append(proc)
        return proc

    def json(self, *args: str | Path) -> Any:
        result = self(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def up_detached(self, topology: str | Path) -> str:
        """``ringctl up -d``; returns the topology's name (from its pid file)."""
        result = self("up", "-d", topology)
        assert result.returncode == 0, result.stderr
        pid_files = sorted(self.state.glob("*.pid"))
        assert pid_files, f"no pid file after up -d: {result.stderr}"
        newest = max(pid_files, key=lambda p: p.stat().st_mtime)
        return newest.stem

    # -- what runs -----------------------------------------------------------------------

    def pid_of(self, name: str) -> int:
        info = json.loads((self.state / f"{name}.pid").read_text())
        pid = int(info["pid"])
        self.pids.add(pid)
        return pid

    def note_pids(self) -> None:
        for pid_file in self.state.glob("*.pid"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                self.pids.add(int(json.loads(pid_file.read_text())["pid"]))

    def status(self, name: str) -> dict[str, Any]:
        document: dict[str, Any] = self.json("ps", name)
        return document

    def kernel(self, name: str, kernel_id: str) -> dict[str, Any]:
        return next(k for k in self.status(name)["kernels"] if k["id"] == kernel_id)

    def report(self, kernel_id: str) -> dict[str, Any]:
        path = self.report_dir / f"{kernel_id}.json"
        wait_for(path.exists, timeout=10.0, what=f"{path} written")
        document: dict[str, Any] = json.loads(path.read_text())
        return document

    # -- leaving nothing behind ----------------------------------------------------------

    def cleanup(self) -> list[int]:
        """Down everything still running here, kill what does not go; returns the pids
        that had to be killed (a test that leaks a supervisor fails on them)."""
        self.note_pids()
        for pid_file in self.state.glob("*.pid"):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self("down", pid_file.stem, "--timeout", "2", timeout=20)
        for proc in self.popens:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        killed = []
        for pid in sorted(self.pids):
            with contextlib.suppress(AssertionError):
                wait_for(lambda pid=pid: not pid_alive(pid), timeout=5.0)
            if pid_alive(pid):
                killed.append(pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_for(lambda pid=pid: not pid_alive(pid), timeout=5.0)
            reap(pid)
        return killed


def lines(text: str) -> Sequence[str]:
    return [line for line in text.splitlines() if line.strip()]


def ringctl_for(tmp_path: Path) -> Iterator[Ringctl]:
    """The body of a ``ringctl`` fixture: the command in a private state dir; every
    supervisor it started is gone afterwards (a test that leaked one fails)."""
    reports = tmp_path / "reports"
    reports.mkdir()
    with private_dir(tmp_path) as state:
        cli = Ringctl(state, report_dir=reports)
        # Adopt the detached supervisors for this test only (other tests keep the default).
        become_subreaper(True)
        try:
            yield cli
            killed = cli.cleanup()
        finally:
            become_subreaper(False)
    assert not killed, f"supervisors still running after the test (killed them): {killed}"
