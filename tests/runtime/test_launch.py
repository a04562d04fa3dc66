"""Phase 1 (launch): params checked against the kernel's model, the set-up hook, backends.

A launch that fails raises ``KernelLaunchError`` and leaves nothing behind: the id is not
in ``kernel_ids``, no task runs, and the same id can be launched again.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from ringctl import KernelContext, KernelState, RingKernelRuntime, ring_kernel
from ringctl.engine.local.backends import cuda_available
from ringctl.exceptions import KernelLaunchError

from .support import echo, other_tasks


class Scale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    factor: int
    offset: int = 0


@ring_kernel(kernel_id="launch-scale", params=Scale)
async def scale(ctx: KernelContext) -> None:
    async for x in ctx.messages():
        await ctx.send(x * ctx.params.factor + ctx.params.offset)


def assert_nothing_left(runtime: RingKernelRuntime, kernel_id: str) -> None:
    assert kernel_id not in runtime.kernel_ids
    assert not other_tasks()


async def test_params_are_validated_into_the_model(runtime: RingKernelRuntime) -> None:
    await runtime.launch("launch-scale", params={"factor": 3, "offset": 1})
    await runtime.activate("launch-scale")
    await runtime.send("launch-scale", 2)
    assert await runtime.receive("launch-scale", timeout=2) == 7


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"factor": "three"}, "factor: Input should be a valid integer"),
        ({}, "factor: Field required"),
        (None, "factor: Field required"),
        ({"factor": 1, "facter": 2}, "facter: Extra inputs are not permitted"),
    ],
)
async def test_bad_params_fail_the_launch_and_leave_nothing(
    runtime: RingKernelRuntime, params: Any, problem: str
) -> None:
    with pytest.raises(KernelLaunchError) as caught:
        await runtime.launch("launch-scale", params=params)
    assert caught.value.kernel_id == "launch-scale"
    assert "params do not fit Scale" in str(caught.value)
    assert problem in str(caught.value)
    assert_nothing_left(runtime, "launch-scale")
    assert runtime.get_state("launch-scale") is KernelState.CREATED

    await runtime.launch("launch-scale", params={"factor": 2})  # nothing in the way
    assert runtime.get_state("launch-scale") is KernelState.LAUNCHED


async def test_a_model_instance_is_accepted_as_is(runtime: RingKernelRuntime) -> None:
    params = Scale(factor=5)
    seen: list[Any] = []

    @ring_kernel(kernel_id="launch-instance", params=Scale)
    async def body(ctx: KernelContext) -> None:
        seen.append(ctx.params)

    await runtime.launch("launch-instance", params=params)
    await runtime.activate("launch-instance")
    await runtime.wait_finished("launch-instance", timeout=2)
    assert seen == [params] and seen[0] is params


async def test_plain_params_without_a_model_pass_through(runtime: RingKernelRuntime) -> None:
    seen: list[Any] = []

    async def body(ctx: KernelContext) -> None:
        seen.append(ctx.params)

    await runtime.launch("plain", body, params={"any": "thing"})
    await runtime.launch("none", body)
    await runtime.activate("plain")
    await runtime.activate("none")
    await runtime.wait_finished("plain", timeout=2)
    await runtime.wait_finished("none", timeout=2)
    assert seen == [{"any": "thing"}, {}]


# -- the set-up hook ------------------------------------------------------------------------


async def test_the_setup_hook_runs_at_launch_before_the_body(runtime: RingKernelRuntime) -> None:
    calls: list[str] = []

    async def warm_up(ctx: KernelContext) -> None:
        calls.append(f"setup {ctx.kernel_id}[{ctx.replica}]")
        ctx.state["table"] = {"a": 1}

    @ring_kernel(kernel_id="launch-warm", setup=warm_up)
    async def warm(ctx: KernelContext) -> None:
        calls.append("body")
        async for key in ctx.messages():
            await ctx.send(ctx.state["table"][key])

    await runtime.launch("launch-warm", replicas=2)
    assert calls == ["setup launch-warm[0]", "setup launch-warm[1]"]
    await runtime.activate("launch-warm")
    await runtime.send("launch-warm", "a")
    assert await runtime.receive("launch-warm", timeout=2) == 1


async def test_a_setup_hook_that_raises_fails_the_launch_cleanly(
    runtime: RingKernelRuntime,
) -> None:
    def no_device(ctx: KernelContext) -> None:
        raise RuntimeError("device busy")

    @ring_kernel(kernel_id="launch-broken-setup", setup=no_device)
    async def body(ctx: KernelContext) -> None:
        raise AssertionError("the body must never run")

    with pytest.raises(KernelLaunchError) as caught:
        await runtime.launch("launch-broken-setup")
    assert "set-up hook raised RuntimeError: device busy" in str(caught.value)
    assert "was not launched" in (caught.value.hint or "")
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert_nothing_left(runtime, "launch-broken-setup")
    assert runtime.get_state("launch-broken-setup") is KernelState.CREATED


# -- backends -------------------------------------------------------------------------------


@pytest.mark.skipif(cuda_available()[0], reason="this machine has a usable GPU")
async def test_cuda_without_a_gpu_fails_the_launch_clearly(runtime: RingKernelRuntime) -> None:
    with pytest.raises(KernelLaunchError) as caught:
        await runtime.launch("gpu", echo, backend="cuda")
    message = str(caught.value)
    assert "kernel 'gpu' could not be launched: backend: cuda needs a usable NVIDIA GPU" in message
    assert "backend: auto" in (caught.value.hint or "")
    assert_nothing_left(runtime, "gpu")


@pytest.mark.skipif(cuda_available()[0], reason="this machine has a usable GPU")
async def test_auto_falls_back_to_cpu_with_a_note(runtime: RingKernelRuntime) -> None:
    await runtime.launch("k", echo, backend="auto")
    info = runtime.get_info("k")
    assert info.backend == "cpu" and info.device is None
    snap = runtime.snapshot().kernel("k")
    assert snap.backend == "cpu"
    assert snap.backend_note is not None
    assert snap.backend_note.startswith("auto: no usable GPU") and "cpu" in snap.backend_note
    await runtime.activate("k")
    await runtime.send("k", "still works")
    assert await runtime.receive("k", timeout=2) == "still works"


async def test_an_unknown_backend_is_refused(runtime: RingKernelRuntime) -> None:
    with pytest.raises(KernelLaunchError, match="unknown backend 'tpu'"):
        await runtime.launch("k", echo, backend="tpu")
    assert_nothing_left(runtime, "k")


# -- other launch mistakes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"replicas": 0}, "replicas must be between 1 and 1024, got 0"),
        ({"replicas": 10_000_000}, "replicas must be between 1 and 1024, got 10000000"),
        ({"queue_size": 0}, "queue_size must be between 1 and 10000000, got 0"),
    ],
)
async def test_bad_sizes_fail_the_launch(
    runtime: RingKernelRuntime, kwargs: dict[str, int], reason: str
) -> None:
    with pytest.raises(KernelLaunchError, match=reason):
        await runtime.launch("k", echo, **kwargs)  # type: ignore[arg-type]
    assert_nothing_left(runtime, "k")


async def test_launching_something_that_is_not_a_kernel(runtime: RingKernelRuntime) -> None:
    def not_async(ctx: KernelContext) -> None:
        pass

    async def two_args(ctx: KernelContext, extra: int) -> None:
        pass

    with pytest.raises(KernelLaunchError, match="did you forget 'async'"):
        await runtime.launch("k", not_async)
    with pytest.raises(KernelLaunchError, match="exactly one argument"):
        await runtime.launch("k", two_args)
    with pytest.raises(KernelLaunchError, match="is not a kernel"):
        await runtime.launch("k", 42)
    assert_nothing_left(runtime, "k")


def test_ring_kernel_needs_an_async_def() -> None:
    with pytest.raises(TypeError, match="did you forget 'async'"):
        ring_kernel(kernel_id="launch-sync")(lambda ctx: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ValueError, match="queue_size"):
        ring_kernel(kernel_id="launch-tiny", queue_size=0)


async def test_ring_kernel_options_reach_the_runtime(runtime: RingKernelRuntime) -> None:
    @ring_kernel(kernel_id="launch-small", queue_size=3)
    async def small(ctx: KernelContext) -> None:
        async for msg in ctx.messages():
            await ctx.send(msg)

    assert small.kernel_id == "launch-small"
    await runtime.launch("launch-small")
    assert runtime.snapshot().kernel("launch-small").inbox_capacity == 3


async def test_looking_for_a_gpu_does_not_hold_the_loop(
    runtime: RingKernelRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Importing CuPy to answer "is there a usable GPU?" takes about a second where it is
    # installed; the kernels already running on the loop must not stall meanwhile.
    import asyncio
    import time

    from ringctl.engine.local import engine

    def slow_probe() -> tuple[bool, str]:
        time.sleep(0.3)
        return False, "no GPU in this test"

    monkeypatch.setattr(engine, "cuda_checked", lambda: False)
    monkeypatch.setattr(engine, "cuda_available", slow_probe)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        await runtime.launch("auto", echo, backend="auto")
    finally:
        ticker.cancel()
    assert ticks >= 5
    assert runtime.get_state("auto") is KernelState.LAUNCHED
