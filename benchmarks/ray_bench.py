"""``engine: ray`` against plain Ray actors doing the same work, in the same Ray session.

    python benchmarks/ray_bench.py            # five rounds (about 4 min on 2 cores)
    python benchmarks/ray_bench.py --quick    # one short round, same code paths (CI smoke)
    python benchmarks/ray_bench.py --address 127.0.0.1:6379   # on a running cluster

Three figures, each against its baseline in the same Ray session, reported as medians of
the rounds and of the per-round ratios:

- **latency**: a 4-hop chain (``source -> relay x3 -> sink``), p50 from the source's send
  to the sink. Three chains run *at the same time*, interleaved message by message:
  ringctl's, plain threaded actors each forwarding the message to the next with one call
  (the fastest plain forwarding: a call runs on the thread that took it) and plain async
  actors doing the same. Each chain sends one stamped message every ``GAP_S``, the three
  ``GAP_S / 3`` apart (one chain's message has crossed before the next chain's leaves),
  so every chain sees the same machine over the same window: a load that comes and goes
  moves all three, and the ratios hold still where the p50s do not. Which chain leads
  rotates by round.
- **Python ints**: ``source -> relay -> sink``, the source sending chunks of 1000
  increasing ints; the baseline is plain actors forwarding each chunk (a list) with one
  call, up to ``WINDOW`` calls in flight per edge.
- **int64[1000] arrays**: the same pipeline, 100 arrays per chunk; the baseline is plain
  actors forwarding one array per call, up to ``WINDOW`` calls in flight per edge.

The throughput figures run one side after the other (who goes first alternating by
round, with a pause between runs). Items/s runs from the source's first send to the
sink's last item (both stamped in the actors, ``CLOCK_MONOTONIC`` spans processes), so
neither side pays the driver's polling. Each sink checks that every int arrived once and
in order; a ringctl run that lost or reordered one exits 1 (the baseline's calls may run
out of order, which is only noted). The last line is ``BENCH {json}`` with every figure.
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
#: Seconds between two stamped messages of one latency chain; the three chains send in
#: turn, ``GAP_S / 3`` apart, and a 4-hop traversal takes well under that on 2 cores.
GAP_S = 0.030
#: Stamped messages per chain and round (``--quick``: ``QUICK_PROBES``); the first round
#: is preceded by ``WARMUP`` not counted (the actors' first calls are slow).
PROBES = 200
QUICK_PROBES = 10
WARMUP = 20
#: Seconds before a throughput run measures (after its actors started) and after it ends.
SETTLE_S = 2.0
#: The latency chains, in the order they send in the first round.
CHAINS = ("ringctl", "threaded", "async")


async def _sleep_until(t: float) -> None:
    delay = t - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


# -- ringctl kernels ----------------------------------------------------------------------


async def source(ctx: Any) -> None:
    """``count`` items: increasing Python ints (``size`` 1) or int64 arrays of ``size``."""
    count, size, chunk = ctx.params["count"], ctx.params["size"], ctx.params["chunk"]
    array = np.arange(size, dtype=np.int64)
    await asyncio.sleep(ctx.params["delay"])  # Ray replaces the workers the actors took
    ctx.metrics["t0"] = time.perf_counter()
    sent = 0
    while sent < count and not ctx.should_terminate:
        if size == 1:
            n = min(chunk, count - sent)
            await ctx.send_batch(list(range(sent, sent + n)))
            sent += n
        else:
            n = min(chunk, (count - sent) // size)
            await ctx.send_batch([array] * n)
            sent += n * size


async def stamper(ctx: Any) -> None:
    """The latency chain's source: for each ``(start, gap, n, window)`` it is sent, ``n``
    messages ``(stamp, window, n)``, the i-th at ``start + i * gap``."""
    async for start, gap, n, window in ctx.messages():
        for i in range(n):
            await _sleep_until(start + i * gap)
            await ctx.send((time.perf_counter(), window, n))


async def relay(ctx: Any) -> None:
    async for batch in ctx.batches(4096):
        await ctx.send_batch(batch)


async def sink(ctx: Any) -> None:
    """Counts items and checks ints arrive once, in order; the latency chain's sink keeps
    the p50 of each window's stamped messages (metric ``w<window>``, in ms)."""
    items = disorder = 0
    latencies: dict[int, list[float]] = {}
    async for batch in ctx.batches(4096):
        now = time.perf_counter()
        first = batch[0]
        if isinstance(first, tuple):  # (stamp, window, n)
            for stamp, window, n in batch:
                got = latencies.setdefault(window, [])
                got.append(now - stamp)
                if len(got) == n:
                    ctx.metrics[f"w{window}"] = statistics.median(got) * 1e3
            items += len(batch)
        elif isinstance(first, int):
            if batch != list(range(items, items + len(batch))):
                disorder += 1
            items += len(batch)
        else:
            items += sum(len(msg) for msg in batch)
        ctx.metrics.update(items=items, disorder=disorder, t_last=now)


