"""Test-only kernels that do what crash tests need: fork helpers, print fast, send big
messages. Topologies reach them as ``orchestrator.crashkernels:NAME`` (``python_path``
puts ``tests/`` first)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ringctl import KernelContext, ring_kernel

__all__ = ["big_source", "counter", "forks_helper", "printer"]


class ForksHelperParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pid_file: str = Field(description="Where to write the helper's pid.")


@ring_kernel(kernel_id="forks_helper", params=ForksHelperParams, ports=())
async def forks_helper(ctx: KernelContext) -> None:
    """Fork a helper process the way ``multiprocessing`` does by default on Linux (it
    inherits every fd of the supervisor), then idle until stopped."""
    p: ForksHelperParams = ctx.params
    helper = multiprocessing.get_context("fork").Process(target=time.sleep, args=(120,))
    helper.start()
    Path(p.pid_file).write_text(str(helper.pid))  # noqa: ASYNC240  (once, tiny)
    try:
        while not ctx.should_terminate:
            await asyncio.sleep(0.05)
    finally:
        helper.terminate()
        helper.join(5)


class PrinterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(gt=0, description="How many lines to print.")
    width: int = Field(1000, ge=9, description="Bytes in each line.")
    rate: float = Field(gt=0, description="Lines per second.")


@ring_kernel(kernel_id="printer", params=PrinterParams, ports=())
async def printer(ctx: KernelContext) -> None:
    """Print lines numbered 1..count (8 digits, padded to ``width``) at ``rate``."""
    p: PrinterParams = ctx.params
    pad = "x" * (p.width - 9)
    loop = asyncio.get_running_loop()
    begun = loop.time()
    n = 0
    while n < p.count and not ctx.should_terminate:
        due = min(p.count, int((loop.time() - begun) * p.rate) + 1)
        while n < due:
            n += 1
            print(f"{n:08d} {pad}")
        await asyncio.sleep(0.005)


class BigSourceParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(gt=0, description="How many arrays to send.")
    mib: float = Field(4.0, gt=0, description="MiB in each array.")
    start_file: str = Field(description="Send once this file exists.")


@ring_kernel(kernel_id="big_source", params=BigSourceParams, ports=("out",))
async def big_source(ctx: KernelContext) -> None:
    """Once ``start_file`` exists, send ``count`` float32 arrays of ``mib`` MiB as fast as
    the edge takes them (a new array each), then idle until stopped."""
    import numpy as np

    p: BigSourceParams = ctx.params
    while not os.path.exists(p.start_file) and not ctx.should_terminate:  # noqa: ASYNC240
        await asyncio.sleep(0.02)
    words = int(p.mib * 1024 * 1024) // 4
    for i in range(p.count):
        if ctx.should_terminate:
            break
        await ctx.send(np.full(words, i, dtype=np.float32))
        ctx.metrics["sent"] = i + 1
    while not ctx.should_terminate:
        await asyncio.sleep(0.05)


@ring_kernel(kernel_id="counter", ports=())
async def counter(ctx: KernelContext) -> None:
    """A sink that only counts what it takes (metric ``received``)."""
    received = 0
    async for _msg in ctx.messages():
        received += 1
        ctx.metrics["received"] = received
