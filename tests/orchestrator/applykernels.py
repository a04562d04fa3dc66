"""Kernels for the ``ringctl apply`` tests: a numbered source and a sink that keeps every
number it took, so a test can tell that each message arrived exactly once.

Both keep what they did in ``ctx.state``: a restart that keeps it (the default) goes on
from where the last instance stopped. Each writes its report (JSON) when its body ends.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ringctl import KernelContext, ring_kernel

__all__ = ["collect", "numbered"]


def _write(path: str, document: object) -> None:
    if not path:
        return
    target = Path(path)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(document))
    tmp.replace(target)


class NumberedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: float = Field(1000.0, gt=0, description="Messages per second.")
    report: str = ""
    trigger: str = Field("", description="When this file appears, block the event loop.")
    block: float = Field(0.0, ge=0, description="For this long.")


@ring_kernel(kernel_id="numbered", params=NumberedParams, ports=("out",))
async def numbered(ctx: KernelContext) -> None:
    """Send 1, 2, 3, ... at ``rate``; the next number lives in ctx.state."""
    p: NumberedParams = ctx.params
    ctx.metrics["rate"] = p.rate
    try:
        while not ctx.should_terminate:
            if not ctx.is_active:
                await ctx.wait_active()
                continue
            if p.trigger and Path(p.trigger).exists():  # noqa: ASYNC240
                Path(p.trigger).unlink()  # noqa: ASYNC240
                time.sleep(p.block)  # noqa: ASYNC251  (the point: block the loop)
            n = ctx.state.get("sent", 0) + 1
            await ctx.send(n)
            ctx.state["sent"] = n
            ctx.metrics["sent"] = n
            await asyncio.sleep(1.0 / p.rate)
    finally:
        _write(p.report, {"sent": ctx.state.get("sent", 0)})


class CollectParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = ""
    delay: float = Field(0.0, ge=0, description="Seconds spent on each message.")
    report: str = ""


@ring_kernel(kernel_id="collect", params=CollectParams, ports=())
async def collect(ctx: KernelContext) -> None:
    """Keep every number taken (in ctx.state, shared by replicas); ``label`` is shown
    as a metric, so a test sees which params an instance runs with."""
    p: CollectParams = ctx.params
    seen: list[int] = ctx.state.setdefault("seen", [])
    ctx.metrics["label"] = p.label
    try:
        async for msg in ctx.messages():
            if p.delay:
                await asyncio.sleep(p.delay)
            seen.append(msg)
            ctx.metrics["received"] = len(seen)
    finally:
        _write(p.report, {"seen": seen, "label": p.label})