async def ringctl_run(
    *, count: int, size: int, relays: int, delay: float, address: str | None
) -> dict[str, Any]:
    """``source -> relay x relays -> sink`` on the Ray engine until the sink has all."""
    from ringctl.engine.ray.engine import RayRuntime

    rt = RayRuntime(address=address)
    chunk = 1000 if size == 1 else 100
    expected = count if size == 1 else (count // size) * size
    try:
        params = {"count": count, "size": size, "chunk": chunk, "delay": delay}
        await _ringctl_chain(rt, source, params, relays)
        while (sunk := _metrics(rt, "sink")).get("items", 0) < expected:
            await asyncio.sleep(0.02)
        t0 = _metrics(rt, "source")["t0"]
    finally:
        await rt.close()
    return {
        "rate": sunk["items"] / (sunk["t_last"] - t0),
        "ok": sunk["items"] == expected and not sunk["disorder"],
    }


async def _ringctl_chain(rt: Any, head: Any, params: dict[str, Any], relays: int) -> None:
    """``head -> relay x relays -> sink`` launched, wired and active on ``rt``."""
    stages = ["sink", *(f"relay{i}" for i in range(relays, 0, -1)), "source"]
    await rt.launch("sink", sink, queue_size=4096)
    for kid in stages[1:-1]:
        await rt.launch(kid, relay, queue_size=4096)
    await rt.launch("source", head, params=params, queue_size=4096)
    for producer, consumer in zip(stages[:0:-1], stages[-2::-1], strict=True):
        rt.connect(producer, consumer, capacity=4096)
    for kid in stages:
        await rt.activate(kid)


def _metrics(rt: Any, kernel_id: str) -> dict[str, Any]:
    for k in rt.snapshot().kernels:
        if k.id == kernel_id:
            return dict(k.metrics)
    return {}


# -- the baselines: plain Ray actors ------------------------------------------------------


class _StampedSink:
    """What a plain latency chain's sink keeps: each window's latencies, in seconds."""

    def __init__(self) -> None:
        self.latencies: dict[int, list[float]] = {}

    def _arrived(self, msg: tuple[float, int, int]) -> None:
        self.latencies.setdefault(msg[1], []).append(time.perf_counter() - msg[0])

    def window_p50(self, window: int, n: int) -> float | None:
        got = self.latencies.get(window, [])
        return statistics.median(got) * 1e3 if got and len(got) == n else None


def raw_actor_class() -> Any:
    import ray

    @ray.remote(num_cpus=0)  # as ringctl's actors: placed however many there are
    class Stage(_StampedSink):
        """One stage: forwards what it gets to ``next`` (up to ``WINDOW`` calls in
        flight), or, as the sink, counts it and checks the ints' order."""

        def __init__(self, nxt: Any) -> None:
            self.next = nxt
            self.window = asyncio.Semaphore(WINDOW)
            self.items = self.disorder = 0
            super().__init__()
            self.t_last = 0.0

        async def forward(self, msg: tuple[float, int, int]) -> None:
            """Latency chain: one call per hop, nothing awaited."""
            if self.next is None:
                self._arrived(msg)
            else:
                self.next.forward.remote(msg)

        async def emit_stamped(self, start: float, gap: float, n: int, window: int) -> None:
            for i in range(n):
                await _sleep_until(start + i * gap)
                self.next.forward.remote((time.perf_counter(), window, n))

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
            return {"items": self.items, "disorder": self.disorder, "t_last": self.t_last}

    return Stage


def sync_actor_class() -> Any:
    import ray

    @ray.remote(num_cpus=0)
    class SyncStage(_StampedSink):
        """The latency chain on plain threaded actors: a call runs on the thread that
        took it, with no hop to an event loop, so these forward faster than async ones."""

        def __init__(self, nxt: Any) -> None:
            self.next = nxt
            super().__init__()

        def forward(self, msg: tuple[float, int, int]) -> None:
            if self.next is None:
                self._arrived(msg)
            else:
                self.next.forward.remote(msg)

        def emit_stamped(self, start: float, gap: float, n: int, window: int) -> None:
            for i in range(n):
                delay = start + i * gap - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                self.next.forward.remote((time.perf_counter(), window, n))

    return SyncStage


async def raw_run(
    stage_cls: Any, *, count: int, size: int, relays: int, delay: float
) -> dict[str, Any]:
    import ray

    actors = [stage_cls.remote(None)]
    for _ in range(relays + 1):
        actors.append(stage_cls.remote(actors[-1]))
    expected = count if size == 1 else (count // size) * size
    try:
        await asyncio.gather(*(actor.result.remote() for actor in actors))  # all started
        await asyncio.sleep(delay)  # Ray replaces the workers the actors took
        t0 = await actors[-1].emit.remote(count, size, 1000)
        while (res := await actors[0].result.remote())["items"] < expected:
            await asyncio.sleep(0.02)
    finally:
        for actor in actors:
            ray.kill(actor)
    return {  # plain async actors do not keep calls in order: the baseline may reorder
        "rate": res["items"] / (res["t_last"] - t0),
        "ok": res["items"] == expected,
        "reordered": res["disorder"],
    }


# -- the latency chains, side by side -----------------------------------------------------


class LatencyLost(Exception):
    """A latency chain did not deliver every stamped message of a window in time."""


class Chains:
    """The three 4-hop chains, started once in one Ray session; ``window`` runs them
    together, message by message."""

    def __init__(self, address: str | None, relays: int) -> None:
        self.address = address
        self.relays = relays
        self.rt: Any = None
        self.raw: dict[str, list[Any]] = {}
        self.windows = 0

    async def start(self) -> None:
        from ringctl.engine.ray.engine import RayRuntime

        self.rt = RayRuntime(address=self.address)
        await _ringctl_chain(self.rt, stamper, {}, self.relays)
        for name, cls in (("threaded", sync_actor_class()), ("async", raw_actor_class())):
            actors = [cls.remote(None)]
            for _ in range(self.relays + 1):
                actors.append(cls.remote(actors[-1]))
            self.raw[name] = actors
        await asyncio.gather(*(a.window_p50.remote(0, 0) for a in self._all_raw()))

    def _all_raw(self) -> list[Any]:
        return [a for actors in self.raw.values() for a in actors]

    async def window(self, n: int, lead: int, timeout: float = 60.0) -> dict[str, float]:
        """``n`` stamped messages through each chain, every ``GAP_S``, the chains
        ``GAP_S / 3`` apart with ``CHAINS[lead]`` first; the p50 of each, in ms."""
        w = self.windows = self.windows + 1
        start = time.perf_counter() + 0.3  # every source has its orders by then
        order = CHAINS[lead:] + CHAINS[:lead]
        at = {name: start + i * GAP_S / len(CHAINS) for i, name in enumerate(order)}
        await asyncio.gather(
            self.rt.send("source", (at["ringctl"], GAP_S, n, w)),
            *(self.raw[name][-1].emit_stamped.remote(at[name], GAP_S, n, w) for name in self.raw),
        )
        deadline = time.perf_counter() + timeout
        got: dict[str, float] = {}
        while len(got) < len(CHAINS):
            if time.perf_counter() > deadline:
                missing = sorted(set(CHAINS) - set(got))
                raise LatencyLost(f"latency window {w}: {missing} did not deliver all {n}")
            await asyncio.sleep(0.05)
            p50 = _metrics(self.rt, "sink").get(f"w{w}")
            if p50 is not None:
                got["ringctl"] = p50
            for name, actors in self.raw.items():
                if name not in got and (p50 := await actors[0].window_p50.remote(w, n)):
                    got[name] = p50
        return got

    async def close(self) -> None:
        import ray

        for actor in self._all_raw():
            ray.kill(actor)
        if self.rt is not None:
            await self.rt.close()


async def latency(address: str | None, rounds: int, n: int, relays: int) -> list[dict[str, float]]:
    chains = Chains(address, relays)
    try:
        await chains.start()
        await chains.window(WARMUP, 0)  # the first calls of new actors are slow
        results = []
        for r in range(rounds):
            got = await chains.window(n, r % len(CHAINS))
            got["ratio"] = got["ringctl"] / got["threaded"]
            got["ratio_async"] = got["ringctl"] / got["async"]
            print(f"round {r + 1} latency_4_hops     ringctl {_fmt(got['ringctl'], 'ms')}  "
                  f"threaded {_fmt(got['threaded'], 'ms')} ({got['ratio']:.2f}x)  "
                  f"async {_fmt(got['async'], 'ms')} ({got['ratio_async']:.2f}x)  "
                  f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
            slot = GAP_S / len(CHAINS) * 1e3
            if max(got[name] for name in CHAINS) > slot:  # still one machine for all three
                print(f"  (a p50 above the {slot:.0f} ms slot: the chains' traversals overlapped)")
            results.append(got)
        return results
    finally:
        await chains.close()


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
    figures: dict[str, dict[str, list[float]]] = {}
    ok = True
    if not only or "latency_4_hops" in only:
        n = QUICK_PROBES if quick else PROBES
        print(f"latency: 3 chains at once, one message each every {GAP_S * 1e3:.0f} ms, "
              f"{GAP_S / len(CHAINS) * 1e3:.0f} ms apart; {n} per chain a round")  # fmt: skip
        try:
            lat = await latency(address, rounds, n, relays=3)
        except LatencyLost as exc:
            print(f"RINGCTL OR RAW LOST SOME: {exc}")
            ray.shutdown()
            return 1
        figures["latency_4_hops"] = {
            key: [got[key] for got in lat]
            for key in ("ringctl", "threaded", "async", "ratio", "ratio_async")
        }
    stage_cls = raw_actor_class()
    n_int = 20_000 if quick else 400_000
    n_arr = 200_000 if quick else 5_000_000
    cases: dict[str, dict[str, Any]] = {
        "python_ints": {"count": n_int, "size": 1, "relays": 1},
        "int64_1000": {"count": n_arr, "size": 1000, "relays": 1},
    }
    cases = {case: kw for case, kw in cases.items() if not only or case in only}
    settle = 0.2 if quick else SETTLE_S
    for r in range(rounds):
        for case, kw in cases.items():
            # Who goes first alternates; each run measures from SETTLE_S after its
            # actors started (Ray starts new idle workers meanwhile), and the last
            # run's actors have had SETTLE_S to go away.
            res: dict[str, dict[str, Any]] = {}
            for side in ("ringctl", "raw") if r % 2 == 0 else ("raw", "ringctl"):
                if side == "ringctl":
                    res[side] = await ringctl_run(address=address, delay=settle, **kw)
                else:
                    res[side] = await raw_run(stage_cls, delay=settle, **kw)
                await asyncio.sleep(settle)
            mine, raw = res["ringctl"], res["raw"]
            ok = ok and mine["ok"] and raw["ok"]
            got = figures.setdefault(case, {})
            ratio = mine["rate"] / raw["rate"]
            for key, value in (("ringctl", mine["rate"]), ("raw", raw["rate"]), ("ratio", ratio)):
                got.setdefault(key, []).append(value)
            line = (f"round {r + 1} {case:<16} ringctl {_fmt(mine['rate'], 'items/s')}  "
                    f"raw {_fmt(raw['rate'], 'items/s')} ({ratio:.2f}x)")  # fmt: skip
            line += "" if mine["ok"] else "  RINGCTL LOST OR REORDERED"
            line += "" if raw["ok"] else "  RAW LOST SOME"
            if raw.get("reordered"):
                line += f"  (raw: {raw['reordered']} chunks out of order)"
            print(line)
    goals = {"latency_4_hops": "<= 1.15x", "python_ints": ">= 0.9x", "int64_1000": ">= 5x"}
    print(f"\nmedians of {rounds} round(s) (ratio: of each round's ratios, with their range)")
    for case, got in figures.items():
        med = {key: statistics.median(vals) for key, vals in got.items()}
        if case == "latency_4_hops":
            print(f"  {case:<16} ringctl {_fmt(med['ringctl'], 'ms')}  threaded "
                  f"{_fmt(med['threaded'], 'ms')}  ratio {med['ratio']:.2f}x "
                  f"({min(got['ratio']):.2f}-{max(got['ratio']):.2f}, goal {goals[case]}); "
                  f"async {_fmt(med['async'], 'ms')}  ratio {med['ratio_async']:.2f}x "
                  f"({min(got['ratio_async']):.2f}-{max(got['ratio_async']):.2f})")  # fmt: skip
        else:
            print(f"  {case:<16} ringctl {_fmt(med['ringctl'], 'items/s')}  raw "
                  f"{_fmt(med['raw'], 'items/s')}  ratio {med['ratio']:.2f}x "
                  f"({min(got['ratio']):.2f}-{max(got['ratio']):.2f}, "
                  f"goal {goals[case]})")  # fmt: skip
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
