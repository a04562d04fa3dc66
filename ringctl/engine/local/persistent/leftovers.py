"""Names of shared-memory arenas, and reclaiming those of runs that died.

An arena's file is ``ringctl-<group>-<pid>-<random>-s<start>`` in ``/dev/shm`` (else the
temporary directory): ``pid`` is the process that made it and owns it, ``start`` when that
process started (``/proc/PID/stat``, clock ticks since boot), so a pid reused by another
process is never taken for the owner. The owner removes its file when the run ends; a
process killed with -9 (with its workers, a process-group SIGKILL) cannot, so the next
``ringctl`` command that looks at the state directory removes the files whose owner is
gone (``reclaim``). Plain stdlib: the CLI imports this without numpy.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Final

__all__ = ["arena_path", "process_start", "reclaim", "shm_dir"]

PREFIX: Final = "ringctl-"
_NAME: Final = re.compile(r"-(\d+)-[0-9a-f]{12}(?:-s(\d+))?$")


def shm_dir() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if it does not run (or
    this system has no ``/proc``: then see ``_alive``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # dead, not yet reaped
        return None
    return int(fields[19])  # field 22 of proc(5); fields[0] is field 3


def arena_path(group: str) -> Path:
    """A new arena file's path for this process (not created)."""
    pid = os.getpid()
    start = process_start(pid)
    tail = f"-s{start}" if start is not None else ""
    return shm_dir() / f"{PREFIX}{group}-{pid}-{secrets.token_hex(6)}{tail}"


def _owner_alive(pid: int, start: int | None) -> bool:
    if Path("/proc/self/stat").exists():
        running = process_start(pid)
        return running is not None and (start is None or running == start)
    try:  # no /proc: the pid alone (kept when unsure)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def reclaim() -> list[Path]:
    """Remove the arena files of this user whose owner process is gone; the removed."""
    removed: list[Path] = []
    uid = os.getuid()
    try:
        entries = list(os.scandir(shm_dir()))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        found = _NAME.search(entry.name)
        if found is None:
            continue
        with contextlib.suppress(OSError):
            if not entry.is_file(follow_symlinks=False) or entry.stat().st_uid != uid:
                continue
            pid, start = int(found[1]), (int(found[2]) if found[2] else None)
            if pid != os.getpid() and not _owner_alive(pid, start):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed
