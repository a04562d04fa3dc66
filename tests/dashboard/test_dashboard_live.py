"""The live loop: one snapshot per frame, q to quit, Ctrl-C to detach, terminal restored."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from rich.console import Console

from ringctl.dashboard import StopReason, run_live
from ringctl.exceptions import UserInputError


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def counting(*documents: Any) -> tuple[Callable[[], Any], list[int]]:
    """``get_status`` over ``documents`` (then the last one), counting its calls."""
    items: Iterator[Any] = iter(documents)
    calls = [0]
    last: list[Any] = [None]

    def get_status() -> Any:
        calls[0] += 1
        item = next(items, last[0])
        last[0] = item
        if isinstance(item, BaseException):
            raise item
        return item

    return get_status, calls


def quiet_console() -> Console:
    return Console(file=StringIO(), width=100, color_system=None)


def output(console: Console) -> str:
    assert isinstance(console.file, StringIO)
    return console.file.getvalue()


def test_runs_until_the_topology_finishes_one_snapshot_per_frame(status: dict[str, Any]) -> None:
    done = {**status, "state": "completed"}
    get_status, calls = counting(status, status, status, done)
    t, console = FakeTime(), quiet_console()
    reason = run_live(get_status, 4, console=console, keys=False, sleep=t.sleep, clock=t.clock)
    assert reason is StopReason.FINISHED
    assert calls[0] == 4  # four frames, four snapshots
    assert t.sleeps == [0.25, 0.25, 0.25]  # 4 refreshes a second
    assert "COMPLETED" in output(console)  # the final frame stays


def test_should_stop(status: dict[str, Any]) -> None:
    get_status, calls = counting(status)
    t = FakeTime()
    stops = iter([False, False, True])
    reason = run_live(
        get_status,
        console=quiet_console(),
        keys=False,
        should_stop=lambda: next(stops),
        sleep=t.sleep,
        clock=t.clock,
    )
    assert reason is StopReason.STOPPED
    assert calls[0] == 3


def test_ctrl_c_detaches_instead_of_raising(status: dict[str, Any]) -> None:
    get_status, _ = counting(status, KeyboardInterrupt())
    t = FakeTime()
    reason = run_live(get_status, console=quiet_console(), keys=False, sleep=t.sleep)
    assert reason is StopReason.INTERRUPTED


def test_lost_supervisor(status: dict[str, Any]) -> None:
    get_status, _ = counting(status, ConnectionRefusedError("gone"))
    t, console = FakeTime(), quiet_console()
    reason = run_live(
        get_status,
        console=console,
        keys=False,
        give_up_after_s=2.0,
        sleep=t.sleep,
        clock=t.clock,
    )
    assert reason is StopReason.LOST
    text = output(console)
    assert "status unavailable: ConnectionRefusedError: gone" in text
    assert "square" in text  # the last good frame, not a blank one


def test_refresh_must_be_positive(status: dict[str, Any]) -> None:
    with pytest.raises(UserInputError, match="refresh rate"):
        run_live(lambda: status, 0, console=quiet_console(), keys=False)


@pytest.mark.skipif(sys.platform == "win32", reason="no pty on Windows")
def test_q_quits_from_a_real_terminal_and_restores_it(status: dict[str, Any]) -> None:
    import pty
    import termios

    primary, secondary = pty.openpty()
    try:
        before = termios.tcgetattr(secondary)
        get_status, calls = counting(status)
        typed = threading.Event()

        def press_q_after_first_frame() -> Any:
            document = get_status()
            if calls[0] == 2 and not typed.is_set():
                typed.set()
                os.write(primary, b"q")
            return document

        reason = run_live(
            press_q_after_first_frame,
            refresh_per_second=20,
            console=quiet_console(),
            input_fd=secondary,
        )
        assert reason is StopReason.QUIT
        assert calls[0] == 2
        assert termios.tcgetattr(secondary) == before  # cbreak undone
    finally:
        os.close(primary)
        os.close(secondary)


@pytest.mark.skipif(sys.platform == "win32", reason="no pty on Windows")
def test_other_keys_do_not_quit(status: dict[str, Any]) -> None:
    import pty

    primary, secondary = pty.openpty()
    try:
        os.write(primary, b"x ")
        get_status, _calls = counting(status)
        t_stop = iter([False, False, False, True])
        reason = run_live(
            get_status,
            refresh_per_second=50,
            console=quiet_console(),
            input_fd=secondary,
            should_stop=lambda: next(t_stop),
        )
        assert reason is StopReason.STOPPED
    finally:
        os.close(primary)
        os.close(secondary)


def test_a_terminal_frame_fits_its_height(make_chain: Callable[..., dict[str, Any]]) -> None:
    document = {**make_chain(300, stalled_at=250), "state": "completed"}
    console = Console(file=StringIO(), width=120, height=30, force_terminal=True, color_system=None)
    assert run_live(lambda: document, console=console, keys=False) is StopReason.FINISHED
    text = output(console)
    assert "k0250" in text
    assert "more kernels" in text


# -- run_live_async: the same view, drawn on the caller's event loop (ringctl up) ------------


async def test_async_loop_draws_until_should_stop_then_one_last_frame(
    status: dict[str, Any],
) -> None:
    from ringctl.dashboard.live import run_live_async

    get_status, calls = counting(status)
    out = StringIO()
    console = Console(file=out, width=120, force_terminal=False)
    reason = await run_live_async(
        get_status, 50, console=console, keys=False, should_stop=lambda: calls[0] >= 3
    )
    assert reason is StopReason.STOPPED
    assert calls[0] == 4  # three frames, then one last frame once should_stop() is true
    assert str(status["name"]) in out.getvalue()


@pytest.mark.skipif(sys.platform == "win32", reason="no pty on Windows")
async def test_async_loop_quits_on_q_from_a_real_terminal_and_restores_it(
    status: dict[str, Any],
) -> None:
    import asyncio
    import pty
    import termios

    from ringctl.dashboard.live import run_live_async

    primary, secondary = pty.openpty()
    try:
        before = termios.tcgetattr(secondary)
        get_status, calls = counting(status)
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, os.write, primary, b"q")
        reason = await asyncio.wait_for(
            run_live_async(get_status, 20, console=quiet_console(), input_fd=secondary), 5
        )
        assert reason is StopReason.QUIT
        assert calls[0] >= 1
        assert termios.tcgetattr(secondary) == before  # cbreak undone
    finally:
        os.close(primary)
        os.close(secondary)
