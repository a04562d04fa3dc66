"""One timer for every timed wait of the runtime's callers (``runtime.receive(timeout)``).

A wait that ends before its deadline, which is almost every one, leaves no timer to
cancel: the one timer is armed for the earliest deadline of the waits in progress and,
when it fires, expires those whose deadline has come and moves on to the next one.
Waits come and go as entries in a dict, not as timers made and cancelled on the loop.
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["Deadlines"]


class Deadlines:
    """The timed waits in progress, and the one timer that expires them."""

    __slots__ = ("_armed_for", "_loop", "_timer", "_waits")

    def __init__(self) -> None:
        self._waits: dict[asyncio.Future[None], float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._armed_for = 0.0

    def add(self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None], when: float) -> None:
        """``fut`` fails with ``TimeoutError`` at ``when`` (loop time) unless it is done or
        ``discard``-ed first."""
        self._waits[fut] = when
        if self._timer is None or when < self._armed_for or loop is not self._loop:
            self._arm(loop, when)

    def discard(self, fut: asyncio.Future[None]) -> None:
        self._waits.pop(fut, None)

    def pop(self, fut: asyncio.Future[None]) -> float:
        """Forget ``fut`` (resolved first); returns its deadline (``-inf`` once expired)."""
        return self._waits.pop(fut, -math.inf)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop = loop
        self._armed_for = when
        self._timer = loop.call_at(when, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        # The loop ran this for ``_armed_for``: every deadline up to it has come (the loop
        # may fire a timer up to its clock resolution early, so the clock is not asked).
        self._timer = None
        due = self._armed_for
        later = None
        for fut, when in list(self._waits.items()):
            if when <= due:
                del self._waits[fut]
                if not fut.done():
                    fut.set_exception(TimeoutError())
            elif later is None or when < later:
                later = when
        if later is not None:
            self._arm(loop, later)
