"""Every example of the lifecycle specification, run as written.

The spec's package is ``pydotcompute``; here it is ``ringctl``. Where the spec leaves a
name undefined (``process``, ``batch_1``) the test defines it; everything else is the
page's code, followed by what the page says must then be true.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from ringctl import KernelState, RingKernelRuntime, ring_kernel
from ringctl.testing import wait_until


def process(msg: Any) -> Any:
    return ("processed", msg)


# -- "Actor Loop Pattern", verbatim ---------------------------------------------------------


@ring_kernel(kernel_id="worker")
async def worker(ctx):  # type: ignore[no-untyped-def]
    # Optional: One-time initialization
    print(f"[{ctx.kernel_id}] Initializing...")

    # Main processing loop
    while not ctx.should_terminate:
        # Handle deactivation
        if not ctx.is_active:
            print(f"[{ctx.kernel_id}] Paused, waiting...")
            await ctx.wait_active()
            print(f"[{ctx.kernel_id}] Resumed!")
            continue

        try:
            # Process messages with timeout
            msg = await ctx.receive(timeout=0.1)
            result = process(msg)
            await ctx.send(result)

        except asyncio.TimeoutError:  # noqa: UP041 - the spec's spelling, kept on purpose
            # No message - loop back to check termination
            continue

    # Optional: Cleanup
    print(f"[{ctx.kernel_id}] Cleaning up...")


# Three more kernels for "Two-Phase Launch" (the spec leaves their bodies open).
@ring_kernel(kernel_id="kernel_a")
async def kernel_a(ctx):  # type: ignore[no-untyped-def]
    async for msg in ctx.messages():
        await ctx.send(msg)


@ring_kernel(kernel_id="kernel_b")
async def kernel_b(ctx):  # type: ignore[no-untyped-def]
    async for msg in ctx.messages():
        await ctx.send(msg)


@ring_kernel(kernel_id="kernel_c")
async def kernel_c(ctx):  # type: ignore[no-untyped-def]
    async for msg in ctx.messages():
        await ctx.send(msg)


@pytest.fixture(autouse=True)
def _the_spec_kernels_are_registered() -> None:
    """Another test module may register its own "worker": the spec's must be the one used."""
    for kernel in (worker, kernel_a, kernel_b, kernel_c):
        ring_kernel(kernel_id=kernel.kernel_id)(kernel.func)


def kernel_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t.get_name().startswith("ringctl:")}


