"""Persistent kernels against asyncio kernels, in one run: prints one line ``BENCH {json}``.

    python benchmarks/persistent_bench.py            # full run (about 40 s on 2 cores)
    python benchmarks/persistent_bench.py --runs 3   # three full runs, each in its own
                                                     # process: their medians and spread
    python benchmarks/persistent_bench.py --quick    # CI smoke: small sizes, same code paths
    python benchmarks/persistent_bench.py --verbose  # each round's rates on stderr
    python benchmarks/persistent_bench.py --one-core --runs 3   # both paths on one core

Every ratio is against a baseline measured in the same run. A run measures 15 rounds;
each round runs all three pipelines one after another (about a third of a second each,
in an order that rotates from round to round), so the two rates of a ratio are measured
under the same machine load, and each ratio is the median of the rounds' ratios:

- ``records_per_s_asyncio``: a 3-stage record pipeline (double -> keep even -> count) as
  asyncio kernels in one runtime, one message per record.
- ``records_per_s_persistent``: the same 3 stages as persistent kernels in one worker
  with the default ``LoopOptions``, ring to ring, the host pushing chunks of records and
  napping while the first ring is full; ``speedup_vs_asyncio`` (median of the rounds'
  ratios) and ``speedup_quartiles`` (of the rounds' ratios).
- ``records_per_s_no_spin``: the same pipeline, loops that nap as soon as they are idle
  (``spin_us=0``), in a worker of its own; ``default_vs_no_spin``: what the default's
  short spin costs in throughput.
- ``cores_used``: the cores' worth of CPU each pipeline used while measured (this
  process, plus the worker's threads); ``speedup_per_cpu_second``: the speedup counted
  in records per CPU-second instead of per second, which moves less with the load.
- ``round_trip_p50_us`` / ``_p99_us``: host -> persistent kernel (in its worker process)
  -> host, one record at a time, default options, the host spinning on the output ring.
- ``scaling_two_cores``: two CPU-bound persistent stages, the worker pinned to one core,
  then to two (records pre-loaded, so the host does nothing while measured);
  ``two_stages_cpu_cores_used`` says how much CPU the worker actually got in each round
  (near 1.0 and 2.0 on an idle machine; less when other work holds the cores).
- ``idle_cpu_percent``: the worker's CPU use (% of one core) with one active kernel and
  nothing to do, default options.
- ``ordering_errors``: records the counting sink saw out of sequence (must be 0).
- ``load_average``: the machine's 1-minute load when the run started (the machine may
  be shared; read the figures with it).

With ``--runs N`` each run's summary is printed as it ends, then one ``BENCH`` line with
every run's figures, their medians and their spread (largest / smallest).

On a machine shared with other work the persistent pipeline gets a second core only
when the other work leaves one, and the asyncio pipeline never uses more than one, so
their ratio moves with the machine's load from run to run. ``--one-core`` runs the whole
benchmark (this process and the workers it starts) on one core, so both paths compete
for the same share of the same core: the ratio per core, which holds from run to run.
On one core no loop spins (no core to spare), so the round trip is a nap's and the
spin-related goals are not checked.

The exit status is non-zero only for a real failure (a lost or reordered record, an
error); a ratio that misses its goal on a busy machine shows in ``goals_met``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from persistent_kernels import RECORD  # noqa: E402

from ringctl import RingKernelRuntime  # noqa: E402
from ringctl.engine.local.persistent.host import PersistentGroup  # noqa: E402
from ringctl.engine.local.persistent.ringops import ring_pop, ring_push  # noqa: E402
from ringctl.kernel.persistent import LoopOptions  # noqa: E402

GOALS = {
    "speedup_vs_asyncio": 100.0,
    "default_vs_no_spin": 0.7,
    "round_trip_p50_us": 2.0,
    "scaling_two_cores": 1.7,
    "speedup_spread": 1.5,  # max / min of the speedups of repeated runs
}
NO_SPIN = LoopOptions(spin_us=0)
CHUNK = 4096  # records the host pushes at once
VERBOSE = False  # --verbose: each round's rates on stderr


def records(n: int) -> np.ndarray:
    arr = np.zeros(n, RECORD)
    arr["seq"] = np.arange(n)
    arr["value"] = np.arange(n, dtype=np.float64)
    return arr


def group(
    name: str,
    kernels: dict[str, str],
    chain: list[str],
    ring: int | None,
    options: LoopOptions | None = None,
) -> PersistentGroup:
    g = PersistentGroup(name, sys_path=[str(HERE)])
    for kid, handler in kernels.items():
        g.add(kid, f"persistent_kernels:{handler}", capacity=ring, options=options)
    for a, b in itertools.pairwise(chain):
        g.connect(a, b)
    return g


async def start(g: PersistentGroup, ids: list[str]) -> None:
    for kid in ids:
        await g.launch(kid)
    for kid in reversed(ids):
        await g.activate(kid)


async def wait_count(g: PersistentGroup, kid: str, n: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while g.stats(kid).records_in < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{kid} saw {g.stats(kid).records_in} of {n} records")
        await asyncio.sleep(0.0002)


# -- asyncio baseline ----------------------------------------------------------------------


async def asyncio_pipeline(n: int) -> tuple[float, float]:
    """Records/s through the asyncio pipeline, and the cores' worth of CPU it used."""
    done = asyncio.Event()

    async def source(ctx: Any) -> None:
        send = ctx.send
        for i in range(n):
            await send((i, float(i)))

    async def double(ctx: Any) -> None:
        async for seq, value in ctx.messages():
            await ctx.send((seq, value * 2.0))

    async def keep_even(ctx: Any) -> None:
        async for seq, value in ctx.messages():
            if seq % 2 == 0:
                await ctx.send((seq, value))

    seen = 0

    async def count(ctx: Any) -> None:
        nonlocal seen
        async for _ in ctx.messages():
            seen += 1
            if seen == n // 2:
                done.set()

    async with RingKernelRuntime() as rt:
        for kid, body in (("count", count), ("keep", keep_even), ("double", double)):
            await rt.launch(kid, body)
        await rt.launch("source", source)
        rt.connect("source", "double")
        rt.connect("double", "keep")
        rt.connect("keep", "count")
        for kid in ("count", "keep", "double"):
            await rt.activate(kid)
        t0, c0 = time.perf_counter(), cpu_ns(None)
        await rt.activate("source")
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - t0
        return n / elapsed, (cpu_ns(None) - c0) / 1e9 / elapsed


