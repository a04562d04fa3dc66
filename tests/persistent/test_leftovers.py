"""Reclaiming the shared memory of dead runs: only files whose owner process is gone."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from ringctl.engine.local.persistent.leftovers import arena_path, process_start, reclaim, shm_dir


def _fake(pid: int, start: int | None) -> Path:
    tail = f"-s{start}" if start is not None else ""
    path = shm_dir() / f"ringctl-fake-{pid}-{secrets.token_hex(6)}{tail}"
    path.write_bytes(b"x")
    return path


def test_only_files_of_dead_owners_are_removed() -> None:
    parent = os.getppid()
    start = process_start(parent)
    assert start is not None
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    files = {
        "live owner": _fake(parent, start),
        "live owner, no start time": _fake(parent, None),
        "this process": arena_path("fake"),
        "pid reused by another process": _fake(parent, start + 1),
        "dead owner": _fake(int(dead.stdout), 1),
        "dead owner, no start time": _fake(int(dead.stdout), None),
    }
    files["this process"].write_bytes(b"x")
    try:
        removed = set(reclaim())
        gone = {what for what, path in files.items() if not path.exists()}
        assert gone == {"pid reused by another process", "dead owner", "dead owner, no start time"}
        assert removed >= {files[what] for what in gone}
    finally:
        for path in files.values():
            path.unlink(missing_ok=True)
