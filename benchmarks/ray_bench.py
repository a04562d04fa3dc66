"""``engine: ray`` against plain Ray actors doing the same work, in the same Ray session.

    python benchmarks/ray_bench.py            # five interleaved rounds (about 6 min on 2 cores)
    python benchmarks/ray_bench.py --quick    # one short round, same code paths (CI smoke)
    python benchmarks/ray_bench.py --address 127.0.0.1:6379   # on a running cluster

Three figures, each against its baseline, measured in interleaved rounds (ringctl and
the baseline, who goes first alternating by round, with a pause between runs) and
reported as medians of the rounds and of the per-round ratios:

- **latency**: a 4-hop chain (``source -> relay x3 -> sink``), one stamped message every
  ``GAP_S``, p50 from the source's send to the sink; the baseline is plain threaded
  actors, each forwarding the message to the next with one call (the fastest plain
  forwarding: a call runs on the thread that took it), and plain async actors doing the
  same are shown beside it. ``LATENCY_PAIRS`` runs of each a round, since one run is a
  second of traffic at the mercy of whatever else the machine runs.
- **Python ints**: ``source -> relay -> sink``, the source sending chunks of 1000
  increasing ints; the baseline is plain actors forwarding each chunk (a list) with one
  call, up to ``WINDOW`` calls in flight per edge.
- **int64[1000] arrays**: the same pipeline, 100 arrays per chunk; the baseline is plain
  actors forwarding one array per call, up to ``WINDOW`` calls in flight per edge.

Items/s runs from the source's first send to the sink's last item (both stamped in the
actors, ``CLOCK_MONOTONIC`` spans processes), so neither side pays the driver's polling.
Each sink checks that every int arrived once and in order; a ringctl run that lost or
reordered one exits 1 (the baseline's calls may run out of order, which is only noted).
The last line is ``BENCH {json}`` with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from ringctl.engine.local.loop import run

#: Calls in flight per edge in the plain-actor baselines.
WINDOW = 8
#: Seconds between two stamped messages in the latency chain.
GAP_S = 0.01
#: Seconds before a run measures (after its actors started) and after it ends.
SETTLE_S = 2.0
#: Latency runs (each side) per round: one such run is short and noisy.
LATENCY_PAIRS = 2


# -- ringctl kernels ----------------------------------------------------------------------


async def source(ctx: Any) -> None:
    """``count`` items: increasing Python ints (``size`` 1) or int64 arrays of ``size``."""
    count, size, chunk = ctx.params["count"], ctx.params["size"], ctx.params["chunk"]
    gap = ctx.params.get("gap")
    array = np.arange(size, dtype=np.int64)
    await asyncio.sleep(ctx.params["delay"])  # Ray replaces the workers the actors took
    ctx.metrics["t0"] = time.perf_counter()
    sent = 0
    while sent < count and not ctx.should_terminate:
        if gap:  # latency probe: one message at a time, stamped
            await asyncio.sleep(gap)
            await ctx.send((time.perf_counter(), 1))
            sent += 1
            continue
        if size == 1:
            n = min(chunk, count - sent)
            await ctx.send_batch(list(range(sent, sent + n)))
            sent += n
        else:
            n = min(chunk, (count - sent) // size)
            await ctx.send_batch([array] * n)
            sent += n * size


async def relay(ctx: Any) -> None:
    async for batch in ctx.batches(4096):
        await ctx.send_batch(batch)


async def sink(ctx: Any) -> None:
    """Counts items and checks ints arrive once, in order; records stamped latencies."""
    items = disorder = 0
    latencies: list[float] = []
    async for batch in ctx.batches(4096):
        now = time.perf_counter()
        first = batch[0]
        if isinstance(first, tuple):  # (stamp, 1)
            latencies.extend(now - msg[0] for msg in batch)
            items += len(batch)
            ctx.metrics["latency_p50_ms"] = statistics.median(latencies) * 1e3
        elif isinstance(first, int):
            if batch != list(range(items, items + len(batch))):
                disorder += 1
            items += len(batch)
        else:
            items += sum(len(msg) for msg in batch)
        ctx.metrics.update(items=items, disorder=disorder, t_last=now)


async def ringctl_run(
    *, count: int, size: int, relays: int, gap: float | None, delay: float, address: str | None
) -> dict[str, Any]:
    """``source -> relay x relays -> sink`` on the Ray engine until the sink has all."""
    from ringctl.engine.ray.engine import RayRuntime

    rt = RayRuntime(address=address)
    stages = ["sink", *(f"relay{i}" for i in range(relays, 0, -1)), "source"]
    chunk = 1000 if size == 1 else 100
    expected = count if gap or size == 1 else (count // size) * size
    try:
        await rt.launch("sink", sink, queue_size=4096)
        for kid in stages[1:-1]:
            await rt.launch(kid, relay, queue_size=4096)
        params = {"count": count, "size": size, "chunk": chunk, "gap": gap, "delay": delay}
        await rt.launch("source", source, params=params, queue_size=4096)
        for producer, consumer in zip(stages[:0:-1], stages[-2::-1], strict=True):
            rt.connect(producer, consumer, capacity=4096)
        for kid in stages:
            await rt.activate(kid)
        while (sunk := _metrics(rt, "sink")).get("items", 0) < expected:
            await asyncio.sleep(0.02)
        t0 = _metrics(rt, "source")["t0"]
    finally:
        await rt.close()
    return {
        "rate": sunk["items"] / (sunk["t_last"] - t0),
        "p50_ms": sunk.get("latency_p50_ms"),
        "ok": sunk["items"] == expected and not sunk["disorder"],
    }


def _metrics(rt: Any, kernel_id: str) -> dict[str, Any]:
    for k in rt.snapshot().kernels:
        if k.id == kernel_id:
            return dict(k.metrics)
    return {}


# -- the baselines: plain Ray actors ------------------------------------------------------


def raw_actor_class() -> Any:
    import ray

    @ray.remote(num_cpus=0)  # as ringctl's actors: placed however many there are
    class Stage:
        """One stage: forwards what it gets to ``next`` (up to ``WINDOW`` calls in
        flight), or, as the sink, counts it and checks the ints' order."""

        def __init__(self, nxt: Any) -> None:
            self.next = nxt
            self.window = asyncio.Semaphore(WINDOW)
            self.items = self.disorder = 0
            self.latencies: list[float] = []
            self.t_last = 0.0

        async def forward(self, msg: tuple[float, int]) -> None:
            """Latency chain: one call per hop, nothing awaited."""
            if self.next is None:
                self.latencies.append(time.perf_counter() - msg[0])
                self.items += 1
            else:
                self.next.forward.remote(msg)

        async def emit_stamped(self, n: int, gap: float) -> None:
            for _ in range(n):
                await asyncio.sleep(gap)
                self.next.forward.remote((time.perf_counter(), 1))

        async def put(self, msgs: Any) -> None:
            if self.next is not None:
                await self._send(msgs)
                return
            if isinstance(msgs, list):
                if msgs != list(range(self.items, self.items + len(msgs))):
                    self.disorder += 1
                self.items += len(msgs)
            else:
                self.items += len(msgs)
            self.t_last = time.perf_counter()

        async def _send(self, msgs: Any) -> None:
            await self.window.acquire()  # a full window holds the caller's call
            ref = self.next.put.remote(msgs)
            asyncio.get_running_loop().create_task(self._done(ref))

        async def _done(self, ref: Any) -> None:
            try:
                await ref
            finally:
                self.window.release()

        async def emit(self, count: int, size: int, chunk: int) -> float:
            t0 = time.perf_counter()
            array = np.arange(size, dtype=np.int64)
            sent = 0
            while sent < count:
                if size == 1:
                    n = min(chunk, count - sent)
                    await self._send(list(range(sent, sent + n)))
                    sent += n
                else:
                    await self._send(array)  # one array per call
                    sent += size
            return t0

        def result(self) -> dict[str, Any]:
            lat = statistics.median(self.latencies) if self.latencies else None
            return {"items": self.items, "disorder": self.disorder, "t_last": self.t_last,
                    "p50_ms": None if lat is None else lat * 1e3}  # fmt: skip

    return Stage


