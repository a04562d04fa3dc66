"""What ``ringctl tap`` costs the edge it samples: prints figures, asserts nothing.

    python benchmarks/tap_bench.py                  # about 30 s on 2 cores
    python benchmarks/tap_bench.py --quick          # CI smoke: tiny sizes, same code paths
    python benchmarks/tap_bench.py --against DIR    # also: the same pipeline with the
                                                    # ringctl found in DIR (e.g. a checkout
                                                    # from before taps), in subprocesses
    python benchmarks/tap_bench.py --instructions   # CPU instructions per message under
                                                    # valgrind: untapped vs tapped

The 3-stage per-message pipeline of ``runtime_bench.py`` (a -> b -> c -> receive), run
in alternation, median of several, all in this run:

- never tapped: the baseline;
- after a tap came and went: the port is back on its untapped path (ratio ~1.0);
- tapped on ``b.out`` with a reader doing what the supervisor's tap loop does (take up
  to 20 messages every 50 ms, preview and encode each one): the bar is >= 0.90.

Rates are messages per second of the process's CPU time (the pipeline runs on one
thread), so other programs on a busy machine move the figures less than wall time
would; the median of the runs is shown. On a machine too busy even for that,
``--instructions`` counts what callgrind sees per message (a run of N messages minus a
run of one, divided by N), untapped and tapped with nobody reading (the send path's share;
the reader's share is bounded by its pace: at most 400 messages a second are previewed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime_bench import echo_loop  # the same kernel the runtime benchmark measures

import ringctl
from ringctl import RingKernelRuntime
from ringctl._preview import preview
from ringctl.control import protocol
from ringctl.control.tap import PER_POLL, POLL_S
from ringctl.engine.local.loop import loop_name, run


async def three_stage(n: int, mode: str) -> float:
    """Messages per CPU second through a -> b -> c.

    ``mode``: plain | detached (a tap came and went) | tapped (and read) | unread (tapped,
    nobody reading: the send path's share alone, what ``--instructions`` counts).
    """
    async with RingKernelRuntime() as rt:
        for kid in ("a", "b", "c"):
            await rt.launch(kid, echo_loop, queue_size=1024)
        rt.connect("a", "b")
        rt.connect("b", "c")
        for kid in ("c", "b", "a"):
            await rt.activate(kid)
        tap = None
        reader: asyncio.Task[None] | None = None
        if mode in ("detached", "tapped", "unread"):
            tap = rt.tap("b", "out")
        if mode == "detached":
            assert tap is not None
            rt.untap("b", "out", tap)
        elif mode == "tapped":
            assert tap is not None
            reader = asyncio.create_task(_read(tap))

        async def feed() -> None:
            send = rt.send
            for i in range(n):
                await send("a", i)

        t0 = time.process_time()
        feeder = asyncio.create_task(feed())
        got = 0
        while got < n:
            got += len(await rt.receive_batch("c", 65536))
        await feeder
        rate = n / (time.process_time() - t0)
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        return rate


async def sender(ctx: Any) -> None:
    """Send ``n`` messages as fast as it can; publish the CPU time that took."""
    n = ctx.params["n"]
    send = ctx.send
    t0 = time.process_time()
    for i in range(n):
        await send(i)
    ctx.metrics["cpu_s"] = time.process_time() - t0


async def send_cost(n: int, tapped: bool) -> float:
    """Nanoseconds of CPU per ``ctx.send`` on an unwired port, tapped or not."""
    async with RingKernelRuntime() as rt:
        await rt.launch("k", sender, params={"n": n}, queue_size=n + 1)
        if tapped:
            rt.tap("k", "out")
        await rt.activate("k")
        await rt.wait_finished("k", timeout=60)
        (snap,) = rt.snapshot().kernels
        return float(snap.metrics["cpu_s"]) / n * 1e9


async def _read(tap: Any) -> None:
    """The supervisor's tap loop without the socket (ringctl.control.tap)."""
    while True:
        for msg in tap.take(PER_POLL):
            protocol.encode({"v": 1, "event": "message", "data": {"value": preview(msg)}})
        await asyncio.sleep(POLL_S)


_CHILD = """
import asyncio, sys, time
sys.path.insert(0, sys.argv[1])
import ringctl
from ringctl import RingKernelRuntime
from ringctl.control import protocol
from ringctl._preview import preview
from ringctl.control.tap import PER_POLL, POLL_S
from ringctl.engine.local.loop import run

async def echo_loop(ctx):
    receive, send = ctx.receive, ctx.send
    while not ctx.should_terminate:
        try:
            msg = await receive()
        except TimeoutError:
            continue
        await send(msg)

async def main(n):
    async with RingKernelRuntime() as rt:
        for kid in ("a", "b", "c"):
            await rt.launch(kid, echo_loop, queue_size=1024)
        rt.connect("a", "b")
        rt.connect("b", "c")
        for kid in ("c", "b", "a"):
            await rt.activate(kid)
        async def feed():
            for i in range(n):
                await rt.send("a", i)
        t0 = time.process_time()
        feeder = asyncio.create_task(feed())
        got = 0
        while got < n:
            got += len(await rt.receive_batch("c", 65536))
        await feeder
        print(n / (time.process_time() - t0))

run(main(int(sys.argv[2])))
"""


def _in_subprocess(root: Path, n: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), str(n)],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return float(out.stdout.strip())


