"""Finished runs, kept in the state directory for ``ringctl ps -a``.

``history.jsonl`` holds one JSON document per finished run (name, file, outcome, exit
code, start and end time, duration, reason, the supervisor's pid, and whether a stop
came during the launch), newest last, at most ``MAX_ENTRIES`` of
them. Writers take ``history.lock`` and replace the file atomically, so two supervisors
ending together both get their line in, and a reader never sees half a file.

A supervisor writes its own line when the run ends. One that never got to (killed with
-9, crashed) is written by whoever finds its leftovers (``record_death``): outcome
``died``, exit code 1, since what its kernels had in flight was never accounted for.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any, Final, Literal

from ringctl.control.paths import StateDir, TopologyFiles, claim_name, release_name

__all__ = ["MAX_ENTRIES", "clean_if_stale", "read_applies", "read_history", "record_apply",
           "record_death", "record_run", "remove_stale"]  # fmt: skip

MAX_ENTRIES: Final = 50


_RUNS: Final = "history.jsonl"
#: Each ``ringctl apply`` that changed a running topology: name, file, time, changes.
_APPLIES: Final = "applies.jsonl"


def read_history(directory: StateDir, *, name: str = _RUNS) -> list[dict[str, Any]]:
    """The finished runs, oldest first (lines that do not parse are skipped)."""
    try:
        text = (directory.path / name).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict) and "name" in doc:
                out.append(doc)
    return out


def read_applies(directory: StateDir) -> list[dict[str, Any]]:
    """The applies made to running topologies, oldest first."""
    return read_history(directory, name=_APPLIES)


def record_apply(files: TopologyFiles, entry: dict[str, Any]) -> None:
    """Add an apply to the history of the state directory ``files`` live in."""
    record_run(StateDir(files.pid.parent), entry, name=_APPLIES)


def record_run(
    directory: StateDir, entry: dict[str, Any], *, keep: int = MAX_ENTRIES, name: str = _RUNS
) -> None:
    """Append ``entry``, dropping the oldest past ``keep``. Raises ``OSError`` (disk full)."""
    path = directory.path / name
    fd = os.open(directory.path / "history.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        entries = [*read_history(directory, name=name), entry][-keep:]
        tmp = path.with_suffix(".tmp")
        tmp_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(tmp_fd, "w", encoding="utf-8") as fh:
            for e in entries:
                fh.write(json.dumps(e, separators=(",", ":"), default=str) + "\n")
        os.replace(tmp, path)
    finally:
        os.close(fd)


def record_death(files: TopologyFiles) -> None:
    """Record the run whose supervisor died leaving ``files`` behind (never raises).

    Its pid file says who it was and when it started; the last time it wrote its pid
    file or a log is as close as anyone can tell to when it died.
    """
    info = files.read_pid()
    pid = info.get("pid") if info else None
    if info is None or type(pid) is not int:
        return  # no pid file: it died before it ran anything
    started = info.get("started")
    seen = [files.pid, files.kernel_log]
    if isinstance(info.get("log"), str):
        seen.append(Path(info["log"]))
    ended = 0.0
    for path in seen:
        with contextlib.suppress(OSError):
            ended = max(ended, path.stat().st_mtime)
    ended = ended or time.time()
    entry = {
        "name": files.name,
        "file": info.get("file"),
        "outcome": "died",
        "exit_code": 1,
        "reason": f"its supervisor (pid {pid}) died before the run ended (killed, or "
        "crashed); what its kernels had in flight was not accounted for",
        "started": started if isinstance(started, int | float) else None,
        "ended": round(ended, 3),
        "duration_s": round(max(0.0, ended - started), 3)
        if isinstance(started, int | float)
        else None,
        "kernel_log": str(files.kernel_log),
    }
    with contextlib.suppress(OSError):
        record_run(StateDir(files.pid.parent), entry)


def clean_if_stale(files: TopologyFiles) -> Literal["held", "cleaned", "absent"]:
    """``held`` if a supervisor holds the name (running, starting or too busy to
    answer); otherwise remove what a dead one left: ``cleaned``, or ``absent``.

    The check and the removal happen under the lock, so a supervisor that is
    starting (socket bound, pid file not yet written) is never mistaken for a dead
    one and has its socket deleted under it.
    """
    if not (files.socket.exists() or files.pid.exists() or files.lock.exists()):
        return "absent"  # nothing here: no need to make a lock file to say so
    try:
        fd = claim_name(files)
    except FileNotFoundError:
        return "absent"  # no state directory: nothing was ever here
    except OSError:
        return "held"  # cannot tell: leave it alone
    if fd is None:
        return "held"
    try:
        leftovers = remove_stale(files)
    finally:
        release_name(files, fd)
    return "cleaned" if leftovers else "absent"


def remove_stale(files: TopologyFiles) -> bool:
    """Remove what a dead supervisor left behind; True if there was anything.

    Call it holding the name's lock. A pid file here means a run that never wrote
    its own end (killed with -9, or crashed): it goes into the history as ``died``,
    so ``ringctl ps -a`` says what happened to it.
    """
    leftovers = files.socket.exists() or files.pid.exists()
    if leftovers:
        record_death(files)
    files.remove()
    return leftovers
