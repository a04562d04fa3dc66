"""Kernels for the Ray fault tests: they say where they run, and fail on purpose."""

from __future__ import annotations

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
