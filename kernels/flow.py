"""Joining branches of a fan-out back together.

After a broadcast, each branch gets every message; a map kernel keeps a ``Keyed``
message's key, so the branches' results can be matched again here by key. The join
cannot know which branch a part came from (a kernel has one inbox), so it combines the
``ways`` parts of a key with an order-free operation, or as a tuple in arrival order.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import reduce
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kernels.compute.backend import xp_of
from kernels.records import Keyed
from ringctl import KernelContext, ring_kernel

__all__ = ["JoinParams", "combine", "join"]

JoinOp = Literal["sum", "mean", "max", "min", "tuple"]


class JoinParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ways: int = Field(2, ge=2, description="Parts that make a key complete (the branch count).")
    op: JoinOp = Field(
        "sum",
        description="How parts combine: sum | mean | max | min, or tuple (arrival order).",
    )
    max_pending: int = Field(
        100_000,
        ge=1,
        description=(
            "Incomplete keys kept at most; past it the oldest is evicted and counted "
            "(metric 'evicted'), so a lost part cannot grow memory without bound."
        ),
    )


def combine(parts: list[Any], op: JoinOp) -> Any:
    """Combine a key's parts; numbers and arrays (NumPy or CuPy) alike."""
    if op == "tuple":
        return tuple(parts)
    if op in ("sum", "mean"):
        total = reduce(lambda a, b: a + b, parts)
        return total / len(parts) if op == "mean" else total
    if all(isinstance(v, int | float) for v in parts):
        return max(parts) if op == "max" else min(parts)
    xp = xp_of(parts[0])
    fn = xp.maximum if op == "max" else xp.minimum
    return reduce(fn, parts)


@ring_kernel(kernel_id="join", params=JoinParams, ports=("out",))
async def join(ctx: KernelContext) -> None:
    """Wait for ``ways`` ``Keyed`` parts with the same key; send ``Keyed(key, combined)``."""
    p: JoinParams = ctx.params
    pending: OrderedDict[Any, list[Any]] = ctx.state.setdefault("pending", OrderedDict())
    joined = 0
    async for batch in ctx.batches(256):
        out = []
        for msg in batch:
            if not isinstance(msg, Keyed):
                ctx.record_error(f"join expects Keyed messages, got {type(msg).__name__}")
                continue
            parts = pending.setdefault(msg.key, [])
            parts.append(msg.data)
            if len(parts) < p.ways:
                if len(pending) > p.max_pending:
                    pending.popitem(last=False)
                    ctx.metrics["evicted"] = int(ctx.metrics.get("evicted", 0)) + 1
                continue
            del pending[msg.key]
            out.append(Keyed(msg.key, combine(parts, p.op)))
        if out:
            joined += len(out)
            ctx.metrics["joined"] = joined
            ctx.metrics["pending"] = len(pending)
            await ctx.send_batch(out)
