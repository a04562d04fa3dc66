"""Test-only kernels for the orchestrator and control-plane tests.

Topologies under ``tests/orchestrator/topologies/`` reach them as
``orchestrator.testkernels:NAME`` (their ``python_path`` puts ``tests/`` first), and the
in-process tests import the same module, so a test and a supervisor process agree on
what each kernel does. A kernel that takes ``report`` writes its totals there as JSON
when its body ends (also when it is force-stopped): that is how a test reads what a
detached supervisor's kernels did after the supervisor has gone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ringctl import KernelContext, ring_kernel

__all__ = [
    "boom",
    "chatty",
    "flaky",
    "hog",
    "hostile",
    "relay",
    "setup_fails",
    "slow_setup",
    "solo",
    "tally",
    "ticker",
]


def _write_report(path: str | None, document: dict[str, Any]) -> None:
    if not path:
        return
    target = Path(path)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(document))
    tmp.replace(target)  # a reader never sees half a report


async def _hold_while_paused(ctx: KernelContext) -> bool:
    """A source's loop guard: wait while paused; False once asked to stop."""
    while not ctx.is_active and not ctx.should_terminate:
        await ctx.wait_active()
    return not ctx.should_terminate


class TickerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int | None = Field(None, ge=0, description="How many to send; null: until stopped.")
    rate: float | None = Field(None, gt=0, description="Messages per second; null: flat out.")
    report: str | None = None


@ring_kernel(kernel_id="ticker", params=TickerParams, ports=("out",))
async def ticker(ctx: KernelContext) -> None:
    """Send 1, 2, 3, ... one message each; metrics ``sent`` and ``sum`` count them."""
    p: TickerParams = ctx.params
    loop = asyncio.get_running_loop()
    interval = 1.0 / p.rate if p.rate else 0.0
    sent = total = 0
    next_at = loop.time()
    try:
        while await _hold_while_paused(ctx):
            if p.count is not None and sent >= p.count:
                break
            if interval:
                next_at = max(next_at + interval, loop.time() - 0.5)
                delay = next_at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if ctx.should_terminate:
                    break
            value = sent + 1
            await ctx.send(value)
            sent, total = value, total + value
            ctx.metrics["sent"], ctx.metrics["sum"] = sent, total
    finally:
        _write_report(p.report, {"sent": sent, "sum": total})


class TallyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delay: float = Field(0.0, ge=0, description="Seconds spent on each message.")
    block: float = Field(
        0.0,
        ge=0,
        description="Seconds of time.sleep on each message: blocks the whole event loop, "
        "as heavy work done wrong does.",
    )
    report: str | None = None


@ring_kernel(kernel_id="tally", params=TallyParams, ports=())
async def tally(ctx: KernelContext) -> None:
    """A sink: metrics ``received`` and ``sum`` of what it took."""
    p: TallyParams = ctx.params
    received: int = ctx.state.get("received", 0)
    total: int = ctx.state.get("sum", 0)
    try:
        async for msg in ctx.messages():
            if p.delay:
                await asyncio.sleep(p.delay)
            if p.block:
                time.sleep(p.block)  # noqa: ASYNC251  (the point: block the loop)
            received += 1
            total += msg
            ctx.state["received"], ctx.state["sum"] = received, total
            ctx.metrics["received"], ctx.metrics["sum"] = received, total
    finally:
        _write_report(p.report, {"received": received, "sum": total})


@ring_kernel(kernel_id="relay", ports=("out",))
async def relay(ctx: KernelContext) -> None:
    """Forward every message unchanged."""
    async for msg in ctx.messages():
        await ctx.send(msg)


class FlakyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fail_on: int = Field(description="The message value that makes the body raise.")
    times: int = Field(1, ge=0, description="How many times it raises on that value.")


