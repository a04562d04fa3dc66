"""PageRank over a generated sparse graph: one power iteration per message.

The graph is built at launch (``setup``, phase 1) from a seed and kept on the kernel's
device; the rank vector lives in ``ctx.state``, so a restarted kernel resumes from the
last iterate. A message that is a rank vector of the graph's size replaces the current
one first (so a feedback loop can drive it); any other message is just a tick.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kernels.compute.backend import to_numpy
from kernels.compute.graph import PageRankImpl, pagerank_step, random_graph, resolve_pagerank_impl
from kernels.records import PageRankStep
from ringctl import KernelContext, ring_kernel
from ringctl.authoring import device_scope

__all__ = ["PageRankParams", "pagerank"]


class PageRankParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nodes: int = Field(10_000, ge=2, description="Nodes of the generated graph.")
    avg_degree: float = Field(8.0, gt=0, description="Mean out-links per node (Poisson).")
    seed: int = Field(0, description="Seeds the graph: same seed, same graph, same ranks.")
    damping: float = Field(0.85, gt=0, lt=1, description="Probability of following a link.")
    top: int = Field(5, ge=0, description="Leading nodes reported with every iteration.")
    emit_rank: bool = Field(
        False, description="Also send the whole rank vector (a host copy per iteration)."
    )
    impl: PageRankImpl = Field(
        "auto", description="auto: numba on cpu (numpy if missing), cusparse on cuda."
    )


def _setup_pagerank(ctx: KernelContext) -> None:
    p: PageRankParams = ctx.params
    xp = ctx.xp
    with device_scope(ctx):
        impl = resolve_pagerank_impl(p.impl, xp)
        graph = random_graph(p.nodes, p.avg_degree, p.seed).to(xp)
        rank = ctx.state.get("rank")
        if rank is None or int(rank.shape[0]) != p.nodes:
            rank = xp.full(p.nodes, 1.0 / p.nodes, dtype=xp.float64)
            ctx.state["iteration"] = 0
        pagerank_step(graph, rank, p.damping, impl=impl)  # compile / warm now, not mid-stream
    ctx.state.update(graph=graph, impl=impl, rank=rank)
    ctx.metrics["edges"] = graph.edges


@ring_kernel(kernel_id="pagerank", params=PageRankParams, ports=("out",), setup=_setup_pagerank)
async def pagerank(ctx: KernelContext) -> None:
    """One PageRank iteration per message; sends a ``PageRankStep`` (residual, leaders)."""
    p: PageRankParams = ctx.params
    xp = ctx.xp
    if "graph" not in ctx.state:
        _setup_pagerank(ctx)
    graph = ctx.state["graph"]
    impl: PageRankImpl = ctx.state["impl"]
    async for msg in ctx.messages():
        with device_scope(ctx):
            rank: Any = ctx.state["rank"]
            if getattr(msg, "shape", None) == (p.nodes,):
                rank = xp.asarray(msg, dtype=xp.float64)
            nxt = pagerank_step(graph, rank, p.damping, impl=impl)
            residual = float(xp.abs(nxt - rank).sum())
            order = xp.argsort(-nxt)[: p.top]
            step = PageRankStep(
                iteration=ctx.state.get("iteration", 0) + 1,
                residual=residual,
                top_nodes=to_numpy(order),
                top_ranks=to_numpy(nxt[order]),
                rank=to_numpy(nxt) if p.emit_rank else None,
            )
        ctx.state["rank"] = nxt
        ctx.state["iteration"] = step.iteration
        ctx.metrics["iteration"] = step.iteration
        ctx.metrics["residual"] = residual
        await ctx.send(step)