class Printed:
    """Everything printed so far (capsys hands out only what is new on each read)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self._text = ""

    @property
    def lines(self) -> list[str]:
        self._text += self._capsys.readouterr().out
        return self._text.splitlines()


# -- States ---------------------------------------------------------------------------------


async def test_created_kernel_is_defined_but_not_in_runtime() -> None:
    runtime = RingKernelRuntime()
    # Kernel is CREATED but not in runtime
    assert runtime.get_state("worker") is KernelState.CREATED
    assert "worker" not in runtime.kernel_ids


async def test_each_state_means_what_the_spec_says() -> None:
    async with RingKernelRuntime() as runtime:
        await runtime.launch("worker")
        # State: LAUNCHED - queues created, task not yet running
        assert runtime.get_state("worker") is KernelState.LAUNCHED
        await runtime.send("worker", 1)  # the input queue exists already
        assert runtime.queued("worker") == 1
        assert not kernel_tasks()

        await runtime.activate("worker")
        # State: ACTIVE - task running, processing messages
        assert runtime.get_state("worker") is KernelState.ACTIVE
        assert await runtime.receive("worker", timeout=2) == ("processed", 1)
        assert len(kernel_tasks()) == 1

        await runtime.deactivate("worker")
        # State: DEACTIVATED - messages still queue
        assert runtime.get_state("worker") is KernelState.DEACTIVATED
        await runtime.send("worker", 2)
        assert runtime.queued("worker") == 1

        await runtime.reactivate("worker")
        assert await runtime.receive("worker", timeout=2) == ("processed", 2)

        await runtime.terminate("worker")
        # State: TERMINATED - task done, cannot restart
        assert runtime.get_state("worker") is KernelState.TERMINATED
        assert not kernel_tasks()


# -- Two-Phase Launch -----------------------------------------------------------------------


async def test_two_phase_launch() -> None:
    async with RingKernelRuntime() as runtime:
        # Allocate resources for all kernels
        await runtime.launch("kernel_a")
        await runtime.launch("kernel_b")
        await runtime.launch("kernel_c")

        # At this point: all queues created, nothing processing yet
        for kid in ("kernel_a", "kernel_b", "kernel_c"):
            assert runtime.get_state(kid) is KernelState.LAUNCHED
        assert runtime.active_kernels == []
        assert not kernel_tasks()

        # Start processing together
        await runtime.activate("kernel_a")
        await runtime.activate("kernel_b")
        await runtime.activate("kernel_c")

        # Now all kernels are processing
        assert runtime.active_kernels == ["kernel_a", "kernel_b", "kernel_c"]
        for kid in ("kernel_a", "kernel_b", "kernel_c"):
            await runtime.send(kid, kid)
            assert await runtime.receive(kid, timeout=2) == kid


# -- Actor Loop Pattern ---------------------------------------------------------------------


async def test_actor_loop_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    printed = Printed(capsys)
    async with RingKernelRuntime() as runtime:
        await runtime.launch("worker")
        await runtime.activate("worker")
        await wait_until(lambda: "[worker] Initializing..." in printed.lines)

        await runtime.send("worker", "a")
        assert await runtime.receive("worker", timeout=2) == ("processed", "a")

        await runtime.deactivate("worker")
        await wait_until(lambda: "[worker] Paused, waiting..." in printed.lines)
        await runtime.reactivate("worker")
        await wait_until(lambda: "[worker] Resumed!" in printed.lines)

        await runtime.send("worker", "b")
        assert await runtime.receive("worker", timeout=2) == ("processed", "b")

        report = await runtime.terminate("worker", timeout=5.0)
        assert report.graceful

    assert printed.lines == [
        "[worker] Initializing...",
        "[worker] Paused, waiting...",
        "[worker] Resumed!",
        "[worker] Cleaning up...",
    ]


# -- Pause and Resume -----------------------------------------------------------------------


async def test_pause_and_resume() -> None:
    batch_1 = [f"one-{i}" for i in range(20)]
    batch_2 = [f"two-{i}" for i in range(20)]
    results_1, results_2 = [], []

    async with RingKernelRuntime() as runtime:
        await runtime.launch("worker")
        await runtime.activate("worker")

        # Process some messages
        for msg in batch_1:
            await runtime.send("worker", msg)
        for _ in range(len(batch_1)):
            results_1.append(await runtime.receive("worker"))

        # Pause for maintenance
        await runtime.deactivate("worker")

        # Messages queue up but aren't processed
        for msg in batch_2:
            await runtime.send("worker", msg)
        assert runtime.queued("worker") == len(batch_2)
        with pytest.raises(TimeoutError):
            await runtime.receive("worker", timeout=0.15)  # longer than the loop's 0.1 s

        # Resume processing
        await runtime.reactivate("worker")

        # Queued messages now processed
        for _ in range(len(batch_2)):
            results_2.append(await runtime.receive("worker"))

    assert results_1 == [process(m) for m in batch_1]
    assert results_2 == [process(m) for m in batch_2]


# -- Graceful Shutdown ----------------------------------------------------------------------


async def test_graceful_shutdown(capsys: pytest.CaptureFixture[str]) -> None:
    printed = Printed(capsys)
    async with RingKernelRuntime() as runtime:
        await runtime.launch("worker")
        await runtime.activate("worker")

        started = time.monotonic()
        # Request termination with timeout
        report = await runtime.terminate("worker", timeout=5.0)

        # 1-2: should_terminate became True and the loop exited on its next check,
        # well inside the 5 s (its receive times out every 0.1 s)
        assert time.monotonic() - started < 1.0
        assert report.graceful and not report.forced
        assert "[worker] Cleaning up..." in printed.lines
        # 5. State becomes TERMINATED
        assert runtime.get_state("worker") is KernelState.TERMINATED
        assert not kernel_tasks()


async def test_terminate_all() -> None:
    async with RingKernelRuntime() as runtime:
        for kid in ("worker", "kernel_a", "kernel_b", "kernel_c"):
            await runtime.launch(kid)
            await runtime.activate(kid)

        # Terminate all at once
        await runtime.terminate_all(timeout=10.0)

        for kid in runtime.kernel_ids:
            assert runtime.get_state(kid) is KernelState.TERMINATED
        assert runtime.active_kernels == []
        assert not kernel_tasks()


# -- Using Context Manager ------------------------------------------------------------------


async def test_context_manager() -> None:
    async with RingKernelRuntime() as runtime:
        await runtime.launch("worker")
        await runtime.activate("worker")

        # Use kernel...
        await runtime.send("worker", 7)
        assert await runtime.receive("worker", timeout=2) == ("processed", 7)

    # Automatically terminates all on exit
    assert runtime.get_state("worker") is KernelState.TERMINATED
    assert not kernel_tasks()


# -- Error Handling -------------------------------------------------------------------------


async def test_invalid_state_transition(capsys: pytest.CaptureFixture[str]) -> None:
    from ringctl.exceptions import KernelStateError

    runtime = RingKernelRuntime()
    caught = None
    try:
        await runtime.activate("worker")  # Not launched!
    except KernelStateError as e:
        print(f"State: {e.current_state}, need: {e.expected_states}")
        caught = e

    assert caught is not None
    assert caught.current_state is KernelState.CREATED
    assert KernelState.LAUNCHED in caught.expected_states
    assert capsys.readouterr().out.startswith("State: KernelState.CREATED, need: (")


# -- Monitoring State -----------------------------------------------------------------------


async def test_monitoring_state(capsys: pytest.CaptureFixture[str]) -> None:
    async with RingKernelRuntime() as runtime:
        for kid in ("kernel_a", "kernel_b", "kernel_c"):
            await runtime.launch(kid)
        await runtime.activate("kernel_a")
        await runtime.activate("kernel_b")
        await runtime.deactivate("kernel_b")

        # Check current state
        state = runtime.get_state("kernel_a")
        print(f"State: {state.name}")

        # List all kernels
        for kernel_id in runtime.kernel_ids:
            state = runtime.get_state(kernel_id)
            print(f"{kernel_id}: {state.name}")

        # List only active
        for kernel_id in runtime.active_kernels:
            print(f"Active: {kernel_id}")

    assert capsys.readouterr().out.splitlines() == [
        "State: ACTIVE",
        "kernel_a: ACTIVE",
        "kernel_b: DEACTIVATED",
        "kernel_c: LAUNCHED",
        "Active: kernel_a",
    ]
