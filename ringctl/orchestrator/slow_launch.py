"""While a launch or activation phase takes long (a slow set-up hook), say so.

A thread, because a synchronous set-up hook holds the event loop the whole time: every
second a phase has not advanced, ``say`` hears which kernel it is on and for how long.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["SlowLaunch"]


class SlowLaunch:
    """Feed it every phase document (``update``); ``say`` gets one line a second while
    a launch or activation phase stands still."""

    EVERY_S = 1.0

    def __init__(self, kernels: Sequence[str], say: Callable[[str], None]) -> None:
        self.kernels = list(kernels)
        self.say = say
        self.phase: dict[str, Any] | None = None
        self.since = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="launch-progress", daemon=True)

    def update(self, phase: dict[str, Any]) -> None:
        old = self.phase
        if old is None or (old.get("name"), old.get("done")) != (phase.get("name"), phase["done"]):
            self.since = time.monotonic()
        self.phase = phase

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.EVERY_S):
            phase = self.phase
            if phase is None or phase.get("name") not in ("launch", "activate"):
                continue
            done, total = int(phase.get("done", 0)), int(phase.get("total", 0))
            if done >= total:
                continue
            waited = time.monotonic() - self.since
            if waited < self.EVERY_S:
                continue
            verb = "launching" if phase["name"] == "launch" else "activating"
            label = "phase 1" if phase["name"] == "launch" else "phase 2"
            kid = self.kernels[done]
            self.say(f"{label}: {verb} {kid} ({done}/{total} done, {waited:.0f} s on it)")
