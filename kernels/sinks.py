"""Sinks: the ends of a pipeline, reporting through ``ctx.metrics`` (shown by ``ringctl ps``).

Every sink accepts NumPy or CuPy arrays (a GPU array is reduced on the GPU, or copied to
the host once when it must be stored) and ``Keyed`` messages (the key is ignored unless
the sink stores by key). A message a sink cannot handle is counted as an error, not
raised: one malformed message should not take down the end of a pipeline.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kernels.compute.backend import to_numpy, xp_of
from kernels.records import Anomalies, Keyed, MovingStats
from ringctl import KernelContext, ring_kernel
from ringctl.authoring import items_in, jsonable

__all__ = [
    "AlertsParams",
    "ChannelStatsParams",
    "CollectParams",
    "CountingParams",
    "KeyValueParams",
    "PrinterParams",
    "SummingParams",
    "alerts",
    "channel_stats",
    "collect",
    "counting",
    "key_value_store",
    "printer",
    "summing",
    "total_of",
]

BATCH = 1024


def total_of(msg: Any) -> int | float:
    """The sum of every number in a message; ``TypeError`` for anything else.

    Integer payloads sum to a Python int, exact however large the total grows.
    """
    if isinstance(msg, Keyed):
        return total_of(msg.data)
    if isinstance(msg, bool):
        raise TypeError("a bool is not a number to sum")
    if isinstance(msg, int | float):
        return msg
    if isinstance(msg, np.generic):
        return msg.item()  # type: ignore[no-any-return]
    if hasattr(msg, "shape") and hasattr(msg, "dtype"):
        if msg.dtype.kind not in "iuf":
            raise TypeError(f"cannot sum an array of {msg.dtype}")
        s = xp_of(msg).sum(msg)  # on the array's own device; one scalar comes back
        return s.item()  # type: ignore[no-any-return]
    if isinstance(msg, list | tuple):
        return sum((total_of(v) for v in msg), 0)
    raise TypeError(f"cannot sum a {type(msg).__name__}")


class SummingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@ring_kernel(kernel_id="summing", params=SummingParams, ports=())
async def summing(ctx: KernelContext) -> None:
    """Add up every number it receives; the running total is metric ``total``."""
    total: int | float = ctx.state.get("total", 0)
    items: int = ctx.state.get("items", 0)
    async for batch in ctx.batches(BATCH):
        for msg in batch:
            try:
                total += total_of(msg)
            except TypeError as exc:
                ctx.record_error(exc)
                continue
            items += items_in(msg)
        ctx.state["total"] = total
        ctx.state["items"] = items
        ctx.metrics["total"] = total
        ctx.metrics["items"] = items


class CountingParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@ring_kernel(kernel_id="counting", params=CountingParams, ports=())
async def counting(ctx: KernelContext) -> None:
    """Count messages and the items in them (array rows, list entries, anomalies...)."""
    messages = 0
    items = 0
    async for batch in ctx.batches(BATCH):
        messages += len(batch)
        items += sum(items_in(m) for m in batch)
        ctx.metrics["messages"] = messages
        ctx.metrics["items"] = items


class CollectParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Where to write; relative paths are from the current folder.")
    format: Literal["auto", "jsonl", "npy"] = Field(
        "auto",
        description=(
            "jsonl: one line per message, written as they come; npy: array messages "
            "stacked along axis 0 and written once, when the kernel stops. "
            "auto: from the suffix."
        ),
    )


def _collect_format(p: CollectParams) -> str:
    if p.format != "auto":
        return p.format
    suffix = Path(p.path).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".npy":
        return "npy"
    raise ValueError(f"cannot tell the format of {p.path!r} from its suffix; set format")


def _setup_collect(ctx: KernelContext) -> None:
    p: CollectParams = ctx.params
    _collect_format(p)
    parent = Path(p.path).resolve().parent
    if not parent.is_dir():
        raise FileNotFoundError(f"collect: folder {str(parent)!r} does not exist")


def _save_npy(path: Path, chunks: list[np.ndarray]) -> None:
    # Write next to the target and rename, so a reader never sees half a file.
    data = np.concatenate(chunks) if chunks else np.empty((0,))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@ring_kernel(kernel_id="collect", params=CollectParams, ports=(), setup=_setup_collect)
async def collect(ctx: KernelContext) -> None:
    """Write everything received to a JSONL or NPY file (records and arrays alike)."""
    p: CollectParams = ctx.params
    fmt = _collect_format(p)
    path = Path(p.path)
    written = 0
    if fmt == "jsonl":
        # Appending on a restart keeps what the previous instance wrote.
        mode = "a" if ctx.state.get("started") else "w"
        ctx.state["started"] = True
        # Opened off the event loop (a slow disk must not stall every kernel); the small
        # buffered writes below are left on it.
        fh = await asyncio.to_thread(path.open, mode, encoding="utf-8")
        with fh:
            async for batch in ctx.batches(BATCH):
                lines = []
                for m in batch:
                    try:
                        lines.append(json.dumps(jsonable(m)))
                    except (TypeError, ValueError) as exc:
                        ctx.record_error(exc)
                fh.write("".join(line + "\n" for line in lines))
                fh.flush()
                written += len(lines)
                ctx.metrics["written"] = written
        return
    chunks: list[np.ndarray] = ctx.state.setdefault("chunks", [])
    try:
        async for batch in ctx.batches(BATCH):
            for m in batch:
                data = m.data if isinstance(m, Keyed) else m
                if not hasattr(data, "shape"):
                    data = np.asarray(data)
                    if data.dtype == object:
                        ctx.record_error(f"collect to npy needs arrays, got {type(m).__name__}")
                        continue
                host = to_numpy(data)
                chunks.append(host if host.ndim else host.reshape(1))
                written += 1
            ctx.metrics["collected"] = written
    finally:
        await asyncio.shield(asyncio.to_thread(_save_npy, path, chunks))
        ctx.metrics["written"] = str(path)


class PrinterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    every: int = Field(1, ge=1, description="Print one message in this many.")
    limit: int | None = Field(100, ge=0, description="Stop printing after this many lines.")
    prefix: str = Field("", description="Put before every line.")
    stream: Literal["stdout", "stderr"] = Field("stdout", description="Where to print.")


def describe(msg: Any) -> str:
    """A one-line summary of a message: arrays by shape and range, records by fields."""
    if isinstance(msg, Keyed):
        return f"[{msg.key}] {describe(msg.data)}"
    if isinstance(msg, Anomalies):
        pairs = ", ".join(
            f"t={i} ch={c} z={z:+.1f}"
            for i, c, z in zip(msg.index[:3], msg.channel[:3], msg.z[:3], strict=False)
        )
        more = f" (+{len(msg) - 3})" if len(msg) > 3 else ""
        return f"{len(msg)} anomalies in samples {msg.t0}..{msg.t0 + msg.samples}: {pairs}{more}"
    if isinstance(msg, MovingStats):
        return f"stats t0={msg.t0} rows={len(msg)}"
    if hasattr(msg, "shape") and hasattr(msg, "dtype"):
        a = to_numpy(msg)
        if a.size == 0:
            return f"array{a.shape} {a.dtype} (empty)"
        return f"array{a.shape} {a.dtype} min={a.min():.4g} max={a.max():.4g}"
    text = repr(msg)
    return text if len(text) <= 200 else text[:197] + "..."


@ring_kernel(kernel_id="printer", params=PrinterParams, ports=())
async def printer(ctx: KernelContext) -> None:
    """Print a one-line summary of messages, for demos (it is a sink: nothing goes on)."""
    p: PrinterParams = ctx.params
    out = sys.stdout if p.stream == "stdout" else sys.stderr
    seen = 0
    printed = 0
    async for msg in ctx.messages():
        seen += 1
        if (seen - 1) % p.every or (p.limit is not None and printed >= p.limit):
            continue
        print(f"{p.prefix}{ctx.kernel_id} #{seen}: {describe(msg)}", file=out, flush=True)
        printed += 1
        ctx.metrics["printed"] = printed


class KeyValueParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(
        None,
        description=(
            "Attribute (or dict key) of a message to store it under; null: a Keyed "
            "message's key, else a running sequence number."
        ),
    )
    max_keys: int | None = Field(
        10_000, ge=1, description="Keys kept; past it the least recently written goes."
    )
    snapshot_path: str | None = Field(
        None, description="Write the store as one JSON object here when the kernel stops."
    )


def _key_of(msg: Any, field: str | None, seq: int) -> tuple[Any, Any]:
    if field is None:
        return (msg.key, msg.data) if isinstance(msg, Keyed) else (seq, msg)
    if isinstance(msg, dict):
        return msg[field], msg
    return getattr(msg, field), msg


@ring_kernel(kernel_id="key_value_store", params=KeyValueParams, ports=())
async def key_value_store(ctx: KernelContext) -> None:
    """Keep the latest message per key in ``ctx.state["store"]`` (survives restarts).

    Read it from the runtime's kernel state, or have it written out with ``snapshot_path``.
    """
    p: KeyValueParams = ctx.params
    store: OrderedDict[Any, Any] = ctx.state.setdefault("store", OrderedDict())
    seq: int = ctx.state.get("seq", 0)
    try:
        async for batch in ctx.batches(BATCH):
            for msg in batch:
                try:
                    key, value = _key_of(msg, p.key, seq)
                except (AttributeError, KeyError) as exc:
                    ctx.record_error(f"no key {p.key!r} in {type(msg).__name__}: {exc}")
                    continue
                seq += 1
                store[key] = value
                store.move_to_end(key)
                if p.max_keys is not None and len(store) > p.max_keys:
                    store.popitem(last=False)
            ctx.state["seq"] = seq
            ctx.metrics["keys"] = len(store)
            ctx.metrics["writes"] = seq
    finally:
        if p.snapshot_path:
            text = json.dumps({str(k): jsonable(v) for k, v in store.items()})
            await asyncio.shield(asyncio.to_thread(Path(p.snapshot_path).write_text, text))


class AlertsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep: int = Field(100, ge=0, description="Most recent anomalies kept in ctx.state['recent'].")
    print: bool = Field(False, description="Also print each alert message (demos).")


@ring_kernel(kernel_id="alerts", params=AlertsParams, ports=())
async def alerts(ctx: KernelContext) -> None:
    """Count the anomalies reported by ``zscore`` and remember the latest ones."""
    p: AlertsParams = ctx.params
    recent: list[tuple[int, int, float]] = ctx.state.setdefault("recent", [])
    total: int = ctx.state.get("anomalies", 0)
    async for msg in ctx.messages():
        if not isinstance(msg, Anomalies):
            ctx.record_error(f"alerts expects Anomalies (from zscore), got {type(msg).__name__}")
            continue
        total += len(msg)
        recent.extend(zip(msg.index.tolist(), msg.channel.tolist(), msg.z.tolist(), strict=True))
        del recent[: max(0, len(recent) - p.keep)]
        ctx.state["anomalies"] = total
        ctx.metrics["anomalies"] = total
        if len(msg):
            i, c, z = int(msg.index[-1]), int(msg.channel[-1]), float(msg.z[-1])
            ctx.metrics["last"] = f"t={i} ch={c} z={z:+.1f}"
        if p.print:
            print(f"{ctx.kernel_id}: {describe(msg)}", flush=True)


class ChannelStatsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    show_channels: int = Field(4, ge=0, description="Channels whose mean appears in metrics.")


def merge_moments(
    count: int, mean: np.ndarray, m2: np.ndarray, x: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray]:
    """Fold a batch into running (count, mean, sum of squared deviations) per channel.

    Chan et al.'s pairwise update: exact for any batch sizes, no catastrophic
    cancellation from summing squares.
    """
    n = x.shape[0]
    if n == 0:
        return count, mean, m2
    b_mean = x.mean(axis=0, dtype=np.float64)
    b_m2 = ((x - b_mean) ** 2).sum(axis=0, dtype=np.float64)
    total = count + n
    delta = b_mean - mean
    mean = mean + delta * (n / total)
    m2 = m2 + b_m2 + delta * delta * (count * n / total)
    return total, mean, m2


@ring_kernel(kernel_id="channel_stats", params=ChannelStatsParams, ports=())
async def channel_stats(ctx: KernelContext) -> None:
    """Running per-channel mean, std, min and max of ``(rows, channels)`` batches."""
    p: ChannelStatsParams = ctx.params
    count = 0
    mean = m2 = lo = hi = None
    async for msg in ctx.messages():
        data = msg.x if isinstance(msg, MovingStats) else msg
        x = to_numpy(data)
        if x.ndim == 1:
            x = x.reshape(-1, 1)
        if x.ndim != 2:
            ctx.record_error(f"channel_stats expects (rows, channels) arrays, got {x.shape}")
            continue
        if mean is None or m2 is None or lo is None or hi is None:
            mean = np.zeros(x.shape[1])
            m2 = np.zeros(x.shape[1])
            lo = np.full(x.shape[1], np.inf)
            hi = np.full(x.shape[1], -np.inf)
        count, mean, m2 = merge_moments(count, mean, m2, x)
        if x.shape[0]:
            lo = np.minimum(lo, x.min(axis=0))
            hi = np.maximum(hi, x.max(axis=0))
        std = np.sqrt(m2 / count) if count else m2
        ctx.metrics.update(
            samples=count,
            mean=float(mean.mean()),
            std=float(std.mean()),
            min=float(lo.min()),
            max=float(hi.max()),
        )
        for c in range(min(p.show_channels, mean.shape[0])):
            ctx.metrics[f"mean_ch{c}"] = round(float(mean[c]), 4)