async def main(quick: bool) -> None:
    n = 6_000 if quick else 200_000
    reps = 1 if quick else 7
    print(f"python {sys.version.split()[0]}, loop {loop_name()}, {n} messages, median of {reps}")
    runs: dict[str, list[float]] = {"plain": [], "detached": [], "tapped": []}
    for _ in range(reps):  # alternated, so drift on a shared machine hits all alike
        for mode, rates in runs.items():
            rates.append(await three_stage(n, mode))
    best = {mode: statistics.median(rates) for mode, rates in runs.items()}
    sends: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(reps * 3):
        for tapped, costs in sends.items():
            costs.append(await send_cost(n, tapped))
    plain_ns, tapped_ns = (statistics.median(sends[t]) for t in (False, True))
    base = best["plain"]
    print(f"3-stage, never tapped:           {base / 1e3:9.1f} K msg/CPU-s")
    print(f"3-stage, a tap came and went:    {best['detached'] / 1e3:9.1f} K msg/CPU-s   "
          f"ratio {best['detached'] / base:.3f}")  # fmt: skip
    print(f"3-stage, b.out tapped and read:  {best['tapped'] / 1e3:9.1f} K msg/CPU-s   "
          f"ratio {best['tapped'] / base:.3f}")  # fmt: skip
    extra = tapped_ns - plain_ns
    print(f"ctx.send, untapped port:         {plain_ns:9.0f} ns CPU")
    print(f"ctx.send, tapped port:           {tapped_ns:9.0f} ns CPU   (+{extra:.0f} ns, "
          f"{extra * base / 1e9:.1%} of a 3-stage message's CPU time)")  # fmt: skip


_PROBE = """
import sys
sys.path.insert(0, {bench!r})
import tap_bench
from ringctl.engine.local.loop import run
run(tap_bench.three_stage(int(sys.argv[1]), sys.argv[2]))
"""


def instructions(mode: str, n: int) -> int:
    """Instructions callgrind counts for a whole process moving ``n`` messages."""
    root = Path(ringctl.__file__).resolve().parents[1]
    err = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-c", _PROBE.format(bench=str(root / "benchmarks")), str(n), mode],
        cwd=root, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
    ).stderr  # fmt: skip
    found = re.search(r"Collected : (\d+)", err)
    if found is None:
        raise RuntimeError(f"callgrind gave no count:\n{err[-2000:]}")
    return int(found.group(1))


def compare_instructions(n: int) -> None:
    per = {m: (instructions(m, n + 1) - instructions(m, 1)) / n for m in ("plain", "unread")}
    print(f"3-stage, never tapped:           {per['plain']:9.0f} instructions/message")
    print(f"3-stage, b.out tapped:           {per['unread']:9.0f} instructions/message   "
          f"throughput ratio {per['plain'] / per['unread']:.3f}")  # fmt: skip


def compare(against: Path, quick: bool) -> None:
    """This checkout against another one, untapped, each in its own subprocess, alternated."""
    n = 6_000 if quick else 200_000
    reps = 1 if quick else 7
    here = Path(ringctl.__file__).resolve().parents[1]
    ours_runs, theirs_runs = [], []
    for _ in range(reps):
        ours_runs.append(_in_subprocess(here, n))
        theirs_runs.append(_in_subprocess(against, n))
    ours, theirs = statistics.median(ours_runs), statistics.median(theirs_runs)
    print(f"3-stage, this checkout:          {ours / 1e3:9.1f} K msg/CPU-s (subprocess)")
    print(f"3-stage, ringctl in {against}: {theirs / 1e3:9.1f} K msg/CPU-s   "
          f"ratio this/that {ours / theirs:.3f}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke)")
    parser.add_argument("--against", type=Path, help="a ringctl checkout to compare with")
    parser.add_argument("--no-uvloop", action="store_true", help="use asyncio's default loop")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions under valgrind instead"
    )
    args = parser.parse_args()
    if args.instructions:
        compare_instructions(2_000 if args.quick else 20_000)
        sys.exit(0)
    run(main(args.quick), use_uvloop=not args.no_uvloop)
    if args.against is not None:
        compare(args.against, args.quick)
