"""Throughput of the anomaly and spectrum pipelines, per stage and through the runtime.

Prints items/s (an item is one sample: one row of a ``(batch, channels)`` array) for
batch sizes 64 ... 65,536 on the CPU, and on the GPU when CuPy finds one (the CPU
baseline is always measured in the same run, so the two are comparable)::

    .venv/bin/python benchmarks/kernels_bench.py                 # everything, ~1 min
    .venv/bin/python benchmarks/kernels_bench.py --budget 0.1 --no-pipeline
    .venv/bin/python benchmarks/kernels_bench.py --json out.json

Stages time the pure compute (``kernels.compute``) on data already where it runs;
``pipeline`` rows push pre-generated batches through real kernels in a
``RingKernelRuntime`` (queues, tasks, telemetry, and on ``cuda`` the host-to-device
copies), from the first send until the sink has counted the last sample.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `kernels` is not installed; see topologies' python_path

from kernels.compute.backend import cupy_module  # noqa: E402
from kernels.compute.spectrum import power_spectrum  # noqa: E402
from kernels.compute.stats import EwmaImpl, anomalies, ewma, warm_up_ewma, zscore  # noqa: E402
from kernels.compute.synth import SensorStream  # noqa: E402

BATCHES = (64, 256, 1024, 4096, 16_384, 65_536)


def measure(fn: Callable[[], Any], budget: float, sync: Callable[[], None]) -> float:
    """Seconds per call: one warm-up, then as many calls as fit in ``budget``."""
    fn()
    sync()
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        if calls >= 3 and time.perf_counter() - start >= budget:
            break
    sync()
    return (time.perf_counter() - start) / calls


def stage_rows(
    xp: ModuleType, backend: str, batch: int, channels: int, budget: float
) -> list[dict[str, Any]]:
    host, _ = SensorStream(channels=channels, seed=1).next_batch(batch)
    x = xp.asarray(host)
    sync = xp.cuda.Stream.null.synchronize if backend == "cuda" else (lambda: None)
    impls: list[EwmaImpl] = ["scan", "cuda_raw"] if backend == "cuda" else ["numba", "scan"]
    rows: list[dict[str, Any]] = []
    stats = None
    for impl in impls:
        warm_up_ewma(xp, impl)
        t = measure(functools.partial(ewma, x, 0.02, xp=xp, impl=impl), budget, sync)
        rows.append(dict(stage="ewma", impl=impl, seconds=t))
        stats = ewma(x, 0.02, xp=xp, impl=impl)
    assert stats is not None
    m, v = stats.mean, stats.var

    def detect() -> Any:
        return anomalies(zscore(x, m, v, xp=xp), 5.0, xp=xp)

    rows.append(dict(stage="zscore+detect", impl="xp", seconds=measure(detect, budget, sync)))
    nfft = min(batch, 512)
    spec_t = measure(lambda: power_spectrum(x, xp=xp, nfft=nfft), budget, sync)
    rows.append(dict(stage=f"spectrum(nfft={nfft})", impl="fft", seconds=spec_t))
    for r in rows:
        r.update(backend=backend, batch=batch, items_per_s=batch / r["seconds"])
    return rows


async def pipeline_rate(
    kind: str, backend: str, batch: int, channels: int, total_rows: int
) -> float:
    """Samples/s from the first send until the sink has counted every sample."""
    from kernels import sinks, spectrum, stats
    from ringctl import RingKernelRuntime

    n = max(4, total_rows // batch)
    stream = SensorStream(channels=channels, seed=2)
    data = [stream.next_batch(batch)[0] for _ in range(n)]
    chain: tuple[str, ...]
    async with RingKernelRuntime() as rt:
        await rt.launch("sink", sinks.counting)
        if kind == "anomaly":
            await rt.launch("zscore", stats.zscore_detector, backend=backend)
            await rt.launch("ewma", stats.ewma_stats, params={"alpha": 0.02}, backend=backend)
            rt.connect("ewma", "zscore", capacity=64)
            rt.connect("zscore", "sink", capacity=64)
            first, chain = "ewma", ("sink", "zscore", "ewma")
        else:
            nfft = min(batch, 512)
            await rt.launch("spectrum", spectrum.spectrum, params={"nfft": nfft}, backend=backend)
            rt.connect("spectrum", "sink", capacity=64)
            first, chain = "spectrum", ("sink", "spectrum")
        for kid in chain:
            await rt.activate(kid)
        start = time.perf_counter()
        await rt.send_batch(first, data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 300
        while True:
            snap = {k.id: k for k in rt.snapshot().kernels}
            done = snap[chain[1]].messages_in >= n and rt.is_quiescent()
            if done or loop.time() > deadline:
                break
            await asyncio.sleep(0.0005)
        elapsed = time.perf_counter() - start
    return n * batch / elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)), help="batch sizes")
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--budget", type=float, default=0.25, help="seconds per measurement")
    ap.add_argument("--rows", type=int, default=1 << 20, help="samples per pipeline run")
    ap.add_argument("--no-pipeline", action="store_true", help="stages only")
    ap.add_argument("--no-gpu", action="store_true", help="CPU only even where a GPU exists")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]

    backends: list[tuple[str, ModuleType]] = [("cpu", np)]
    cp = None if args.no_gpu else cupy_module()
    gpu_note = "not requested" if args.no_gpu else "cupy not importable"
    if cp is not None:
        if cp.is_available():
            backends.append(("cuda", cp))
            props = cp.cuda.runtime.getDeviceProperties(0)
            gpu_note = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        else:
            gpu_note = "cupy found no usable device"
    print(
        f"# kernels_bench: python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.machine()} x{_cpus()}, gpu: {gpu_note}, channels={args.channels}"
    )
    rows: list[dict[str, Any]] = []
    print(f"{'backend':7} {'stage':22} {'impl':9} {'batch':>7} {'items/s':>14}")
    for backend, xp in backends:
        for batch in batches:
            for r in stage_rows(xp, backend, batch, args.channels, args.budget):
                rows.append(r)
                print(
                    f"{backend:7} {r['stage']:22} {r['impl']:9} {batch:>7} "
                    f"{r['items_per_s']:>14,.0f}",
                    flush=True,
                )
    if not args.no_pipeline:
        for backend, _ in backends:
            for kind in ("anomaly", "spectrum"):
                for batch in batches:
                    rate = asyncio.run(
                        pipeline_rate(kind, backend, batch, args.channels, args.rows)
                    )
                    rows.append(
                        dict(
                            backend=backend,
                            stage=f"pipeline:{kind}",
                            impl="runtime",
                            batch=batch,
                            items_per_s=rate,
                        )
                    )
                    print(
                        f"{backend:7} {'pipeline:' + kind:22} {'runtime':9} {batch:>7} "
                        f"{rate:>14,.0f}",
                        flush=True,
                    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    raise SystemExit(main())
