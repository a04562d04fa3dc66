"""``engine: ray`` against ``engine: local``: a 3-stage pipeline's items/s, and a hop's cost.

    python benchmarks/ray_bench.py            # full run (about a minute on 2 cores)
    python benchmarks/ray_bench.py --quick    # tiny sizes, same code paths
    python benchmarks/ray_bench.py --address 127.0.0.1:6379   # on a running cluster

The pipeline is ``source -> relay -> sink`` (three kernels, two queues), the same
kernels on both engines. On Ray each kernel is an actor in its own process, and each
queue is a batched actor-to-actor call (up to ``MAX_BATCH`` messages per call: sent at
once when no call is in flight, coalesced while one is). A message is one Python int, or an int64
array of ``size`` items: items/s counts the integers that reach the sink.

The per-hop cost is measured two ways, each from a 1-relay and a 3-relay chain (the
difference over the two extra hops): throughput (wall microseconds per message, with
every core busy) and latency (one message at a time, timed from source to sink).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from ringctl import RingKernelRuntime
from ringctl.engine.local.loop import run


async def source(ctx: Any) -> None:
    """``count`` items: Python ints (``size`` 1) or int64 arrays of ``size``; then return."""
    count, size, chunk = ctx.params["count"], ctx.params["size"], ctx.params["chunk"]
    gap = ctx.params.get("gap")
    if size == 1:
        msgs: list[Any] = list(range(chunk))
    else:
        msgs = [np.arange(size, dtype=np.int64) for _ in range(chunk)]
    sent = 0
    while sent < count and not ctx.should_terminate:
        if gap:  # latency probe: one message at a time, stamped
            await asyncio.sleep(gap)
            await ctx.send((time.perf_counter(), 1))
            sent += 1
            continue
        n = min(chunk, (count - sent) // size)
        await ctx.send_batch(msgs[:n])
        sent += n * size
    ctx.metrics["sent"] = sent


async def relay(ctx: Any) -> None:
    async for batch in ctx.batches(4096):
        await ctx.send_batch(batch)


async def sink(ctx: Any) -> None:
    """Counts items; for stamped messages, records the source-to-sink latency."""
    items = 0
    latencies: list[float] = []
    async for batch in ctx.batches(4096):
        now = time.perf_counter()
        for msg in batch:
            if isinstance(msg, tuple):  # (stamp, 1): CLOCK_MONOTONIC spans processes
                latencies.append(now - msg[0])
                items += 1
            elif isinstance(msg, int):
                items += 1
            else:
                items += len(msg)
        ctx.metrics["items"] = items
        if latencies:
            ctx.metrics["latency_p50_ms"] = statistics.median(latencies) * 1e3


async def pipeline(
    engine: str, *, count: int, size: int, relays: int = 1, gap: float | None = None,
    address: str | None = None,
) -> tuple[float, dict[str, Any]]:  # fmt: skip
    """Run ``source -> relay x relays -> sink`` until the sink has every item.

    Returns items/s (from activation to the last item seen) and the sink's metrics.
    """
    if engine == "ray":
        from ringctl.engine.ray.engine import RayRuntime

        rt: Any = RayRuntime(address=address)
    else:
        rt = RingKernelRuntime()
    stages = ["sink", *(f"relay{i}" for i in range(relays, 0, -1)), "source"]
    chunk = max(1, min(1000, 100_000 // size))
    try:
        await rt.launch("sink", sink, queue_size=4096)
        for kid in stages[1:-1]:
            await rt.launch(kid, relay, queue_size=4096)
        params = {"count": count, "size": size, "chunk": chunk, "gap": gap}
        await rt.launch("source", source, params=params, queue_size=4096)
        for producer, consumer in zip(stages[:0:-1], stages[-2::-1], strict=True):
            rt.connect(producer, consumer, capacity=4096)
        expected = count if gap else (count // size) * size
        t0 = time.perf_counter()
        for kid in stages:
            await rt.activate(kid)
        while True:
            metrics = _metrics(rt, "sink")
            if metrics.get("items", 0) >= expected:
                break
            await asyncio.sleep(0.001 if engine == "local" else 0.01)
        elapsed = time.perf_counter() - t0
    finally:
        await rt.close()
    return expected / elapsed, metrics


async def raw_chain_latency_ms(hops: int, count: int, gap: float) -> float:
    """The floor for a chain's latency: plain async Ray actors, each forwarding a stamped
    message to the next with one call, ``hops`` calls from the first to the last."""
    import ray

    @ray.remote
    class Hop:
        def __init__(self, nxt: Any) -> None:
            self.next = nxt
            self.latencies: list[float] = []

        async def forward(self, msg: tuple[float, int]) -> None:
            if self.next is None:
                self.latencies.append(time.perf_counter() - msg[0])
            else:
                self.next.forward.remote(msg)

        async def emit(self, n: int, pause: float) -> None:
            for _ in range(n):
                await asyncio.sleep(pause)
                self.next.forward.remote((time.perf_counter(), 1))

        def p50(self) -> float:
            return statistics.median(self.latencies) if self.latencies else float("nan")

        def seen(self) -> int:
            return len(self.latencies)

    actors = [Hop.remote(None)]
    for _ in range(hops):
        actors.append(Hop.remote(actors[-1]))
    try:
        await actors[-1].emit.remote(count, gap)
        while await actors[0].seen.remote() < count:
            await asyncio.sleep(0.01)
        return float(await actors[0].p50.remote()) * 1e3
    finally:
        for actor in actors:
            ray.kill(actor)


def _metrics(rt: Any, kernel_id: str) -> dict[str, Any]:
    for k in rt.snapshot().kernels:
        if k.id == kernel_id:
            return dict(k.metrics)
    return {}


async def main(quick: bool, address: str | None) -> None:
    scale = 0.05 if quick else 1.0
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if address is None:
        # Start Ray once, here, so no figure below includes its start-up.
        import ray

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        t0 = time.perf_counter()
        # Workers import the kernels below by value (cloudpickle) and `ringctl` from the venv.
        ray.init(include_dashboard=False, logging_level="WARNING")
        print(f"ray {ray.__version__} started in {time.perf_counter() - t0:.1f} s")
    from ringctl.engine.ray.actor import MAX_BATCH

    print(f"ray queues: up to {MAX_BATCH} messages per call, one call in flight per edge\n")
    print("3-stage pipeline source -> relay -> sink, items/s (from activation to last item)")
    print(f"{'message':<22}{'items':>11}{'local':>14}{'ray':>14}{'ray msgs/s':>14}")
    for size, count in ((1, 300_000), (100, 10_000_000), (1000, 50_000_000)):
        count = max(size * 1000, int(count * scale))
        rates = {}
        for engine in ("local", "ray"):
            rate, metrics = await pipeline(engine, count=count, size=size, address=address)
            assert metrics["items"] >= (count // size) * size, metrics
            rates[engine] = rate
        label = "Python int" if size == 1 else f"int64[{size}]"
        print(f"{label:<22}{count:>11,}{_fmt(rates['local'])}{_fmt(rates['ray'])}"
              f"{_fmt(rates['ray'] / size)}")  # fmt: skip

    print("\nper-hop cost, throughput: Python-int messages, 1 vs 3 relays (wall time, all cores)")
    for engine, n in (("local", 3_000_000), ("ray", 300_000)):
        n = max(20_000, int(n * scale))
        one, _ = await pipeline(engine, count=n, size=1, relays=1, address=address)
        three, _ = await pipeline(engine, count=n, size=1, relays=3, address=address)
        hop_us = (1 / three - 1 / one) / 2 * 1e6
        print(f"  {engine:<6} 1 relay {_fmt(one)}   3 relays {_fmt(three)}   "
              f"{hop_us:+.3f} us per message per extra hop")  # fmt: skip

    print("\nper-hop cost, latency: one stamped message every 20 ms, p50 source -> sink")
    n_lat = 20 if quick else 100
    lat: dict[str, list[float]] = {}
    for engine in ("local", "ray"):
        lat[engine] = []
        for relays in (1, 3):
            _, metrics = await pipeline(engine, count=n_lat, size=1, relays=relays, gap=0.02,
                                        address=address)  # fmt: skip
            lat[engine].append(float(metrics["latency_p50_ms"]))
        hop = (lat[engine][1] - lat[engine][0]) / 2
        print(f"  {engine:<6} 1 relay {lat[engine][0]:8.3f} ms   3 relays {lat[engine][1]:8.3f} ms"
              f"   ~{hop:.3f} ms per hop")  # fmt: skip
    raw = await raw_chain_latency_ms(4, n_lat, 0.02)
    print(f"  raw Ray actors forwarding, 4 hops  {raw:8.3f} ms   ringctl 4 hops (3 relays) / raw "
          f"{lat['ray'][1] / raw:.2f}x   (goal 1.15x)")  # fmt: skip


def _fmt(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:11.2f} M/s"
    return f"{rate / 1e3:11.1f} K/s"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, same code paths")
    parser.add_argument("--address", help="join this Ray cluster instead of starting one")
    args = parser.parse_args()
    run(main(args.quick, args.address))
