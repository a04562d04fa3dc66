"""Sources: kernels with no inbox that produce messages, then return when done.

A finite source returns once it has sent everything; the runtime marks it completed
and the topology drains and exits. With ``count`` / ``batches`` unset a source runs
until ``down`` (use ``smoke.duration`` for such topologies in CI). Every source holds
while paused and stops promptly when asked (``keep_running``).
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from kernels.compute.synth import SensorStream
from kernels.records import Keyed
from ringctl import KernelContext, ring_kernel
from ringctl.authoring import Pacer, SendBuffer, keep_running

__all__ = ["CounterParams", "FileReaderParams", "SensorParams", "counter", "file_reader", "sensor"]


class CounterParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int | None = Field(
        1000, ge=0, description="How many integers to produce; null: until stopped."
    )
    start: int = Field(0, description="The first integer.")
    step: int = Field(1, description="The difference between consecutive integers.")
    batch: int = Field(
        1,
        ge=1,
        description=(
            "Integers per message: 1 sends Python ints, more sends int64 NumPy arrays "
            "(far fewer messages for the same work)."
        ),
    )
    rate: float | None = Field(
        None, gt=0, description="Messages per second; null: as fast as the queue takes them."
    )
    keyed: bool = Field(
        False,
        description="Wrap each message as Keyed(sequence number, payload), for a join downstream.",
    )


@ring_kernel(kernel_id="counter", params=CounterParams, ports=("out",))
async def counter(ctx: KernelContext) -> None:
    """Count ``start, start + step, ...``, ``count`` integers in all, ``batch`` per message."""
    p: CounterParams = ctx.params
    pacer = Pacer(p.rate)
    # A restarted counter resumes where it stopped instead of re-sending from the start.
    seq: int = ctx.state.setdefault("seq", 0)
    sent: int = ctx.state.setdefault("sent", 0)
    # Python ints one by one: a chunk per queue operation, since the per-message cost of
    # a send is what dominates otherwise. Paced or batched messages go one by one.
    chunked = p.rate is None and p.batch == 1
    async with SendBuffer(ctx, size=256 if chunked else 1) as out:
        while await keep_running(ctx):
            if p.count is not None and sent >= p.count:
                break
            n = p.batch if p.count is None else min(p.batch, p.count - sent)
            first = p.start + sent * p.step
            payload: object
            if p.batch == 1:
                payload = first
            else:
                payload = np.arange(first, first + n * p.step, p.step, dtype=np.int64)[:n]
            msg = Keyed(seq, payload) if p.keyed else payload
            sent += n
            seq += 1
            await pacer.wait()
            await out.send(msg)
            if not len(out):  # the buffer went out: what was sent is now accounted for
                ctx.state["seq"], ctx.state["sent"] = seq, sent
                ctx.metrics["sent"] = sent
    ctx.state["seq"], ctx.state["sent"] = seq, sent
    ctx.metrics["sent"] = sent


class SensorParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: int = Field(8, ge=1, description="Columns of every batch: one per sensor.")
    batch: int = Field(1024, ge=1, description="Rows (samples) per message.")
    batches: int | None = Field(
        100, ge=0, description="How many batches to send; null: until stopped."
    )
    rate: float | None = Field(
        None, gt=0, description="Samples per second (rows); null: as fast as possible."
    )
    seed: int = Field(0, description="Seeds noise, phases and anomalies: same seed, same stream.")
    noise: float = Field(1.0, ge=0, description="Standard deviation of the Gaussian noise.")
    amplitude: float = Field(3.0, ge=0, description="Amplitude of each channel's sinusoid.")
    period: float = Field(
        1000.0,
        gt=0,
        description=(
            "Period of channel 0's sinusoid in samples; channel c's is "
            "period * (1 + c / channels), so each channel has its own spectral line."
        ),
    )
    anomaly_rate: float = Field(
        1e-3, ge=0, le=1, description="Probability that a sample of a channel is a spike."
    )
    anomaly_magnitude: float = Field(
        8.0, ge=0, description="Size of a spike, in noise standard deviations."
    )
    dtype: Literal["float32", "float64"] = Field("float32", description="Element type.")


@ring_kernel(kernel_id="sensor", params=SensorParams, ports=("out",))
async def sensor(ctx: KernelContext) -> None:
    """Send ``(batch, channels)`` arrays of a seeded synthetic sensor signal with spikes.

    The labels stay here; regenerate them with ``SensorStream`` and the same params to
    score a detector. Arrays are generated on the host whatever the backend: the first
    kernel on a GPU copies each batch over once.
    """
    p: SensorParams = ctx.params
    stream = SensorStream(
        channels=p.channels,
        seed=p.seed,
        noise=p.noise,
        amplitude=p.amplitude,
        period=p.period,
        anomaly_rate=p.anomaly_rate,
        anomaly_magnitude=p.anomaly_magnitude,
        dtype=p.dtype,
    )
    pacer = Pacer(p.rate)
    sent = 0
    while await keep_running(ctx):
        if p.batches is not None and sent >= p.batches:
            break
        data, mask = stream.next_batch(p.batch)
        await pacer.wait(p.batch)
        await ctx.send(data)
        sent += 1
        ctx.metrics["batches"] = sent
        ctx.metrics["samples"] = stream.t
        ctx.metrics["injected"] = int(ctx.metrics.get("injected", 0)) + int(mask.sum())


class FileReaderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="File to read; relative paths are from the current folder.")
    format: Literal["auto", "csv", "npy", "jsonl"] = Field(
        "auto", description="auto: from the suffix (.csv, .npy, .jsonl / .ndjson)."
    )
    batch: int = Field(
        1024,
        ge=1,
        description=(
            "Rows per message: CSV and NPY send arrays of up to this many rows, JSONL "
            "sends lists of up to this many records (1: one record per message)."
        ),
    )
    header: bool | None = Field(
        None, description="CSV only: skip the first line; null: skip it if it is not numeric."
    )
    delimiter: str = Field(",", min_length=1, max_length=1, description="CSV only.")
    dtype: str = Field("float32", description="CSV only: element type of the arrays.")
    repeat: int = Field(1, ge=1, description="Read the file this many times.")
    rate: float | None = Field(None, gt=0, description="Messages per second; null: unpaced.")


def _format_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    formats = {".csv": "csv", ".npy": "npy", ".jsonl": "jsonl", ".ndjson": "jsonl"}
    if suffix not in formats:
        raise ValueError(
            f"cannot tell the format of {path.name!r} from its suffix; "
            "set format: csv, npy or jsonl"
        )
    return formats[suffix]


def _setup_file_reader(ctx: KernelContext) -> None:
    # Fail the launch (phase 1, rolled back) rather than the run for a missing file.
    p: FileReaderParams = ctx.params
    path = Path(p.path)
    _format_of(path, p.format)
    if not path.is_file():
        raise FileNotFoundError(f"file_reader: no such file {str(path)!r} (cwd: {Path.cwd()})")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@ring_kernel(
    kernel_id="file_reader", params=FileReaderParams, ports=("out",), setup=_setup_file_reader
)
async def file_reader(ctx: KernelContext) -> None:
    """Stream a CSV / NPY / JSONL file as batches (arrays, or lists of JSON records)."""
    p: FileReaderParams = ctx.params
    path = Path(p.path)
    fmt = _format_of(path, p.format)
    pacer = Pacer(p.rate)
    rows = 0
    for _ in range(p.repeat):
        if fmt == "npy":
            # Memory-mapped, so a file larger than memory streams; each batch is copied
            # out because a consumer may hold it after the map is closed.
            data = np.load(path, mmap_mode="r")
            for i in range(0, data.shape[0], p.batch):
                if not await keep_running(ctx):
                    return
                await pacer.wait()
                chunk = np.array(data[i : i + p.batch])
                await ctx.send(chunk)
                rows += chunk.shape[0]
                ctx.metrics["rows"] = rows
            continue
        newline = "" if fmt == "csv" else None
        fh = await asyncio.to_thread(path.open, newline=newline, encoding="utf-8")
        with fh:
            pending: list[object] = []
            lines: Iterator[Any]
            if fmt == "csv":
                reader = csv.reader(fh, delimiter=p.delimiter)
                first = next(reader, None)
                skip = (
                    p.header
                    if p.header is not None
                    else first is not None and not all(_is_number(c) for c in first if c)
                )
                lines = reader if skip or first is None else _chain(first, reader)
            else:
                lines = (json.loads(line) for line in fh if line.strip())
            for record in lines:
                if fmt == "csv":
                    pending.append([float(c) for c in record])
                else:
                    pending.append(record)
                if len(pending) < p.batch:
                    continue
                if not await keep_running(ctx):
                    return
                await pacer.wait()
                await ctx.send(_pack(pending, fmt, p))
                rows += len(pending)
                ctx.metrics["rows"] = rows
                pending = []
            if pending and await keep_running(ctx):
                await pacer.wait()
                await ctx.send(_pack(pending, fmt, p))
                rows += len(pending)
                ctx.metrics["rows"] = rows


def _chain(first: list[str], rest: Iterator[list[str]]) -> Iterator[list[str]]:
    yield first
    yield from rest


def _pack(pending: list[object], fmt: str, p: FileReaderParams) -> object:
    if fmt == "csv":
        return np.asarray(pending, dtype=p.dtype)
    if p.batch == 1:
        return pending[0]
    return pending
