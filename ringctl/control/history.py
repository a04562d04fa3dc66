"""Finished runs, kept in the state directory for ``ringctl ps -a``.

``history.jsonl`` holds one JSON document per finished run (name, file, outcome, exit
code, start and end time, duration, reason), newest last, at most ``MAX_ENTRIES`` of
them. Writers take ``history.lock`` and replace the file atomically, so two supervisors
ending together both get their line in, and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Final

from ringctl.control.paths import StateDir

__all__ = ["MAX_ENTRIES", "read_history", "record_run"]

MAX_ENTRIES: Final = 50


def _path(directory: StateDir) -> Path:
    return directory.path / "history.jsonl"


def read_history(directory: StateDir) -> list[dict[str, Any]]:
    """The finished runs, oldest first (lines that do not parse are skipped)."""
    try:
        text = _path(directory).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict) and "name" in doc:
                out.append(doc)
    return out


def record_run(directory: StateDir, entry: dict[str, Any], *, keep: int = MAX_ENTRIES) -> None:
    """Append ``entry``, dropping the oldest past ``keep``. Raises ``OSError`` (disk full)."""
    path = _path(directory)
    fd = os.open(directory.path / "history.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        entries = [*read_history(directory), entry][-keep:]
        tmp = path.with_suffix(".tmp")
        tmp_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(tmp_fd, "w", encoding="utf-8") as fh:
            for e in entries:
                fh.write(json.dumps(e, separators=(",", ":"), default=str) + "\n")
        os.replace(tmp, path)
    finally:
        os.close(fd)
