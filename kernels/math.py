"""Map-style transforms: one message in, one message out, the payload's shape kept.

They take a Python number, a NumPy or CuPy array, or a ``Keyed`` wrapping either (the
key is kept, so a join downstream can pair branches again). On ``cuda`` an array is
moved to the GPU once and stays there for the next kernel; a bare number stays a number
(a kernel launch for one scalar would cost more than the arithmetic).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kernels.compute.backend import as_xp
from kernels.compute.linalg import matmul as matmul_fn
from kernels.compute.linalg import random_weights
from kernels.compute.linalg import vector_add as vector_add_fn
from ringctl import KernelContext, ring_kernel
from ringctl.authoring import device_scope, map_payload

__all__ = [
    "MatmulParams",
    "ScaleParams",
    "SquareParams",
    "VectorAddParams",
    "matmul",
    "scale",
    "square",
    "vector_add",
]

#: Messages taken from the inbox per wake-up: amortises the receive, not the math.
BATCH = 256


def _on(xp: ModuleType, value: Any) -> Any:
    if isinstance(value, int | float | complex):
        return value
    return as_xp(value, xp)


class SquareParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@ring_kernel(kernel_id="square", params=SquareParams, ports=("out",))
async def square(ctx: KernelContext) -> None:
    """``x * x`` of every message (integers stay integers: int64 arrays, Python ints)."""
    xp = ctx.xp

    def sq(v: Any) -> Any:
        v = _on(xp, v)
        return v * v

    async for batch in ctx.batches(BATCH):
        with device_scope(ctx):
            out = [map_payload(m, sq) for m in batch]
        await ctx.send_batch(out)


class ScaleParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    factor: float = Field(2.0, description="Multiplies every element.")
    offset: float = Field(0.0, description="Added after multiplying.")


@ring_kernel(kernel_id="scale", params=ScaleParams, ports=("out",))
async def scale(ctx: KernelContext) -> None:
    """``factor * x + offset``; integer factors and offsets keep integer payloads integer."""
    p: ScaleParams = ctx.params
    xp = ctx.xp
    # 2.0 from YAML should not turn an int64 stream into floats; 2.5 must.
    factor: float | int = int(p.factor) if p.factor.is_integer() else p.factor
    offset: float | int = int(p.offset) if p.offset.is_integer() else p.offset

    def affine(v: Any) -> Any:
        v = _on(xp, v)
        return v * factor + offset if offset else v * factor

    async for batch in ctx.batches(BATCH):
        with device_scope(ctx):
            out = [map_payload(m, affine) for m in batch]
        await ctx.send_batch(out)


class VectorAddParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@ring_kernel(kernel_id="vector_add", params=VectorAddParams, ports=("out",))
async def vector_add(ctx: KernelContext) -> None:
    """``a + b`` of a message that is a pair ``(a, b)`` (or ``Keyed(key, (a, b))``).

    A join with ``op: tuple`` produces such pairs from two branches.
    """
    xp = ctx.xp

    def add(pair: Any) -> Any:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise TypeError(f"vector_add takes a pair (a, b), got {type(pair).__name__}")
        a, b = pair
        if isinstance(a, int | float) and isinstance(b, int | float):
            return a + b
        return vector_add_fn(_on(xp, a), _on(xp, b), xp=xp)

    async for batch in ctx.batches(BATCH):
        out = []
        for m in batch:
            try:
                with device_scope(ctx):
                    out.append(map_payload(m, add))
            except (TypeError, ValueError) as exc:
                # A malformed message is the producer's bug; count it, keep serving.
                ctx.record_error(exc)
        if out:
            await ctx.send_batch(out)


class MatmulParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    in_features: int = Field(64, ge=1, description="Columns of each input batch.")
    out_features: int = Field(64, ge=1, description="Columns of each output batch.")
    seed: int = Field(0, description="Seeds the weight matrix: same seed, same weights.")
    dtype: str = Field("float32", description="Element type of the weights.")


def _setup_matmul(ctx: KernelContext) -> None:
    # Weights are made on the host from the seed and copied to the device once, at
    # launch, so CPU and GPU replicas multiply by the very same matrix.
    p: MatmulParams = ctx.params
    with device_scope(ctx):
        w = as_xp(random_weights(p.in_features, p.out_features, p.seed, p.dtype), ctx.xp)
        matmul_fn(ctx.xp.zeros((1, p.in_features), dtype=w.dtype), w, xp=ctx.xp)  # warm BLAS
    ctx.state["weights"] = w


@ring_kernel(kernel_id="matmul", params=MatmulParams, ports=("out",), setup=_setup_matmul)
async def matmul(ctx: KernelContext) -> None:
    """``x @ W`` for batches ``x`` of shape ``(rows, in_features)``, a fixed seeded ``W``."""
    xp = ctx.xp
    if "weights" not in ctx.state:
        _setup_matmul(ctx)
    w = ctx.state["weights"]

    def mm(x: Any) -> Any:
        return matmul_fn(as_xp(x, xp), w, xp=xp)

    async for msg in ctx.messages():
        with device_scope(ctx):
            out = map_payload(msg, mm)
        await ctx.send(out)
