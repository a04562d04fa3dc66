"""Runtime micro-benchmarks: prints figures, asserts nothing (run on demand, not in CI timing).

    python benchmarks/runtime_bench.py            # full run (about 20 s on 2 cores)
    python benchmarks/runtime_bench.py --quick    # CI smoke: tiny sizes, same code paths

Figures: ping-pong round trip through runtime.send/receive (p50/p99); one echo kernel's
pipelined messages/s; a 3-stage kernel-to-kernel pipeline with per-message calls, and its
items/s with batches; launch+activate+terminate_all of 1,000 kernels; and the same
3-stage pipeline as bare asyncio tasks on deques, so the runtime's overhead shows as a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ringctl import RingKernelRuntime
from ringctl.engine.local.loop import loop_name, run


async def echo(ctx: Any) -> None:
    async for msg in ctx.messages():
        await ctx.send(msg)


async def echo_loop(ctx: Any) -> None:
    receive, send = ctx.receive, ctx.send
    while not ctx.should_terminate:
        try:
            msg = await receive()
        except TimeoutError:
            continue
        await send(msg)


async def echo_batches(ctx: Any) -> None:
    while not ctx.should_terminate:
        try:
            batch = await ctx.receive_batch(4096)
        except TimeoutError:
            continue
        await ctx.send_batch(batch)


async def ping_pong(n: int) -> tuple[float, float]:
    async with RingKernelRuntime() as rt:
        await rt.launch("echo", echo_loop)
        await rt.activate("echo")
        samples = []
        clock = time.perf_counter
        for i in range(n):
            t0 = clock()
            await rt.send("echo", i)
            await rt.receive("echo")
            samples.append(clock() - t0)
    samples.sort()
    return samples[len(samples) // 2] * 1e6, samples[int(len(samples) * 0.99)] * 1e6


async def pipelined_echo(n: int) -> float:
    async with RingKernelRuntime() as rt:
        await rt.launch("echo", echo_loop)
        await rt.activate("echo")

        async def feed() -> None:
            send = rt.send
            for i in range(n):
                await send("echo", i)

        t0 = time.perf_counter()
        feeder = asyncio.create_task(feed())
        receive = rt.receive
        for _ in range(n):
            await receive("echo")
        await feeder
        return n / (time.perf_counter() - t0)


async def three_stage(n: int, *, batch: int = 0, iterate: bool = False) -> float:
    """source -> a -> b -> c -> runtime.receive; per-message, or batches of ``batch``.

    Per message the stages call ``receive``/``send``, or with ``iterate`` loop over
    ``ctx.messages()`` and ``send``."""
    body = echo_batches if batch else (echo if iterate else echo_loop)
    async with RingKernelRuntime() as rt:
        for kid in ("a", "b", "c"):
            await rt.launch(kid, body, queue_size=max(1024, batch * 4))
        rt.connect("a", "b")
        rt.connect("b", "c")
        for kid in ("c", "b", "a"):
            await rt.activate(kid)

        async def feed() -> None:
            if batch:
                chunk = list(range(batch))
                for _ in range(n // batch):
                    await rt.send_batch("a", chunk)
            else:
                for i in range(n):
                    await rt.send("a", i)

        t0 = time.perf_counter()
        feeder = asyncio.create_task(feed())
        got = 0
        total = (n // batch) * batch if batch else n
        while got < total:
            got += len(await rt.receive_batch("c", 65536))
        await feeder
        return total / (time.perf_counter() - t0)


async def bare_three_stage(n: int, capacity: int = 1024) -> float:
    """The same pipeline as plain asyncio tasks over bounded deques: the floor to compare with."""
    loop = asyncio.get_running_loop()

    class Chan:
        def __init__(self) -> None:
            self.items: deque[Any] = deque()
            self.getters: deque[asyncio.Future[None]] = deque()
            self.putters: deque[asyncio.Future[None]] = deque()

        async def put(self, x: Any) -> None:
            while len(self.items) >= capacity:
                f = loop.create_future()
                self.putters.append(f)
                await f
            self.items.append(x)
            if self.getters:
                f = self.getters.popleft()
                if not f.done():
                    f.set_result(None)

        async def get(self) -> Any:
            while not self.items:
                f = loop.create_future()
                self.getters.append(f)
                await f
            x = self.items.popleft()
            if self.putters:
                f = self.putters.popleft()
                if not f.done():
                    f.set_result(None)
            return x

    chans = [Chan() for _ in range(4)]

    async def stage(i: int) -> None:
        src, dst = chans[i], chans[i + 1]
        for _ in range(n):
            await dst.put(await src.get())

    tasks = [asyncio.create_task(stage(i)) for i in range(3)]

    async def feed() -> None:
        for i in range(n):
            await chans[0].put(i)

    t0 = time.perf_counter()
    feeder = asyncio.create_task(feed())
    for _ in range(n):
        await chans[3].get()
    await feeder
    await asyncio.gather(*tasks)
    return n / (time.perf_counter() - t0)


async def bare_three_stage_batched(n: int, batch: int, capacity: int = 1024) -> float:
    """The batched pipeline as plain asyncio tasks over bounded deques: lists of up to
    ``batch`` messages in, each stage moving what is queued (at most ``batch``) at once."""
    loop = asyncio.get_running_loop()

    class Chan:
        def __init__(self) -> None:
            self.items: deque[Any] = deque()
            self.getters: deque[asyncio.Future[None]] = deque()
            self.putters: deque[asyncio.Future[None]] = deque()

        async def put_many(self, xs: list[Any]) -> None:
            while len(self.items) + len(xs) > capacity:
                f = loop.create_future()
                self.putters.append(f)
                await f
            self.items.extend(xs)
            while self.getters:
                f = self.getters.popleft()
                if not f.done():
                    f.set_result(None)

        async def get_many(self, most: int) -> list[Any]:
            while not self.items:
                f = loop.create_future()
                self.getters.append(f)
                await f
            items = self.items
            if len(items) <= most:
                out = list(items)
                items.clear()
            else:
                out = [items.popleft() for _ in range(most)]
            while self.putters:
                f = self.putters.popleft()
                if not f.done():
                    f.set_result(None)
            return out

    chans = [Chan() for _ in range(4)]
    total = (n // batch) * batch

    async def stage(i: int) -> None:
        src, dst = chans[i], chans[i + 1]
        moved = 0
        while moved < total:
            xs = await src.get_many(4096)  # as echo_batches takes
            moved += len(xs)
            await dst.put_many(xs)

    tasks = [asyncio.create_task(stage(i)) for i in range(3)]

    async def feed() -> None:
        chunk = list(range(batch))
        for _ in range(n // batch):
            await chans[0].put_many(chunk)

    t0 = time.perf_counter()
    feeder = asyncio.create_task(feed())
    got = 0
    while got < total:
        got += len(await chans[3].get_many(65536))
    await feeder
    await asyncio.gather(*tasks)
    return total / (time.perf_counter() - t0)


async def many_kernels(n: int) -> tuple[float, float]:
    rt = RingKernelRuntime()
    t0 = time.perf_counter()
    for i in range(n):
        await rt.launch(f"k{i}", echo)
    for i in range(n):
        await rt.activate(f"k{i}")
    await asyncio.sleep(0)  # let every body reach its first receive
    up = time.perf_counter() - t0
    t1 = time.perf_counter()
    await rt.terminate_all(timeout=5.0)
    down = time.perf_counter() - t1
    return up, down


def best(values: list[float]) -> float:
    return max(values)


def median(values: list[float]) -> float:
    return statistics.median(values)


#: Goals, each a ratio against a floor measured in the same run (reported, not enforced).
GOALS = {"messages_vs_floor": 0.8, "batches_vs_floor": 0.95}


async def main(quick: bool) -> None:
    scale = 0.02 if quick else 1.0
    rounds = 1 if quick else 5
    n_pp = int(20_000 * scale) or 200
    n_pipe = int(100_000 * scale) or 2000
    n_batch = int(2_000_000 * scale) or 40_000
    print(f"python {sys.version.split()[0]}, loop {loop_name()}")
    p50, p99 = await ping_pong(n_pp)
    print(f"ping-pong round trip:            p50 {p50:7.2f} us   p99 {p99:7.2f} us   (n={n_pp})")
    rate = best([await pipelined_echo(n_pipe) for _ in range(rounds)])
    print(f"one echo kernel, pipelined:      {rate / 1e3:9.1f} K msg/s")
    # Interleaved rounds: each figure is the median of its rounds, and each ratio the
    # median of the rounds' ratios, so a drift in the machine's speed moves both sides.
    runs: dict[str, list[float]] = {}
    cases = {
        "receive": lambda: three_stage(n_pipe),
        "messages": lambda: three_stage(n_pipe, iterate=True),
        "floor": lambda: bare_three_stage(n_pipe),
        "batches": lambda: three_stage(n_batch, batch=256),
        "floor_batched": lambda: bare_three_stage_batched(n_batch, 256),
    }
    for _ in range(rounds):
        for name, case in cases.items():
            runs.setdefault(name, []).append(await case())

    def ratio(a: str, b: str) -> float:
        return median([x / y for x, y in zip(runs[a], runs[b], strict=True)])

    print(
        f"3-stage pipeline, per message:   {median(runs['receive']) / 1e3:9.1f} K msg/s"
        f"   (receive/send)   ratio {ratio('receive', 'floor'):.2f}x"
    )
    print(
        f"3-stage pipeline, messages():    {median(runs['messages']) / 1e3:9.1f} K msg/s"
        f"   ratio {ratio('messages', 'floor'):.2f}x"
        f"   (goal {GOALS['messages_vs_floor']}x)"
    )
    print(
        f"3-stage bare asyncio baseline:   {median(runs['floor']) / 1e3:9.1f} K msg/s"
        f"   ratio {ratio('receive', 'floor'):.2f}x"
    )
    print(
        f"3-stage pipeline, batches of 256 {median(runs['batches']) / 1e6:8.2f} M items/s"
        f"   ratio {ratio('batches', 'floor_batched'):.2f}x"
        f"   (goal {GOALS['batches_vs_floor']}x)"
    )
    print(f"3-stage bare asyncio, batched:   {median(runs['floor_batched']) / 1e6:8.2f} M items/s")
    n_k = 100 if quick else 1000
    up, down = await many_kernels(n_k)
    print(f"{n_k} kernels: launch+activate {up * 1e3:7.1f} ms, terminate_all {down * 1e3:7.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke)")
    parser.add_argument("--no-uvloop", action="store_true", help="use asyncio's default loop")
    args = parser.parse_args()
    run(main(args.quick), use_uvloop=not args.no_uvloop)
