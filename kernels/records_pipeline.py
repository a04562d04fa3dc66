"""The sensor anomaly pipeline over records, with persistent kernels in the middle.

``readings`` (an ordinary kernel) sends NumPy arrays of ``READING`` records;
``ewma_z`` and ``flag`` are persistent kernels (compiled loops in a worker process,
records passed ring to ring between them); ``alert_log`` (ordinary again) receives
arrays of the flagged ``SCORED`` records. Run by ``topologies/sensor-records.yaml``.

The handlers are plain Python that Numba compiles: one record in, at most one out, the
kernel's state in a float64 array that survives a restart of the worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kernels.compute.synth import SensorStream
from ringctl import KernelContext, ring_kernel
from ringctl.authoring import Pacer, keep_running
from ringctl.persistent import persistent_kernel

__all__ = ["READING", "SCORED", "alert_log", "ewma_z", "flag", "readings"]

READING: Final = np.dtype([("seq", np.int64), ("channel", np.int32), ("value", np.float64)])
SCORED: Final = np.dtype(
    [("seq", np.int64), ("channel", np.int32), ("value", np.float64), ("z", np.float64)]
)
#: Channels ``ewma_z`` keeps estimates for (its state array is sized for this many).
MAX_CHANNELS: Final = 64


class ReadingsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: int = Field(8, ge=1, le=MAX_CHANNELS, description="Sensor channels.")
    batch: int = Field(1024, ge=1, description="Samples per channel in one message.")
    batches: int | None = Field(100, ge=0, description="Messages to send; null: until stopped.")
    rate: float | None = Field(None, gt=0, description="Samples per second; null: unpaced.")
    seed: int = Field(0, description="Same seed, same stream.")
    anomaly_rate: float = Field(1e-3, ge=0, le=1, description="Probability of a spike.")
    anomaly_magnitude: float = Field(8.0, ge=0, description="Spike size in noise std devs.")


@ring_kernel(kernel_id="readings", params=ReadingsParams, ports=("out",))
async def readings(ctx: KernelContext) -> None:
    """Send arrays of ``READING`` records (``batch * channels`` per message), seq-numbered."""
    p: ReadingsParams = ctx.params
    stream = SensorStream(
        channels=p.channels,
        seed=p.seed,
        anomaly_rate=p.anomaly_rate,
        anomaly_magnitude=p.anomaly_magnitude,
        dtype="float64",
    )
    pacer = Pacer(p.rate)
    sent = seq = 0
    channel = np.tile(np.arange(p.channels, dtype=np.int32), p.batch)
    while await keep_running(ctx):
        if p.batches is not None and sent >= p.batches:
            break
        data, mask = stream.next_batch(p.batch)
        recs = np.empty(data.size, READING)
        recs["seq"] = np.arange(seq, seq + data.size)
        recs["channel"] = channel
        recs["value"] = data.reshape(-1)
        seq += data.size
        await pacer.wait(p.batch)
        await ctx.send(recs)
        sent += 1
        ctx.metrics["records"] = seq
        ctx.metrics["injected"] = int(ctx.metrics.get("injected", 0)) + int(mask.sum())


def _ewma_state(params: Mapping[str, Any]) -> np.ndarray:
    state = np.zeros(2 + 3 * MAX_CHANNELS)
    state[0] = float(params.get("alpha", 0.02))
    state[1] = float(params.get("warmup", 200))
    return state


@persistent_kernel(input=READING, output=SCORED, init=_ewma_state)
def ewma_z(rec, out, state):  # type: ignore[no-untyped-def]
    """z-score of each reading against its channel's EWMA estimate from before it.

    params: ``alpha`` (weight of the newest sample), ``warmup`` (samples per channel
    before z is reported; 0 until then).
    """
    alpha = state[0]
    base = 2 + 3 * rec.channel
    mean = state[base]
    var = state[base + 1]
    n = state[base + 2]
    z = 0.0
    if n >= state[1] and var > 0.0:
        z = (rec.value - mean) / np.sqrt(var)
    if n == 0.0:
        state[base] = rec.value
    else:
        d = rec.value - mean
        state[base] = mean + alpha * d
        state[base + 1] = (1.0 - alpha) * (var + alpha * d * d)
    state[base + 2] = n + 1.0
    out.seq = rec.seq
    out.channel = rec.channel
    out.value = rec.value
    out.z = z
    return 1


def _flag_state(params: Mapping[str, Any]) -> np.ndarray:
    return np.array([float(params.get("threshold", 5.0))])


@persistent_kernel(input=SCORED, output=SCORED, init=_flag_state)
def flag(rec, out, state):  # type: ignore[no-untyped-def]
    """Pass on the records with ``|z| > threshold`` (params: ``threshold``), drop the rest."""
    if abs(rec.z) <= state[0]:
        return 0
    out.seq = rec.seq
    out.channel = rec.channel
    out.value = rec.value
    out.z = rec.z
    return 1


class AlertLogParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep: int = Field(100, ge=0, description="Most recent anomalies kept in ctx.state['recent'].")


@ring_kernel(kernel_id="alert_log", params=AlertLogParams, ports=())
async def alert_log(ctx: KernelContext) -> None:
    """Count flagged ``SCORED`` records (metric ``anomalies``) and keep the latest ones."""
    p: AlertLogParams = ctx.params
    recent: list[tuple[int, int, float]] = ctx.state.setdefault("recent", [])
    total: int = ctx.state.get("anomalies", 0)
    async for msg in ctx.messages():
        if not isinstance(msg, np.ndarray) or msg.dtype != SCORED:
            ctx.record_error(f"alert_log expects arrays of SCORED records, got {type(msg)}")
            continue
        total += len(msg)
        recent.extend(
            zip(msg["seq"].tolist(), msg["channel"].tolist(), msg["z"].tolist(), strict=True)
        )
        del recent[: max(0, len(recent) - p.keep)]
        ctx.state["anomalies"] = total
        ctx.metrics["anomalies"] = total
        if len(msg):
            last = msg[-1]
            ctx.metrics["last"] = (
                f"seq={int(last['seq'])} ch={int(last['channel'])} z={float(last['z']):+.1f}"
            )
