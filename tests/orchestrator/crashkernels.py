"""Test-only kernels that do what crash tests need: fork helpers, print fast, send big
messages. Topologies reach them as ``orchestrator.crashkernels:NAME`` (``python_path``
puts ``tests/`` first)."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ringctl import KernelContext, ring_kernel

__all__ = ["forks_helper"]


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
