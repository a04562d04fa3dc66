"""The loop watchdog on a real event loop: a task that blocks it is named while it
blocks (from another thread) and reported once when it lets go."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from orchestrator.harness import wait_for
from ringctl.orchestrator.watchdog import LoopWatchdog, holder_of


async def test_a_blocking_kernel_task_is_named_while_it_blocks_and_reported_once() -> None:
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    watchdog = LoopWatchdog(loop, period=0.05, threshold=0.2, on_block=reported.append)
    beating = loop.create_task(watchdog.heartbeat())
    seen: list[dict[str, Any]] = []

    def observe() -> None:  # what `ps` sees from the control thread during the block
        seen.append(wait_for(lambda: (r := watchdog.report())["status"] == "blocked" and r))

    async def slow_kernel() -> None:
        time.sleep(0.8)  # noqa: ASYNC251  (the point: hold the loop)

    try:
        await asyncio.sleep(0.1)
        assert watchdog.report()["status"] == "ok"
        observer = threading.Thread(target=observe)
        observer.start()
        await loop.create_task(slow_kernel(), name="ringctl:slow[0]")
        observer.join(timeout=5)
        await asyncio.sleep(0.2)  # the heartbeat runs again: the block is over
    finally:
        beating.cancel()
        await asyncio.gather(beating, return_exceptions=True)
    (during,) = seen
    assert during["holder"] == "kernel `slow`"
    assert during["message"].startswith("loop blocked ")
    assert len(reported) == 1 and reported[0].endswith(" s in kernel `slow`")
    assert 0.7 <= float(reported[0].split()[2]) <= 1.5
    after = watchdog.report()
    assert after["status"] == "ok" and after["blocks"] == 1
    assert after["last_block"]["message"] == reported[0]


async def test_what_holds_the_loop_in_words() -> None:
    async def nothing() -> None:
        return None

    kernel = asyncio.create_task(nothing(), name="ringctl:zscore[3]")
    other = asyncio.create_task(nothing(), name="dashboard")
    await asyncio.gather(kernel, other)
    assert holder_of(kernel) == "kernel `zscore`"
    assert holder_of(other) == "task `dashboard`"
    assert holder_of(None) == "outside any task"


async def test_a_set_up_hook_that_holds_the_loop_is_named_after_its_kernel() -> None:
    """While a kernel's set-up hook runs, the launching task carries the kernel's name."""
    from ringctl import RingKernelRuntime, ring_kernel

    seen: list[str] = []

    def setup(ctx: object) -> None:
        seen.append(holder_of(asyncio.current_task()))

    @ring_kernel(kernel_id="jit", setup=setup)
    async def jit(ctx: object) -> None:
        return None

    before = asyncio.current_task().get_name()  # type: ignore[union-attr]
    async with RingKernelRuntime() as rt:
        await rt.launch("jit", jit)
    assert seen == ["kernel `jit` (its set-up hook)"]
    assert asyncio.current_task().get_name() == before  # type: ignore[union-attr]