# -- persistent ------------------------------------------------------------------------------


class Pipeline:
    """The 3-stage persistent pipeline, launched once and fed round after round."""

    IDS = ("double", "keep", "count")

    def __init__(self, name: str, options: LoopOptions | None) -> None:
        handlers = dict(zip(self.IDS, ["double", "keep_even", "count"], strict=True))
        self.group = group(name, handlers, list(self.IDS), None, options)  # default ring
        self.sent = 0
        self.chunk = records(CHUNK)

    async def start(self) -> None:
        await start(self.group, list(self.IDS))

    async def run(self, n: int) -> tuple[float, float]:
        """Push ``n`` more records (whole chunks) and wait for the sink: records/s, and
        the cores' worth of CPU the host and the worker used meanwhile."""
        pid = self.group.worker_pid
        t0, c0 = time.perf_counter(), cpu_ns(pid)
        self.feed(n // CHUNK)
        await wait_count(self.group, "count", self.sent // 2)
        elapsed = time.perf_counter() - t0
        return (n // CHUNK * CHUNK) / elapsed, (cpu_ns(pid) - c0) / 1e9 / elapsed

    def feed(self, chunks: int) -> None:
        """The host's side: push chunk after chunk, napping while the first ring is full."""
        ring = self.group.inbox("double")
        header, slots, chunk = ring.header, ring.records, self.chunk
        for _ in range(chunks):
            chunk["seq"] = np.arange(self.sent, self.sent + CHUNK)
            part = chunk
            while True:
                took = ring_push(header, slots, part)
                if took == len(part):
                    break
                part = part[took:]
                time.sleep(20e-6)  # leave the cores to the loops
            self.sent += CHUNK

    def ordering_errors(self) -> int:
        return 0 if self.group.state_array("count")[0] == self.sent // 2 else 1


async def round_trip_and_idle(n: int, idle_s: float) -> tuple[float, float, int, float]:
    """Round trips one record at a time; then the same worker's CPU use while idle."""
    g = group("bench-rt", {"k": "double"}, [], 1024)
    try:
        await start(g, ["k"])
        inbox, outbox = g.inbox("k"), g.outbox("k")
        assert outbox is not None
        one = records(1)
        got = np.zeros(1, RECORD)
        samples = np.empty(n, np.int64)
        errors = 0
        clock = time.perf_counter_ns
        for i in range(n):
            one["seq"][0] = i
            t0 = clock()
            ring_push(inbox.header, inbox.records, one)
            while not ring_pop(outbox.header, outbox.records, got):
                pass
            samples[i] = clock() - t0
            errors += int(got["seq"][0] != i)
        warm = samples[n // 10 :] / 1e3
        pid = g.worker_pid
        assert pid is not None
        await asyncio.sleep(0.5)  # past the spin, into the naps
        c0, t0s = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(idle_s)
        idle = 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0s)
        return float(np.percentile(warm, 50)), float(np.percentile(warm, 99)), errors, idle
    finally:
        await g.close()


def pin(pid: int, cores: set[int]) -> None:
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), cores)


async def scaling(n: int, cores: list[int]) -> tuple[list[float], list[float]]:
    """Two CPU-bound stages, the worker pinned to one core, then to two.

    Returns the rates and the cores' worth of CPU the worker got in each round: on a
    shared machine the second core may be busy with other work, which the share shows.
    The loops nap as soon as they are idle (``spin_us=0``): a consumer spinning on the core
    its producer needs would only measure the spin.
    """
    ids = ["a", "b"]
    ring = 1 << max(10, (n - 1).bit_length())
    g = PersistentGroup("bench-scale", sys_path=[str(HERE)])
    napping = LoopOptions(spin_us=0, nap_us=50)
    g.add("a", "persistent_kernels:burn", capacity=ring, options=napping)
    g.add("b", "persistent_kernels:burn_sink", capacity=ring, options=napping)
    g.connect("a", "b")
    rates: list[float] = []
    shares: list[float] = []
    try:
        for kid in ids:
            await g.launch(kid)
        inbox = g.inbox("a")
        for round_, use in enumerate(({cores[0]}, {cores[0], cores[1]})):
            assert ring_push(inbox.header, inbox.records, records(n)) == n  # pre-loaded
            assert g.worker_pid is not None
            pin(g.worker_pid, use)
            c0, t0 = cpu_seconds(g.worker_pid), time.perf_counter()
            for kid in reversed(ids):
                await (g.activate(kid) if round_ == 0 else g.reactivate(kid))
            await wait_count(g, "b", n * (round_ + 1), timeout=300)
            elapsed = time.perf_counter() - t0
            rates.append(n / elapsed)
            shares.append((cpu_seconds(g.worker_pid) - c0) / elapsed)
            for kid in ids:
                await g.deactivate(kid)
        return rates, shares
    finally:
        await g.close()


def cpu_ns(worker: int | None) -> int:
    """CPU time of this process, plus every thread of ``worker`` (nanoseconds)."""
    total = time.process_time_ns()
    if worker is not None:
        for tid in os.listdir(f"/proc/{worker}/task"):
            with contextlib.suppress(FileNotFoundError):
                total += int(Path(f"/proc/{worker}/task/{tid}/schedstat").read_text().split()[0])
    return total


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(xs: list[float]) -> float:
    return float(np.median(xs))


ORDERS = (("asyncio", "default", "no_spin"), ("default", "no_spin", "asyncio"),
          ("no_spin", "asyncio", "default"))  # fmt: skip


async def interleaved(
    rounds: int, n_async: int, n_pers: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], int]:
    """The three throughputs and the CPU they used, round after round, in rotated order.

    Every round measures all three within about a second, so the ratios taken
    inside one round compare rates measured under the same machine load; the rotation
    keeps any one variant from always running first (after the others' caches and
    naps) or last.
    """
    default, no_spin = Pipeline("bench-default", None), Pipeline("bench-nospin", NO_SPIN)
    try:
        await default.start()
        await no_spin.start()
        await default.run(n_pers // 4)  # warm up: pages, caches
        await no_spin.run(n_pers // 4)
        await asyncio_pipeline(n_async // 4)
        rates: dict[str, list[float]] = {"asyncio": [], "default": [], "no_spin": []}
        cores: dict[str, list[float]] = {"asyncio": [], "default": [], "no_spin": []}
        for i in range(rounds):
            for variant in ORDERS[i % len(ORDERS)]:
                if variant == "asyncio":
                    rate, used = await asyncio_pipeline(n_async)
                else:
                    pipe = default if variant == "default" else no_spin
                    rate, used = await pipe.run(n_pers)
                rates[variant].append(rate)
                cores[variant].append(used)
            if VERBOSE:
                line = "  ".join(
                    f"{k} {v[-1] / 1e6:8.2f} M/s {cores[k][-1]:4.2f} cores"
                    for k, v in rates.items()
                )
                print(f"round {i + 1:2d}: {line}", file=sys.stderr, flush=True)
        return rates, cores, default.ordering_errors() + no_spin.ordering_errors()
    finally:
        await default.group.close()
        await no_spin.group.close()


async def main(quick: bool, rounds: int | None = None) -> dict[str, Any]:
    load = os.getloadavg()[0]
    rounds = rounds or (3 if quick else 15)
    n_async = 10_000 if quick else 200_000
    n_pers = 1 << (20 if quick else 25)
    n_rt = 2_000 if quick else 50_000
    n_scale = 20_000 if quick else 200_000
    out: dict[str, Any] = {
        "quick": quick,
        "rounds": rounds,
        "load_average": round(load, 2),
        "cores": os.cpu_count(),
        "one_core": len(os.sched_getaffinity(0)) == 1,
    }
    rates, cores_used, ordering = await interleaved(rounds, n_async, n_pers)
    out["records_per_s_asyncio"] = round(median(rates["asyncio"]))
    out["records_per_s_persistent"] = round(median(rates["default"]))
    out["records_per_s_no_spin"] = round(median(rates["no_spin"]))
    ratios = [d / a for d, a in zip(rates["default"], rates["asyncio"], strict=True)]
    out["speedup_vs_asyncio"] = round(median(ratios), 1)
    out["speedup_quartiles"] = [round(float(q)) for q in np.percentile(ratios, [25, 75])]
    out["cores_used"] = {k: round(median(v), 2) for k, v in cores_used.items()}
    per_cpu = {k: [r / c for r, c in zip(rates[k], cores_used[k], strict=True)] for k in rates}
    out["speedup_per_cpu_second"] = round(
        median([d / a for d, a in zip(per_cpu["default"], per_cpu["asyncio"], strict=True)]), 1
    )
    spin_cost = [d / z for d, z in zip(rates["default"], rates["no_spin"], strict=True)]
    out["default_vs_no_spin"] = round(median(spin_cost), 2)
    p50, p99, rt_errors, idle = await round_trip_and_idle(n_rt, 0.5 if quick else 2.0)
    out["round_trip_p50_us"] = round(p50, 2)
    out["round_trip_p99_us"] = round(p99, 2)
    out["ordering_errors"] = ordering + rt_errors
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 2:
        (one, two), shares = await scaling(n_scale, cores)
        out["two_stages_cpu_cores_used"] = [round(x, 2) for x in shares]
        out["two_stages_records_per_s_one_core"] = round(one)
        out["two_stages_records_per_s_two_cores"] = round(two)
        out["scaling_two_cores"] = round(two / one, 2)
    out["idle_cpu_percent"] = round(idle, 1)
    out["goals_met"] = {
        "speedup_vs_asyncio": out["speedup_vs_asyncio"] >= GOALS["speedup_vs_asyncio"],
        "ordering": out["ordering_errors"] == 0,
    }
    if not out["one_core"]:  # on one core nothing spins: these goals are about spare cores
        out["goals_met"] |= {
            "default_vs_no_spin": out["default_vs_no_spin"] >= GOALS["default_vs_no_spin"],
            "round_trip_p50_us": out["round_trip_p50_us"] <= GOALS["round_trip_p50_us"],
            "scaling_two_cores": out.get("scaling_two_cores", 0.0) >= GOALS["scaling_two_cores"],
        }
    return out


def repeated(runs: int, quick: bool, rounds: int | None) -> dict[str, Any]:
    """``runs`` full runs, each in a fresh process, and how far apart their medians are."""
    results = []
    one_core = len(os.sched_getaffinity(0)) == 1  # --one-core: the runs inherit it
    for i in range(runs):
        cmd = [sys.executable, __file__] + (["--quick"] if quick else [])
        cmd += [] if rounds is None else ["--rounds", str(rounds)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        lines = [x for x in done.stdout.splitlines() if x.startswith("BENCH ")]
        if done.returncode != 0 or not lines:
            sys.exit(f"run {i + 1} failed:\n{done.stdout}{done.stderr}")
        result = json.loads(lines[-1].removeprefix("BENCH "))
        results.append(result)
        print(f"run {i + 1}: " + json.dumps({k: result[k] for k in SUMMARY}), flush=True)
    out: dict[str, Any] = {"runs": runs, "one_core": one_core}
    for key in SUMMARY:
        values = [r[key] for r in results]
        out[key] = values
        if key in SPREAD:
            out[f"{key}_median"] = median(values)
            out[f"{key}_spread"] = round(max(values) / min(values), 2)
    out["ordering_errors"] = sum(r["ordering_errors"] for r in results)
    out["goals_met"] = {
        "speedup_vs_asyncio": out["speedup_vs_asyncio_median"] >= GOALS["speedup_vs_asyncio"],
        "speedup_spread": out["speedup_vs_asyncio_spread"] < GOALS["speedup_spread"],
        "ordering": out["ordering_errors"] == 0,
    }
    if not one_core:
        out["goals_met"] |= {
            "default_vs_no_spin": min(out["default_vs_no_spin"]) >= GOALS["default_vs_no_spin"],
            "round_trip_p50_us": max(out["round_trip_p50_us"]) <= GOALS["round_trip_p50_us"],
        }
    return out


SUMMARY = (
    "load_average", "records_per_s_asyncio", "records_per_s_persistent",
    "records_per_s_no_spin", "speedup_vs_asyncio", "speedup_quartiles",
    "default_vs_no_spin", "round_trip_p50_us", "idle_cpu_percent", "cores_used",
    "speedup_per_cpu_second",
)  # fmt: skip
SPREAD = ("speedup_vs_asyncio", "speedup_per_cpu_second", "default_vs_no_spin", "round_trip_p50_us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 15; quick 3)")
    parser.add_argument(
        "--runs", type=int, default=1, help="full runs, each in its own process: medians, spread"
    )
    parser.add_argument("--verbose", action="store_true", help="each round's rates on stderr")
    parser.add_argument(
        "--one-core",
        action="store_true",
        help="run everything (this process, the workers) on one core: both paths get the same",
    )
    args = parser.parse_args()
    VERBOSE = args.verbose
    if args.one_core:  # before any thread or worker starts: they inherit it
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    if args.runs > 1:
        result = repeated(args.runs, args.quick, args.rounds)
    else:
        result = asyncio.run(main(args.quick, args.rounds))
    print("BENCH " + json.dumps(result), flush=True)
    if result["ordering_errors"]:
        sys.exit("records were lost or reordered")
