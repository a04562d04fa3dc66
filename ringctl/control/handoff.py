"""Handing work from the control thread to the kernels' loop, bounded by a deadline.

A command (``pause``, ``down``) runs on the kernels' loop, where the supervisor lives.
When that loop is blocked (a kernel calling ``time.sleep``, a long compiled call), the
command waits in the loop's queue. ``Handoff.run`` waits for it until the client's
deadline, then *abandons* it: an abandoned command that has not started never starts,
so a ``pause`` the user gave up on is not applied seconds later. One that already
started is left to finish (stopping a drain half-way would be worse than finishing it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ringctl.exceptions import TopologyNotRunningError

__all__ = ["Abandoned", "Claim", "Handoff"]

T = TypeVar("T")

#: Answer this long before the client's deadline, so the client reads a reply, not a timeout.
REPLY_MARGIN_S = 0.25


class Abandoned(TopologyNotRunningError):
    """The kernels' loop did not start the command before the client's deadline (exit 3)."""


class Claim:
    """Who gets to decide a handed-over command's fate first: the kernels' loop starting
    it, or the control thread abandoning it. Exactly one of them wins."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.started = False
        self._abandoned = False
        self._lock = threading.Lock()

    def start(self) -> bool:
        """On the kernels' loop, first thing: may the command run?"""
        with self._lock:
            if self._abandoned or (self.deadline is not None and time.time() > self.deadline):
                self._abandoned = True
                return False
            self.started = True
            return True

    def abandon(self) -> bool:
        """On the control thread: give up unless it started; True if it never will."""
        with self._lock:
            if not self.started:
                self._abandoned = True
            return self._abandoned


class Handoff:
    """Runs callables and coroutines on ``loop`` (the kernels') from another thread's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    async def run(
        self,
        make: Callable[[], Awaitable[T]],
        claim: Claim,
        *,
        refused: Callable[[], Abandoned],
    ) -> T:
        """Await ``make()`` on the kernels' loop; ``refused()`` is raised if the deadline
        passes before it started (it then never runs)."""

        async def guarded() -> T:
            if not claim.start():
                raise refused()
            return await make()

        try:
            future = asyncio.run_coroutine_threadsafe(guarded(), self.loop)
        except RuntimeError:  # the kernels' loop is closed: the topology is going away
            raise refused() from None
        wrapped = asyncio.wrap_future(future)
        wrapped.add_done_callback(_retrieve)
        if claim.deadline is None:
            return await wrapped
        wait = claim.deadline - time.time() - REPLY_MARGIN_S
        try:
            return await asyncio.wait_for(asyncio.shield(wrapped), max(wait, 0.0))
        except TimeoutError:
            if claim.abandon():
                raise refused() from None
        return await wrapped  # it started in time: let it finish, and report how it went

    async def call(self, fn: Callable[[], T], wait: float) -> tuple[bool, T | None]:
        """Run ``fn()`` on the kernels' loop; ``(False, None)`` if it has not run within
        ``wait`` seconds (it still runs later; only the waiting stops)."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed back to the waiting thread
                future.set_exception(exc)

        try:
            self.loop.call_soon_threadsafe(job)
        except RuntimeError:
            return False, None
        wrapped = asyncio.wrap_future(future)
        wrapped.add_done_callback(_retrieve)
        try:
            return True, await asyncio.wait_for(asyncio.shield(wrapped), wait)
        except TimeoutError:
            return False, None


def _retrieve(future: asyncio.Future[Any]) -> None:
    # An abandoned command's outcome has nobody waiting for it: read it so asyncio does
    # not log "exception was never retrieved" for a refusal that was already answered.
    if not future.cancelled():
        future.exception()
