"""Moving statistics and the anomaly detector built on them.

``ewma`` keeps per-channel exponentially weighted mean and variance across batches and
sends each batch on with the estimates from *before* each sample (``MovingStats``);
``zscore`` flags samples too many standard deviations from those estimates. Both are
stateful along the stream, so each runs as one replica (``ewma`` refuses more at
launch: interleaved batches would make its estimates meaningless).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kernels.compute.backend import as_xp, to_numpy
from kernels.compute.stats import EwmaImpl, anomalies, ewma, warm_up_ewma, zscore
from kernels.records import Anomalies, MovingStats
from ringctl import KernelContext, ring_kernel
from ringctl.authoring import device_scope

__all__ = ["EwmaParams", "ZScoreParams", "ewma_stats", "zscore_detector"]


class EwmaParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(
        0.02,
        gt=0,
        le=1,
        description="Weight of the newest sample; about 1/alpha samples of memory.",
    )
    impl: EwmaImpl = Field(
        "auto",
        description=(
            "auto: numba on cpu (scan if numba is missing), scan on cuda; "
            "or force numba | scan | cuda_raw | python."
        ),
    )


def _setup_ewma(ctx: KernelContext) -> None:
    if ctx.replicas > 1:
        raise ValueError(
            f"{ctx.kernel_id}: ewma carries its estimates from batch to batch, so it must "
            f"run as one replica (got replicas: {ctx.replicas})"
        )
    p: EwmaParams = ctx.params
    with device_scope(ctx):
        # Compiling here (phase 1) keeps Numba's ~1 s first-call cost out of the stream.
        ctx.state["impl"] = warm_up_ewma(ctx.xp, p.impl)


@ring_kernel(kernel_id="ewma", params=EwmaParams, ports=("out",), setup=_setup_ewma)
async def ewma_stats(ctx: KernelContext) -> None:
    """Per-channel EWMA mean/variance of ``(rows, channels)`` batches, sent as ``MovingStats``."""
    p: EwmaParams = ctx.params
    xp = ctx.xp
    impl: EwmaImpl = ctx.state.get("impl") or p.impl
    # Estimates live in ctx.state, so a restarted kernel continues the same stream.
    state = ctx.state
    state.setdefault("t", 0)
    async for msg in ctx.messages():
        with device_scope(ctx):
            x = as_xp(msg, xp)
            res = ewma(x, p.alpha, state.get("mean"), state.get("var"), xp=xp, impl=impl)
        t0 = state["t"]
        state["mean"], state["var"] = res.last_mean, res.last_var
        state["t"] = t0 + int(x.shape[0])
        ctx.metrics["samples"] = state["t"]
        await ctx.send(MovingStats(t0, x, res.mean, res.var))


class ZScoreParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(5.0, gt=0, description="Flag |z| above this many std devs.")
    warmup: int = Field(
        200,
        ge=0,
        description="Samples at the stream's start not judged (the variance is not yet known).",
    )
    eps: float = Field(1e-9, gt=0, description="Added to the variance before the square root.")
    emit_empty: bool = Field(
        False, description="Also send an (empty) Anomalies record for a batch with none."
    )


@ring_kernel(kernel_id="zscore", params=ZScoreParams, ports=("out",))
async def zscore_detector(ctx: KernelContext) -> None:
    """Flag samples of ``MovingStats`` batches far from their prior mean; send ``Anomalies``.

    Anomalies are few, so they travel as small host arrays whatever the backend.
    """
    p: ZScoreParams = ctx.params
    xp = ctx.xp
    found = 0
    samples = 0
    async for msg in ctx.messages():
        if not isinstance(msg, MovingStats):
            ctx.record_error(f"zscore expects MovingStats (from ewma), got {type(msg).__name__}")
            continue
        with device_scope(ctx):
            x, mean, var = (as_xp(a, xp) for a in (msg.x, msg.mean, msg.var))
            z = zscore(x, mean, var, eps=p.eps, xp=xp)
            rows, cols, zs = anomalies(z, p.threshold, skip_rows=p.warmup - msg.t0, xp=xp)
            record = Anomalies(
                t0=msg.t0,
                samples=len(msg),
                index=to_numpy(rows) + msg.t0,
                channel=to_numpy(cols),
                z=to_numpy(zs),
            )
        samples += record.samples
        found += len(record)
        ctx.metrics["samples"] = samples
        ctx.metrics["anomalies"] = found
        if len(record) or p.emit_empty:
            await ctx.send(record)
