"""The kernels ``feedback_loop.yaml`` names, so that its entries resolve.

A dispatcher hands out jobs, workers send each to ``done`` or back on ``retry``, and a
collector counts what is done. Small, but real: ``validate --import`` checks the ports.
"""

from __future__ import annotations

from ringctl import KernelContext, ring_kernel


@ring_kernel(kernel_id="dispatch", ports=("out",))
async def dispatch(ctx: KernelContext) -> None:
    async for job in ctx.messages():
        await ctx.send(job)


@ring_kernel(kernel_id="work", ports=("done", "retry"))
async def work(ctx: KernelContext) -> None:
    async for job in ctx.messages():
        await ctx.send(job, port="done" if job % 2 == 0 else "retry")


@ring_kernel(kernel_id="collect", ports=())
async def collect(ctx: KernelContext) -> None:
    async for _ in ctx.messages():
        ctx.metrics["done"] = ctx.metrics.get("done", 0) + 1