@ring_kernel(kernel_id="flaky", params=FlakyParams, ports=())
async def flaky(ctx: KernelContext) -> None:
    """A sink that raises ``times`` times on ``fail_on``; ``ctx.state["seen"]`` lists what it
    took (the state survives restarts, so the list covers every instance)."""
    p: FlakyParams = ctx.params
    seen: list[int] = ctx.state.setdefault("seen", [])
    async for msg in ctx.messages():
        seen.append(msg)
        ctx.metrics["seen"] = len(seen)
        if msg == p.fail_on and ctx.state.get("failures", 0) < p.times:
            ctx.state["failures"] = ctx.state.get("failures", 0) + 1
            raise RuntimeError(f"flaky: cannot take {msg}")


@ring_kernel(kernel_id="boom", ports=())
async def boom(ctx: KernelContext) -> None:
    """Fails on every message it takes."""
    async for msg in ctx.messages():
        raise ValueError(f"boom on {msg!r}")


def _broken_setup(ctx: KernelContext) -> None:
    raise OSError("no such device: /dev/ring0")


@ring_kernel(kernel_id="setup_fails", setup=_broken_setup, ports=())
async def setup_fails(ctx: KernelContext) -> None:
    """Never runs: its set-up hook raises at launch."""
    async for _ in ctx.messages():
        pass


class HogParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trigger: str = Field(description="When this file appears, block the event loop.")
    seconds: float = Field(3.0, gt=0, description="For this long.")


@ring_kernel(kernel_id="hog", params=HogParams, ports=())
async def hog(ctx: KernelContext) -> None:
    """Blocks its supervisor's event loop (as heavy work done wrong does) on a trigger:
    a supervisor that cannot answer its socket for a while is still running."""
    p: HogParams = ctx.params
    trigger = Path(p.trigger)
    while not ctx.should_terminate:
        if trigger.exists():  # noqa: ASYNC240
            trigger.unlink()  # noqa: ASYNC240
            time.sleep(p.seconds)  # noqa: ASYNC251  (the point: block the loop)
        await asyncio.sleep(0.01)


@ring_kernel(kernel_id="chatty", ports=())
async def chatty(ctx: KernelContext) -> None:
    """A sink that prints each message and logs a warning on every tenth."""
    log = logging.getLogger("chatty")
    async for msg in ctx.messages():
        print(f"got {msg}")
        if msg % 10 == 0:
            log.warning("a round number: %d", msg)


def _one_replica_only(ctx: KernelContext) -> None:
    if ctx.replicas > 1:
        raise ValueError(
            f"{ctx.kernel_id}: keeps a running estimate, so it must run as one replica "
            f"(got replicas: {ctx.replicas})"
        )


@ring_kernel(kernel_id="solo", setup=_one_replica_only, ports=())
async def solo(ctx: KernelContext) -> None:
    """A sink that, like ``ewma``, refuses to run as several replicas."""
    async for _ in ctx.messages():
        pass


class SlowSetupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(2.0, gt=0, description="How long the set-up hook takes.")


def _slow_setup(ctx: KernelContext) -> None:
    time.sleep(ctx.params.seconds)  # what loading a model or compiling does, synchronously


@ring_kernel(kernel_id="slow_setup", params=SlowSetupParams, setup=_slow_setup, ports=())
async def slow_setup(ctx: KernelContext) -> None:
    """Takes ``seconds`` to set up, then returns at once."""
    return None


class FailAtParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: int = Field(description="Raise on a batch whose first value is at least this.")


@ring_kernel(kernel_id="fail_at", params=FailAtParams, ports=("out",))
async def fail_at(ctx: KernelContext) -> None:
    """Forward NumPy batches; raise on one whose first value is ``at`` or more."""
    p: FailAtParams = ctx.params
    async for batch in ctx.messages():
        if int(batch[0]) >= p.at:
            raise ValueError(f"fail_at: batch starting at {int(batch[0])}")
        await ctx.send(batch)


class FailEveryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every: int = Field(ge=1, description="Raise on every message whose value is a multiple.")


@ring_kernel(kernel_id="fail_every", params=FailEveryParams, ports=("out",))
async def fail_every(ctx: KernelContext) -> None:
    """Forward ints; raise on each multiple of ``every`` (the message in hand is the only
    one a failure costs: it was delivered, then counted as an error)."""
    p: FailEveryParams = ctx.params
    async for msg in ctx.messages():
        if msg % p.every == 0:
            raise RuntimeError(f"fail_every: {msg} is a multiple of {p.every}")
        await ctx.send(msg)


