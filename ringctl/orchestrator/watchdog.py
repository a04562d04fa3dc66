"""The loop watchdog: how late the kernels' event loop is, and which kernel holds it.

Kernels share one event loop; a kernel that blocks it (``time.sleep``, a long compiled
call, a C library holding the GIL) stops every other kernel and the supervisor. The
watchdog makes that visible at no cost per message:

- a *heartbeat* task on the kernels' loop wakes every ``period`` seconds and notes when
  it is due next;
- a *watch* thread checks, every ``period``, whether the heartbeat is overdue. Once it is
  more than ``threshold`` late the loop is **blocked**, and the thread reads which task
  the loop is running right now (``asyncio.current_task(loop)``): kernel tasks are named
  after their kernel, so that names the culprit;
- when the heartbeat runs again, the block is over: it is reported once
  (``loop blocked 3.0 s in kernel `slow```) to ``on_block`` and the log.

``report()`` is safe from any thread: the control server shows it in ``ps`` and the
dashboard even while the loop is blocked.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["LoopWatchdog", "holder_of"]

log = logging.getLogger("ringctl.watchdog")

#: The runtime names each kernel instance's task ``ringctl:KERNEL[REPLICA]``, and the task
#: that runs a kernel's set-up hook ``ringctl:KERNEL[REPLICA] set-up`` while it does.
_KERNEL_TASK: Final = re.compile(r"^ringctl:(?P<kernel>.+)\[\d+\](?P<setup> set-up)?$")


def holder_of(task: asyncio.Task[Any] | None) -> str:
    """Who a task is, in words: ``kernel `slow```, ``task `dashboard```, or nobody."""
    if task is None:
        return "outside any task"
    name = task.get_name()
    match = _KERNEL_TASK.match(name)
    if match:
        return f"kernel `{match['kernel']}`" + (" (its set-up hook)" if match["setup"] else "")
    return f"task `{name}`"


@dataclass(frozen=True, slots=True)
class _Block:
    holder: str
    since: float  # monotonic time the heartbeat was due


class LoopWatchdog:
    """Measures the lag of ``loop`` and names what holds it (see the module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        period: float = 0.1,
        threshold: float = 0.5,
        on_block: Callable[[str], None] | None = None,
    ) -> None:
        self.loop = loop
        self.period = period
        self.threshold = threshold
        self.on_block = on_block
        self.blocks = 0
        self._lock = threading.Lock()
        self._due = time.monotonic() + period
        self._current: _Block | None = None
        self._last: tuple[str, float, float] | None = None  # message, seconds, when ended
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the kernels' loop ---------------------------------------------------------------

    async def heartbeat(self) -> None:
        """Run on the kernels' loop until cancelled."""
        self._due = time.monotonic() + self.period
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._watch, name="ringctl-watchdog", daemon=True
            )
            self._thread.start()
        try:
            while True:
                await asyncio.sleep(self.period)
                now = time.monotonic()
                with self._lock:
                    late = now - self._due
                    self._due = now + self.period
                    block, self._current = self._current, None
                if block is not None:
                    self._ended(block, late + self.period)
        finally:
            self._stop.set()
            thread, self._thread = self._thread, None
            if thread is not None:
                await asyncio.to_thread(thread.join, 5.0)

    def _ended(self, block: _Block, seconds: float) -> None:
        message = f"loop blocked {seconds:.1f} s in {block.holder}"
        self.blocks += 1
        self._last = (message, seconds, time.monotonic())
        log.warning("%s", message)
        if self.on_block is not None:
            self.on_block(message)

    # -- the watch thread ----------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.period):
            with self._lock:
                lag = time.monotonic() - self._due
                if lag <= self.threshold or self._current is not None:
                    continue
                # Read while the loop is stuck in it: the task running right now.
                block = _Block(holder_of(asyncio.current_task(self.loop)), self._due)
                self._current = block
            log.warning("loop blocked for over %.1f s in %s", lag, block.holder)

    # -- any thread ----------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """``status`` (``ok`` / ``blocked``), the current lag and the last block."""
        now = time.monotonic()
        with self._lock:
            block, lag = self._current, max(0.0, now - self._due)
        doc: dict[str, Any] = {"status": "ok", "lag_s": round(lag, 3), "blocks": self.blocks}
        if block is not None:
            seconds = now - block.since + self.period
            doc.update(
                status="blocked",
                holder=block.holder,
                blocked_s=round(seconds, 3),
                message=f"loop blocked {seconds:.1f} s in {block.holder}",
            )
        last = self._last
        if last is not None:
            doc["last_block"] = {
                "message": last[0],
                "seconds": round(last[1], 3),
                "ago_s": round(now - last[2], 3),
            }
        return doc
