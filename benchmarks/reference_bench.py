"""ringctl against the reference implementation of its lifecycle API, in one run.

    python benchmarks/reference_bench.py            # full run (about half a minute)
    python benchmarks/reference_bench.py --quick    # tiny sizes, same code paths

The reference is PyDotCompute 0.2.0 (``pip install pydotcompute==0.2.0``; not one of
ringctl's dependencies: without it this prints a note and exits 0). Both run the same
code, written against the lifecycle API alone (``launch``, ``activate``, ``send``,
``receive``, the actor loop with ``ctx.receive(timeout=...)`` and ``ctx.send``):

- ``echo``: one kernel sending back what it gets; the driver sends ``n`` messages from
  one task while another receives them (messages/s).
- ``chain``: three kernels, each forwarding to the next with ``runtime.send`` (the API
  has no queues between kernels), the last one's output received by the driver.
- ``ping_pong``: one message at a time through the echo kernel (p50 round trip).

A full run is ``ROUNDS`` rounds; in each, every figure is measured for the two libraries
back to back, who goes first alternating by round, so the two numbers of a ratio see the
same machine (it is shared, and its speed moves by more than the effect measured).
Figures are medians, as ``[ringctl, reference]``; a ratio is the median of the rounds'
ratios, ringctl over the reference for throughput, the reference over ringctl for the
round trip (higher is better for both). Prints one line ``BENCH {json}``; the goals are
reported, not enforced. A figure the reference stalls on (it can wait forever for a
wake-up it missed) is left out of that round, and counted in ``reference_stalled``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GOALS = {"echo": 6.0, "chain": 6.0, "ping_pong_p50": 3.0}
#: A round of one library that has not finished after this long has stalled. The reference
#: can lose a wake-up and wait forever (PyDotCompute 0.2.0, under load: a chain with every
#: queue full, a ping-pong's receive); its stalled rounds are left out and counted in
#: ``reference_stalled``. A stalled ringctl round is a fault and ends the run.
STALL_S = 120.0
#: The same for ``--quick``, whose rounds take a fraction of a second.
QUICK_STALL_S = 20.0
#: Rounds of a full run: each measures every figure once for each library.
ROUNDS = 7


def actor_loop(forward: Any) -> Any:
    """The spec's actor loop; ``forward(ctx, msg)`` sends the message on."""

    async def body(ctx: Any) -> None:
        while not ctx.should_terminate:
            if not ctx.is_active:
                await ctx.wait_active()
                continue
            try:
                msg = await ctx.receive(timeout=0.1)
            except TimeoutError:
                continue
            await forward(ctx, msg)

    return body


async def _to_output(ctx: Any, msg: Any) -> None:
    await ctx.send(msg)


async def echo(lib: Any, n: int) -> float:
    async with lib.RingKernelRuntime() as rt:
        await rt.launch("echo", actor_loop(_to_output))
        await rt.activate("echo")

        async def feed() -> None:
            for i in range(n):
                await rt.send("echo", i)

        t0 = time.perf_counter()
        feeder = asyncio.create_task(feed())
        for _ in range(n):
            await rt.receive("echo")
        await feeder
        return n / (time.perf_counter() - t0)


async def chain(lib: Any, n: int) -> float:
    async with lib.RingKernelRuntime() as rt:

        def to(next_id: str) -> Any:
            async def forward(ctx: Any, msg: Any) -> None:
                await rt.send(next_id, msg)

            return forward

        await rt.launch("c", actor_loop(_to_output))
        await rt.launch("b", actor_loop(to("c")))
        await rt.launch("a", actor_loop(to("b")))
        for kid in ("c", "b", "a"):
            await rt.activate(kid)

        async def feed() -> None:
            for i in range(n):
                await rt.send("a", i)

        t0 = time.perf_counter()
        feeder = asyncio.create_task(feed())
        for _ in range(n):
            await rt.receive("c")
        await feeder
        return n / (time.perf_counter() - t0)


async def ping_pong(lib: Any, n: int) -> float:
    async with lib.RingKernelRuntime() as rt:
        await rt.launch("echo", actor_loop(_to_output))
        await rt.activate("echo")
        samples = []
        clock = time.perf_counter
        for i in range(n):
            t0 = clock()
            await rt.send("echo", i)
            await rt.receive("echo")
            samples.append(clock() - t0)
        return statistics.median(samples[n // 10 :]) * 1e6


async def main(quick: bool) -> dict[str, Any]:
    try:
        reference = importlib.import_module("pydotcompute")
    except ImportError:
        return {"skipped": "pydotcompute is not installed (pip install pydotcompute==0.2.0)"}
    import ringctl

    libs = {"ringctl": ringctl, "reference": reference}
    rounds = 1 if quick else ROUNDS
    n, n_pp = (2_000, 500) if quick else (50_000, 5_000)
    figures = {
        "echo": lambda lib: echo(lib, n),
        "chain": lambda lib: chain(lib, n),
        "ping_pong_p50": lambda lib: ping_pong(lib, n_pp),
    }
    runs: dict[str, dict[str, list[float]]] = {name: {} for name in libs}
    stalled = 0
    stall_s = QUICK_STALL_S if quick else STALL_S
    for r in range(rounds):
        # Each figure is measured for both libraries back to back, who goes first
        # alternating by round, so the two numbers of a ratio see the same machine.
        order = list(libs.items()) if r % 2 == 0 else list(libs.items())[::-1]
        for figure, measure in figures.items():
            pair: dict[str, float] = {}
            for name, lib in order:
                try:
                    async with asyncio.timeout(stall_s):
                        pair[name] = await measure(lib)
                except TimeoutError:
                    if name == "ringctl":
                        raise RuntimeError(
                            f"ringctl stalled: {figure} ran past {stall_s} s"
                        ) from None
                    stalled += 1
            if len(pair) < len(libs):
                continue  # the reference stalled: this pair has nothing to compare
            for name, value in pair.items():
                runs[name].setdefault(figure, []).append(value)
    out: dict[str, Any] = {"quick": quick, "reference": f"pydotcompute {reference.__version__}"}
    out["reference_stalled"] = stalled
    for figure in figures:
        if figure not in runs["ringctl"]:
            out[figure + "_skipped"] = "the reference stalled in every round"
            continue
        mine, theirs = runs["ringctl"][figure], runs["reference"][figure]
        pairs = zip(mine, theirs, strict=True)
        if figure == "ping_pong_p50":  # a time: lower is better
            ratio = statistics.median(t / m for m, t in pairs)
            out[figure + "_us"] = [round(statistics.median(x), 2) for x in (mine, theirs)]
        else:
            ratio = statistics.median(m / t for m, t in pairs)
            out[figure + "_msgs_per_s"] = [round(statistics.median(x)) for x in (mine, theirs)]
        out[figure + "_ratio"] = round(ratio, 2)
    out["goals_met"] = {f: out.get(f + "_ratio", 0) >= goal for f, goal in GOALS.items()}
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, same code paths")
    args = parser.parse_args()
    print("BENCH " + json.dumps(asyncio.run(main(args.quick))), flush=True)
