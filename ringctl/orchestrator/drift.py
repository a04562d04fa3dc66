"""Whether a running topology still matches its file: a ``scale`` since the last ``up``
or ``apply``, or the file edited since (``ringctl ps`` shows both)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ringctl.orchestrator.plan import Plan

if TYPE_CHECKING:
    from ringctl.engine.contract import KernelSnapshot

__all__ = ["FileWatch", "drift"]


def drift(plan: Plan, kernels: Iterable[KernelSnapshot], edited: bool = False) -> list[str]:
    """How the running kernels differ from the plan of their file (a ``scale`` since the
    last ``up`` or ``apply``, or the file edited since)."""
    out = []
    if edited:
        out.append(
            f"its file was edited since it was applied (ringctl diff {plan.name} "
            f"{plan.file} shows how)"
        )
    for k in kernels:
        if k.id not in plan or k.state not in ("ACTIVE", "DEACTIVATED"):
            continue
        want, have = plan.kernel(k.id).replicas, k.replicas
        if have != want:
            plural = "s" if have != 1 else ""
            out.append(f"{k.id} runs {have} replica{plural}, its file says {want}")
    return out


class FileWatch:
    """Whether a topology file was edited since it was started or applied: its content
    is read again only when its size or modification time changed."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._seen = self._stat()
        self._digest = self._read()
        self._edited = False

    def _stat(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path) if self.path else None
        except OSError:
            return None
        return (info.st_size, info.st_mtime_ns) if info else None

    def _read(self) -> str | None:
        try:
            return hashlib.sha256(Path(self.path).read_bytes()).hexdigest() if self.path else None
        except OSError:
            return None

    def edited(self) -> bool:
        seen = self._stat()
        if seen != self._seen:
            self._seen = seen
            self._edited = self._read() != self._digest
        return self._edited
