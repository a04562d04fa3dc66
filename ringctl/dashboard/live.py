"""The live dashboard loop: ``ringctl up`` in a terminal, and ``ringctl top NAME``.

One loop, in the caller's thread: take one snapshot (``get_status()``), hand rich a
fresh view through ``Live(get_renderable=...)``, refresh, then wait for the next tick
while watching the keyboard. Polling in the caller's thread means ``get_status`` need
not be thread-safe (a control-plane client socket usually is not) and that the number of
snapshots is exactly the number of frames: at most one per refresh, off the message path
Rich's own refresh thread is off (``auto_refresh=False``) so that nothing
else asks for a frame in between.

Keys: where stdin is a terminal it is put in cbreak mode for the duration, so ``q``
quits without Enter and without echo; Ctrl-C still raises ``KeyboardInterrupt`` (cbreak
keeps signals), and the terminal settings are restored on every way out.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any, Final

from rich.console import Console, RenderableType
from rich.live import Live

from ringctl.dashboard._status import STALL_AFTER_S
from ringctl.dashboard.plain import StatusPoller, StopReason
from ringctl.dashboard.view import render
from ringctl.exceptions import UserInputError

__all__ = ["DEFAULT_REFRESH_PER_SECOND", "QUIT_KEYS", "StopReason", "run_live", "run_live_async"]

DEFAULT_REFRESH_PER_SECOND: Final = 4.0
QUIT_KEYS: Final = frozenset(b"qQ")

StatusGetter = Callable[[], Mapping[str, Any] | None]


def _frame(poller: StatusPoller, console: Console, stall_after_s: float) -> RenderableType:
    """What ``Live(get_renderable=...)`` pulls: the view of the latest snapshot."""
    return render(
        poller.last,
        connection=poller.connection,
        stall_after_s=stall_after_s,
        # A live frame taller than the terminal scrolls and flickers; trim it, keeping
        # the rows that need a look.
        fit_height=console.is_terminal,
    )


@contextmanager
def _cbreak(fd: int | None) -> Iterator[int | None]:
    """Single keypresses from ``fd`` while inside; yields ``None`` where that is impossible."""
    if fd is None:
        yield None
        return
    try:
        import termios
        import tty
    except ImportError:  # pragma: no cover - Windows: no q key, Ctrl-C still works
        yield None
        return
    try:
        saved = termios.tcgetattr(fd)
    except (termios.error, OSError):  # not a terminal after all
        yield None
        return
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _wait_for_key(fd: int | None, timeout: float, sleep: Callable[[float], None]) -> bool:
    """Wait up to ``timeout`` s; True if a quit key was pressed meanwhile."""
    if fd is None:
        if timeout > 0:
            sleep(timeout)
        return False
    readable, _, _ = select.select([fd], [], [], max(timeout, 0.0))
    return bool(readable) and _quit_key(fd)


def _quit_key(fd: int) -> bool:
    """Read what was typed on ``fd``: True if it holds a quit key."""
    try:
        data = os.read(fd, 64)
    except OSError:
        return False
    return any(byte in QUIT_KEYS for byte in data)


def _period(refresh_per_second: float) -> float:
    if not refresh_per_second > 0:
        raise UserInputError(
            f"refresh rate must be above 0, got {refresh_per_second}",
            hint="--refresh 4 redraws four times a second",
        )
    return 1.0 / refresh_per_second


def _key_fd(input_fd: int | None, keys: bool | None) -> int | None:
    """Where to read ``q`` from: the given fd, else stdin if it is a terminal; or nowhere."""
    if keys is False:
        return None
    if input_fd is not None:
        return input_fd
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # pytest capture, closed stdin
        return None
    return fd if os.isatty(fd) else None


def run_live(
    get_status: StatusGetter,
    refresh_per_second: float = DEFAULT_REFRESH_PER_SECOND,
    *,
    console: Console | None = None,
    stop_when_finished: bool = True,
    should_stop: Callable[[], bool] | None = None,
    give_up_after_s: float | None = None,
    stall_after_s: float = STALL_AFTER_S,
    keys: bool | None = None,
    input_fd: int | None = None,
    screen: bool = False,
    transient: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> StopReason:
    """Show the dashboard live until the topology finishes, ``q``, Ctrl-C or ``should_stop``.

    ``get_status`` returns the latest status document (``ps --json``'s shape) or
    ``None`` when there is none yet; it is called from this thread, once per frame. An
    exception from it keeps the last frame with a red "status unavailable" line, and
    after ``give_up_after_s`` without a document (``top``: a few seconds; ``up``:
    ``None``, it owns the runtime) the loop returns :attr:`StopReason.LOST`.

    ``keys``: listen for ``q`` (default: when ``input_fd``, or stdin, is a terminal).
    ``stop_when_finished``: return once the state is completed / failed / stopped,
    leaving that last frame on screen (unless ``transient``). Ctrl-C returns
    :attr:`StopReason.INTERRUPTED` instead of raising, so ``top`` can detach quietly and
    ``up`` can start its graceful down.
    """
    period = _period(refresh_per_second)
    console = console if console is not None else Console()
    fd = _key_fd(input_fd, keys)
    poller = StatusPoller(get_status, give_up_after_s=give_up_after_s, clock=clock)
    try:
        with (
            _cbreak(fd) as key_fd,
            Live(
                get_renderable=partial(_frame, poller, console, stall_after_s),
                console=console,
                auto_refresh=False,
                screen=screen,
                # Kernels that print in ``up``'s process: above the view, not through it.
                transient=transient,
            ) as live,
        ):
            while True:
                started = clock()
                poller.poll()
                live.refresh()
                if stop_when_finished and poller.finished:
                    return StopReason.FINISHED
                if poller.lost:
                    return StopReason.LOST
                if should_stop is not None and should_stop():
                    return StopReason.STOPPED
                if _wait_for_key(key_fd, period - (clock() - started), sleep):
                    return StopReason.QUIT
    except KeyboardInterrupt:
        return StopReason.INTERRUPTED


async def run_live_async(
    get_status: StatusGetter,
    refresh_per_second: float = DEFAULT_REFRESH_PER_SECOND,
    *,
    console: Console | None = None,
    should_stop: Callable[[], bool] | None = None,
    stall_after_s: float = STALL_AFTER_S,
    keys: bool | None = None,
    input_fd: int | None = None,
    redirect_io: bool = True,
) -> StopReason:
    """``run_live`` for a process that runs its topology on the same event loop (``up``).

    Frames are drawn by the loop itself between kernel steps. A drawing thread would
    compete with the kernels for the GIL: measured in ``benchmarks/dashboard_bench.py``,
    a thread cost a 3-stage pipeline about 11 % of its throughput at 4 Hz, drawing on
    the loop under 1 %. ``q`` is read with ``loop.add_reader``; Ctrl-C is left to the
    caller's signal handler (a graceful down). Returns once ``should_stop()`` is true
    (after one last frame) or ``q`` was pressed.

    ``redirect_io=False`` leaves ``sys.stdout`` / ``sys.stderr`` alone (the caller
    captures kernel output itself and prints above the view with ``console.print``).
    """
    import asyncio

    period = _period(refresh_per_second)
    console = console if console is not None else Console()
    fd = _key_fd(input_fd, keys)
    poller = StatusPoller(get_status)
    loop = asyncio.get_running_loop()
    quit_pressed = asyncio.Event()

    def on_key(key_fd: int) -> None:
        if _quit_key(key_fd):
            quit_pressed.set()

    with (
        _cbreak(fd) as key_fd,
        Live(
            get_renderable=partial(_frame, poller, console, stall_after_s),
            console=console,
            auto_refresh=False,
            redirect_stdout=redirect_io,
            redirect_stderr=redirect_io,
        ) as live,
    ):
        if key_fd is not None:
            loop.add_reader(key_fd, on_key, key_fd)
        try:
            while True:
                stopping = should_stop is not None and should_stop()
                poller.poll()
                live.refresh()
                if stopping:
                    return StopReason.STOPPED
                try:
                    await asyncio.wait_for(quit_pressed.wait(), period)
                except TimeoutError:
                    continue
                return StopReason.QUIT
        finally:
            if key_fd is not None:
                loop.remove_reader(key_fd)