def sync_actor_class() -> Any:
    import ray

    @ray.remote(num_cpus=0)
    class SyncStage:
        """The latency chain on plain threaded actors: a call runs on the thread that
        took it, with no hop to an event loop, so these forward faster than async ones."""

        def __init__(self, nxt: Any) -> None:
            self.next = nxt
            self.items = 0
            self.latencies: list[float] = []

        def forward(self, msg: tuple[float, int]) -> None:
            if self.next is None:
                self.latencies.append(time.perf_counter() - msg[0])
                self.items += 1
            else:
                self.next.forward.remote(msg)

        def emit_stamped(self, n: int, gap: float) -> None:
            for _ in range(n):
                time.sleep(gap)
                self.next.forward.remote((time.perf_counter(), 1))

        def result(self) -> dict[str, Any]:
            lat = statistics.median(self.latencies) if self.latencies else None
            return {"items": self.items, "disorder": 0, "t_last": 0.0,
                    "p50_ms": None if lat is None else lat * 1e3}  # fmt: skip

    return SyncStage


async def raw_run(
    stage_cls: Any, *, count: int, size: int, relays: int, gap: float | None, delay: float
) -> dict[str, Any]:
    import ray

    actors = [stage_cls.remote(None)]
    for _ in range(relays + 1):
        actors.append(stage_cls.remote(actors[-1]))
    expected = count if gap or size == 1 else (count // size) * size
    try:
        await asyncio.gather(*(actor.result.remote() for actor in actors))  # all started
        await asyncio.sleep(delay)  # Ray replaces the workers the actors took
        if gap:
            await actors[-1].emit_stamped.remote(count, gap)
            t0 = 0.0
        else:
            t0 = await actors[-1].emit.remote(count, size, 1000)
        while (res := await actors[0].result.remote())["items"] < expected:
            await asyncio.sleep(0.02)
    finally:
        for actor in actors:
            ray.kill(actor)
    return {  # plain async actors do not keep calls in order: the baseline may reorder
        "rate": res["items"] / (res["t_last"] - t0) if not gap else None,
        "p50_ms": res["p50_ms"],
        "ok": res["items"] == expected,
        "reordered": res["disorder"],
    }


# -- rounds -------------------------------------------------------------------------------


async def main(quick: bool, address: str | None, rounds: int, only: list[str]) -> int:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    import ray

    if address is None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        t0 = time.perf_counter()
        ray.init(include_dashboard=False, logging_level="WARNING")
        print(f"ray {ray.__version__} started in {time.perf_counter() - t0:.1f} s")
    else:
        ray.init(address=address, logging_level="WARNING")
    from ringctl.engine.ray.actor import MAX_BATCH, MAX_HELD
    from ringctl.engine.ray.actor import WINDOW as RINGCTL_WINDOW

    print(f"ringctl: up to {MAX_BATCH} messages per call, {RINGCTL_WINDOW} calls and "
          f"{MAX_HELD} messages in flight "
          f"per edge; baselines: plain actors, {WINDOW} calls in flight per edge\n")  # fmt: skip
    stage_cls = raw_actor_class()
    sync_cls = sync_actor_class()
    n_lat = 10 if quick else 100
    n_int = 20_000 if quick else 400_000
    n_arr = 200_000 if quick else 5_000_000
    cases: dict[str, dict[str, Any]] = {
        "latency_4_hops": {"count": n_lat, "size": 1, "relays": 3, "gap": GAP_S},
        "python_ints": {"count": n_int, "size": 1, "relays": 1, "gap": None},
        "int64_1000": {"count": n_arr, "size": 1000, "relays": 1, "gap": None},
    }
    cases = {case: kw for case, kw in cases.items() if not only or case in only}
    figures: dict[str, dict[str, list[float]]] = {case: {"ringctl": []} for case in cases}
    ok = True
    settle = 0.2 if quick else SETTLE_S
    for r in range(rounds):
        for case, kw in cases.items():
            # A latency figure is a second or so of traffic, at the mercy of whatever
            # else the machine runs then: it is taken LATENCY_PAIRS times a round, and
            # against both kinds of plain actor (the threaded ones forward faster).
            pairs = LATENCY_PAIRS if kw["gap"] and not quick else 1
            baselines = (
                {"raw": sync_cls, "raw_async": stage_cls} if kw["gap"] else {"raw": stage_cls}
            )
            for pair in range(pairs):
                # Who goes first alternates; each run measures from SETTLE_S after its
                # actors started (Ray starts new idle workers meanwhile), and the last
                # run's actors have had SETTLE_S to go away.
                sides = ["ringctl", *baselines]
                res: dict[str, dict[str, Any]] = {}
                for side in sides if (r * pairs + pair) % 2 == 0 else sides[::-1]:
                    if side == "ringctl":
                        res[side] = await ringctl_run(address=address, delay=settle, **kw)
                    else:
                        res[side] = await raw_run(baselines[side], delay=settle, **kw)
                    await asyncio.sleep(settle)
                mine = res["ringctl"]
                ok = ok and all(got["ok"] for got in res.values())
                key = "p50_ms" if kw["gap"] else "rate"
                got = figures[case]
                unit = "ms" if kw["gap"] else "items/s"
                line = f"round {r + 1} {case:<16} ringctl {_fmt(mine[key], unit)}"
                for side in baselines:
                    ratio = mine[key] / res[side][key]
                    got.setdefault(side, []).append(res[side][key])
                    got.setdefault(side.replace("raw", "ratio"), []).append(ratio)
                    line += f"  {side} {_fmt(res[side][key], unit)} ({ratio:.2f}x)"
                got["ringctl"].append(mine[key])
                line += "" if mine["ok"] else "  RINGCTL LOST OR REORDERED"
                line += "" if all(res[side]["ok"] for side in baselines) else "  RAW LOST SOME"
                if res["raw"].get("reordered"):
                    line += f"  (raw: {res['raw']['reordered']} chunks out of order)"
                print(line)
    goals = {"latency_4_hops": "<= 1.15x", "python_ints": ">= 0.9x", "int64_1000": ">= 5x"}
    print(f"\nmedians of {rounds} round(s) (ratio: of each round's ratios)")
    for case, got in figures.items():
        unit = "ms" if case == "latency_4_hops" else "items/s"
        print(f"  {case:<16} ringctl {_fmt(statistics.median(got['ringctl']), unit)}  raw "
              f"{_fmt(statistics.median(got['raw']), unit)}  ratio "
              f"{statistics.median(got['ratio']):.2f}x (goal {goals[case]})"
              + (f"; async raw {_fmt(statistics.median(got['raw_async']), unit)} ratio "
                 f"{statistics.median(got['ratio_async']):.2f}x" if "raw_async" in got
                 else ""))  # fmt: skip
    summary = {
        case: {key: statistics.median(vals) for key, vals in got.items()}
        for case, got in figures.items()
    }
    print("BENCH " + json.dumps({"rounds": rounds, "ok": ok, **summary}))
    ray.shutdown()
    return 0 if ok else 1


def _fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:7.3f} ms"
    if value >= 1e6:
        return f"{value / 1e6:7.2f} M/s"
    return f"{value / 1e3:7.1f} K/s"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round (CI smoke)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5, quick 1)")
    parser.add_argument("--address", help="join this Ray cluster instead of starting one")
    parser.add_argument("--case", action="append", default=[], help="only this figure",
                        choices=("latency_4_hops", "python_ints", "int64_1000"))  # fmt: skip
    args = parser.parse_args()
    n_rounds = args.rounds or (1 if args.quick else 5)
    sys.exit(run(main(args.quick, args.address, n_rounds, args.case)))