@ring_kernel(kernel_id="stubborn", ports=())
async def stubborn(ctx: KernelContext) -> None:
    """Takes messages, and swallows every cancellation: it never stops on request."""
    while True:
        try:
            await asyncio.sleep(0.02)
            while ctx.is_active:
                try:
                    await ctx.receive(timeout=0.02)
                except TimeoutError:
                    break
        except asyncio.CancelledError:
            pass  # the point: a kernel that refuses to stop


class LoopSeedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=0, description="How many to send, then wait for as many acks.")


@ring_kernel(kernel_id="loop_seed", params=LoopSeedParams, ports=("out",))
async def loop_seed(ctx: KernelContext) -> None:
    """Send 1..count, then take one acknowledgement back per message (a feedback loop)."""
    p: LoopSeedParams = ctx.params
    for value in range(1, p.count + 1):
        await ctx.send(value)
    acked = 0
    while acked < p.count and not ctx.should_terminate:
        try:
            await ctx.receive(timeout=0.1)
        except TimeoutError:
            continue
        acked += 1
        ctx.metrics["acked"] = acked


@ring_kernel(kernel_id="echo_back", ports=("out", "back"))
async def echo_back(ctx: KernelContext) -> None:
    """Forward every message on ``out`` and acknowledge it on ``back``."""
    async for msg in ctx.messages():
        await ctx.send(msg)
        await ctx.send(msg, port="back")


class CrashyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fail_on: list[int] = Field(default_factory=list, description="Values to fail on, once each.")


@ring_kernel(kernel_id="crashy", params=CrashyParams, ports=("out",))
async def crashy(ctx: KernelContext) -> None:
    """Forward ints; raise once on each value of ``fail_on`` (the state survives restarts)."""
    p: CrashyParams = ctx.params
    failed: set[int] = ctx.state.setdefault("failed", set())
    async for msg in ctx.messages():
        if msg in p.fail_on and msg not in failed:
            failed.add(msg)
            raise RuntimeError(f"crashy: {msg}")
        await ctx.send(msg)


#: Text that would set the terminal's title, clear the screen, colour what follows,
#: overwrite the line, and reverse it, if a command printed it as it is.
HOSTILE = "A\x1b]0;pwned\x07B\x1b[2JC\x1b[31mD\rE\x00F\u202eG"


class HostileParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fail_after: int = Field(0, ge=0, description="Raise after this many messages; 0: never.")


@ring_kernel(kernel_id="hostile", params=HostileParams, ports=())
async def hostile(ctx: KernelContext) -> None:
    """A sink whose output, metric and error all hold escape sequences and controls."""
    p: HostileParams = ctx.params
    seen = 0
    async for _msg in ctx.messages():
        seen += 1
        if seen == 1:
            print(f"said {HOSTILE}")
            logging.getLogger("hostile").warning("logged %s", HOSTILE)
        ctx.metrics[f"m{HOSTILE}"] = seen
        ctx.metrics["note"] = f"v{HOSTILE}"
        if p.fail_after and seen >= p.fail_after:
            raise RuntimeError(f"bad {HOSTILE}")


class QuitterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: int = Field(100, ge=1, description="Leave on the message with this value.")
    kind: str = Field(
        "SystemExit",
        description="What to raise: SystemExit, KeyboardInterrupt or GeneratorExit.",
    )


_LEAVERS: dict[str, type[BaseException]] = {
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
}


@ring_kernel(kernel_id="quitter", params=QuitterParams, ports=())
async def quitter(ctx: KernelContext) -> None:
    """A sink that tries to leave the process (``sys.exit(0)`` and the like) on ``at``."""
    p: QuitterParams = ctx.params
    async for msg in ctx.messages():
        if msg == p.at:
            if p.kind == "SystemExit":
                raise SystemExit(0)
            raise _LEAVERS[p.kind]()
