"""A persistent kernel with a C++ handler between two ordinary kernels.

``samples`` sends NumPy arrays of ``SAMPLE`` records; ``zscore`` is a ``native_kernel``
whose handler is the C++ function ``zscore`` in ``cuda/zscore.cu`` (compiled at launch
with ringctl's loop; on the CPU today, the same source for the GPU); ``alerts`` counts
the records it flags. Run by ``tests/persistent/native-records.yaml``.

C++ handlers read records as C structs, so the dtype is declared with ``align=True``
(every field at a multiple of its size).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kernels.compute.synth import SensorStream
from ringctl import KernelContext, ring_kernel
from ringctl.authoring import keep_running
from ringctl.persistent import native_kernel

__all__ = ["SAMPLE", "alerts", "samples", "zscore"]

SAMPLE: Final = np.dtype(
    [("seq", np.int64), ("channel", np.int32), ("value", np.float64), ("z", np.float64)],
    align=True,
)
#: Channels ``zscore`` keeps estimates for (its state array is sized for this many).
MAX_CHANNELS: Final = 64


class SamplesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: int = Field(8, ge=1, le=MAX_CHANNELS, description="Sensor channels.")
    batch: int = Field(1024, ge=1, description="Samples per channel in one message.")
    batches: int = Field(50, ge=0, description="Messages to send.")
    seed: int = Field(0, description="Same seed, same stream.")


@ring_kernel(kernel_id="samples", params=SamplesParams, ports=("out",))
async def samples(ctx: KernelContext) -> None:
    """Send arrays of ``SAMPLE`` records (``batch * channels`` per message), seq-numbered."""
    p: SamplesParams = ctx.params
    stream = SensorStream(channels=p.channels, seed=p.seed, dtype="float64")
    channel = np.tile(np.arange(p.channels, dtype=np.int32), p.batch)
    seq = 0
    for _ in range(p.batches):
        if not await keep_running(ctx):
            break
        data, mask = stream.next_batch(p.batch)
        recs = np.zeros(data.size, SAMPLE)
        recs["seq"] = np.arange(seq, seq + data.size)
        recs["channel"] = channel
        recs["value"] = data.reshape(-1)
        seq += data.size
        await ctx.send(recs)
        ctx.metrics["records"] = seq
        ctx.metrics["injected"] = int(ctx.metrics.get("injected", 0)) + int(mask.sum())


def _zscore_state(params: Mapping[str, Any]) -> np.ndarray:
    state = np.zeros(3 + 3 * MAX_CHANNELS)
    state[0] = float(params.get("alpha", 0.02))
    state[1] = float(params.get("warmup", 200))
    state[2] = float(params.get("threshold", 5.0))
    return state


zscore = native_kernel(
    source="cuda/zscore.cu",
    function="zscore",
    input=SAMPLE,
    output=SAMPLE,
    init=_zscore_state,
)


@ring_kernel(kernel_id="alerts", ports=())
async def alerts(ctx: KernelContext) -> None:
    """Count the flagged ``SAMPLE`` records (metric ``anomalies``)."""
    total = 0
    async for msg in ctx.messages():
        if not isinstance(msg, np.ndarray) or msg.dtype != SAMPLE:
            ctx.record_error(f"alerts expects arrays of SAMPLE records, got {type(msg)}")
            continue
        total += len(msg)
        ctx.metrics["anomalies"] = total
