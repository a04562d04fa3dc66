"""Kernels for the Ray fault tests: they say where they run, and fail on purpose."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from ringctl import KernelContext, ring_kernel


class RelayParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pid_file: str | None = None  # the actor's process id is written here
    fail_at: int | None = None  # raise on this message
    block_at: int | None = None  # block the actor's event loop for good on this message


def _write_pid(ctx: KernelContext) -> None:
    if ctx.params.pid_file:
        Path(ctx.params.pid_file).write_text(str(os.getpid()))


@ring_kernel(kernel_id="fault_relay", params=RelayParams, ports=("out",), setup=_write_pid)
async def relay(ctx: KernelContext) -> None:
    """Pass every message on; raise on message ``fail_at``, hang on ``block_at``."""
    p: RelayParams = ctx.params
    seen = 0
    async for msg in ctx.messages():
        seen += 1
        if p.fail_at is not None and seen >= p.fail_at:
            raise ValueError(f"failing on message {seen}, as asked")
        if p.block_at is not None and seen >= p.block_at:
            time.sleep(3600)  # noqa: ASYNC251 - blocks the actor's loop on purpose
        await ctx.send(msg)


class CountingSourceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pid_file: str  # the actor's process id is written here
    sent_file: str  # how many messages its sends returned for, rewritten after each send


def _write_pid_file(ctx: KernelContext) -> None:
    Path(ctx.params.pid_file).write_text(str(os.getpid()))


@ring_kernel(
    kernel_id="counting_source", params=CountingSourceParams, ports=("out",),
    setup=_write_pid_file,
)  # fmt: skip
async def counting_source(ctx: KernelContext) -> None:
    """Send 1, 2, 3, ... flat out; after each send, write how many were sent (what a
    test counts on after the actor was killed with -9)."""
    p: CountingSourceParams = ctx.params
    fd = os.open(p.sent_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    sent = 0
    try:
        while not ctx.should_terminate:
            await ctx.send(sent + 1)
            sent += 1
            os.pwrite(fd, f"{sent:>12}\n".encode(), 0)
    finally:
        os.close(fd)


class SlowParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delay: float  # seconds spent on each message
    pid_file: str | None = None


@ring_kernel(kernel_id="slow_relay", params=SlowParams, ports=("out",), setup=_write_pid)
async def slow_relay(ctx: KernelContext) -> None:
    """Pass every message on, ``delay`` seconds each."""
    async for msg in ctx.messages():
        await asyncio.sleep(ctx.params.delay)
        await ctx.send(msg)


@ring_kernel(kernel_id="slow_sink", params=SlowParams, ports=(), setup=_write_pid)
async def slow_sink(ctx: KernelContext) -> None:
    """Take every message, ``delay`` seconds each; metric ``received``."""
    received = 0
    async for _msg in ctx.messages():
        await asyncio.sleep(ctx.params.delay)
        received += 1
        ctx.metrics["received"] = received
