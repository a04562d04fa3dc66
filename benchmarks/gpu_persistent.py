"""GPU persistent kernels, measured phase by phase (each phase its own process).

    python benchmarks/gpu_persistent.py PHASE [--backend cuda|twin] [--json FILE]

Phases: ``env`` (device facts: canMapHostMemory, compute capability, driver), ``roundtrip``
(one record host -> persistent kernel -> host, p50/p99), ``stream`` (records streamed
with sequence numbers, ordering errors counted), ``baseline`` (a CuPy launch plus
synchronize per message, the cost a persistent kernel avoids), ``blocking`` (what waits
while the kernel runs: an allocation, a second module, a free, a device synchronize),
``forcestop`` (a wedged kernel killed with its worker, then relaunched on its rings), and
``summary`` (the goals checked against the phases' JSON files in a folder).
``--backend twin`` runs every phase on the CPU twin of the same loop (the dry run of the
device run; ``baseline`` needs CUDA and says so). ``benchmarks/device_run.sh`` runs them all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from native_kernels import MAGIC, RECORD, echo  # noqa: E402

from ringctl.engine.local.persistent.arena import Arena, ArenaBuilder  # noqa: E402
from ringctl.engine.local.persistent.layout import ACK, CMD, IN, Command  # noqa: E402
from ringctl.engine.local.persistent.native.runner import (  # noqa: E402
    NativeLoop,
    native_loop,
    release,
)
from ringctl.engine.local.persistent.ringops import load, ring_pop, ring_push, store  # noqa: E402
from ringctl.kernel.persistent import LoopOptions  # noqa: E402

#: The goals on the device (round trip in microseconds; speed-up over launch + sync).
GOALS = {"p50_us": 5.0, "p99_us": 20.0, "speedup": 3.0}
HOT = LoopOptions(spin_us=1 << 50, nap_us=50, batch=256)  # never naps while measured


def _wait(cond: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0002)
    return True


@contextmanager
def running(backend: str, capacity: int) -> Iterator[tuple[Arena, NativeLoop]]:
    """An ACTIVE ``echo`` loop in this process on ``backend``; TERM and join on the way out."""
    b = ArenaBuilder()
    b.control("k")
    b.array("s", 1)
    b.ring("in", RECORD, capacity)
    b.ring("out", RECORD, capacity)
    arena = b.create(group="bench")
    backend_name = "cuda" if backend == "cuda" else "cpu"
    loop = native_loop(
        arena, backend_name, echo, arena.controls["k"], arena.rings["in"],
        arena.rings["out"], arena.arrays["s"], HOT,
    )  # fmt: skip
    t0 = time.perf_counter()
    loop.compile()
    loop.compile_s = time.perf_counter() - t0  # type: ignore[attr-defined]
    loop.start()
    ctrl = arena.controls["k"]
    if not _wait(lambda: load(ctrl, ACK) == int(Command.IDLE)):
        raise RuntimeError("the loop did not start")
    store(ctrl, CMD, int(Command.ACTIVE))
    if not _wait(lambda: load(ctrl, ACK) == int(Command.ACTIVE)):
        raise RuntimeError("the loop did not acknowledge ACTIVE")
    try:
        yield arena, loop
    finally:
        store(ctrl, CMD, int(Command.TERM))
        if loop.join(10):
            release(arena)
            arena.close()


def percentiles(us: np.ndarray) -> dict[str, float]:
    return {
        "p50_us": round(float(np.percentile(us, 50)), 3),
        "p99_us": round(float(np.percentile(us, 99)), 3),
        "max_us": round(float(us.max()), 3),
        "n": int(us.size),
    }


# -- phases ------------------------------------------------------------------------------


def phase_env(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    if backend == "twin":
        from ringctl.engine.local.persistent.native.twin import compiler

        cxx = compiler()
        version = (
            subprocess.run([cxx, "--version"], capture_output=True, text=True) if cxx else None
        )
        return {"compiler": cxx, "version": version.stdout.splitlines()[0] if version else None}
    from ringctl.engine.local.persistent.native.cuda import cupy  # sets eager module loading

    rt = cupy.cuda.runtime
    props = rt.getDeviceProperties(0)
    pick = ("canMapHostMemory", "unifiedAddressing", "concurrentKernels", "multiProcessorCount")
    return {
        "cupy": cupy.__version__,
        "available": bool(cupy.cuda.is_available()),
        "driver": rt.driverGetVersion(),
        "runtime": rt.runtimeGetVersion(),
        "nvrtc": list(cupy.cuda.nvrtc.getVersion()),
        "name": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        "compute_capability": f"{props['major']}.{props['minor']}",
        **{k: int(props[k]) for k in pick if k in props},
    }


def phase_roundtrip(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    n = args.records or 200_000
    one = np.zeros(1, RECORD)
    got = np.zeros(1, RECORD)
    lat = np.empty(n, np.float64)
    errors = 0
    with running(backend, 1024) as (arena, loop):
        inbox, outbox = arena.rings["in"], arena.rings["out"]
        clock = time.perf_counter_ns
        for i in range(-1000, n):  # 1000 warm-up round trips first
            one["seq"] = i
            t0 = clock()
            ring_push(inbox.header, inbox.records, one)
            while ring_pop(outbox.header, outbox.records, got) == 0:
                pass
            t1 = clock()
            if i >= 0:
                lat[i] = t1 - t0
                errors += int(got["seq"][0] != i)
        compile_s = loop.compile_s  # type: ignore[attr-defined]
    return {**percentiles(lat / 1000.0), "ordering_errors": errors, "compile_s": compile_s}


def phase_stream(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    n = args.records or 1_000_000
    chunk = 4096
    src = np.zeros(n, RECORD)
    src["seq"] = np.arange(n)
    src["value"] = np.arange(n, dtype=np.float64)
    dst = np.zeros(n, RECORD)
    with running(backend, 1 << 16) as (arena, _):
        inbox, outbox = arena.rings["in"], arena.rings["out"]
        pushed = popped = 0
        t0 = time.perf_counter()
        deadline = time.monotonic() + 120
        while popped < n:
            if pushed < n:
                pushed += ring_push(inbox.header, inbox.records, src[pushed : pushed + chunk])
            popped += ring_pop(outbox.header, outbox.records, dst[popped:])
            if time.monotonic() > deadline:
                break
        seconds = time.perf_counter() - t0
        handled = int(load(arena.controls["k"], IN))
    order_errors = int(np.count_nonzero(dst["seq"][:popped] != np.arange(popped)))
    value_errors = int(np.count_nonzero(dst["value"][:popped] != 2.0 * np.arange(popped)))
    return {
        "records": n,
        "received": popped,
        "handled": handled,
        "ordering_errors": order_errors,
        "value_errors": value_errors,
        "seconds": round(seconds, 3),
        "records_per_s": round(popped / seconds),
    }


_ONE = r"""
extern "C" __global__ void one(double* v) { v[0] = v[0] * 2.0 + 1.0; }
"""


def phase_baseline(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    if backend != "cuda":
        return {"skipped": "a kernel launch per message needs CUDA"}
    from ringctl.engine.local.persistent.native.cuda import cupy

    n = args.records or 20_000
    stream = cupy.cuda.Stream(non_blocking=True)
    fn = cupy.RawModule(code=_ONE).get_function("one")
    v = cupy.zeros(1, cupy.float64)
    lat = np.empty(n, np.float64)
    clock = time.perf_counter_ns
    for i in range(-500, n):
        t0 = clock()
        fn((1,), (1,), (v,), stream=stream)
        stream.synchronize()
        if i >= 0:
            lat[i] = clock() - t0
    return percentiles(lat / 1000.0)


def _probes(backend: str) -> dict[str, Callable[[], object]]:
    if backend == "twin":
        from ringctl.engine.local.persistent.native.twin import load_library

        return {
            "allocation": lambda: np.zeros(1 << 20),
            "second_module": lambda: load_library('extern "C" void ringctl_loop() {}\n'),
        }
    from ringctl.engine.local.persistent.native.cuda import cupy

    held: list[Any] = []

    def second_module() -> None:
        s = cupy.cuda.Stream(non_blocking=True)
        cupy.RawModule(code=_ONE).get_function("one")((1,), (1,), (cupy.zeros(1),), stream=s)
        s.synchronize()

    def free() -> None:
        held.append(cupy.empty(1 << 22, cupy.uint8))
        held.clear()
        cupy.get_default_memory_pool().free_all_blocks()

    return {
        "allocation": lambda: held.append(cupy.empty(1 << 20, cupy.float64)),
        "second_module": second_module,
        "free": free,
        "device_synchronize": lambda: cupy.cuda.Device().synchronize(),
    }


def phase_blocking(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """Each probe on a thread while the kernel runs: done in time, or only once it ended."""
    wait_s = 2.0
    out: dict[str, Any] = {}
    for name, probe in _probes(backend).items():
        with running(backend, 64) as (arena, _):
            done = threading.Event()
            error: list[str] = []

            def run(
                probe: Callable[[], object] = probe,
                done: threading.Event = done,
                error: list[str] = error,
            ) -> None:
                try:
                    probe()
                except Exception as exc:  # reported, not raised: the next probe still runs
                    error.append(f"{type(exc).__name__}: {exc}")
                done.set()

            t0 = time.perf_counter()
            threading.Thread(target=run, daemon=True).start()
            finished = done.wait(wait_s)
            took = time.perf_counter() - t0
            ctrl = arena.controls["k"]
            store(ctrl, CMD, int(Command.TERM))  # leaving `running` waits for the loop
        after = done.wait(10.0)
        out[name] = {
            "seconds": round(took, 6),
            "blocked": not finished,
            "finished_after_kernel_ended": (not finished) and after,
            **({"error": error[0]} if error else {}),
        }
        print(f"  {name}: {out[name]}", flush=True)
    return out


def phase_forcestop(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(_forcestop("cuda" if backend == "cuda" else "cpu"))


async def _forcestop(backend: str) -> dict[str, Any]:
    from ringctl.engine.local.persistent.host import PersistentGroup

    opts = LoopOptions(spin_us=60, nap_us=20, batch=64)
    g = PersistentGroup("bench-force", sys_path=[str(HERE)], stall_after=0.3)
    g.add("stuck", "native_kernels:wedge", capacity=64, options=opts, backend=backend)
    g.add("fine", "native_kernels:echo", capacity=64, options=opts, backend=backend)
    result: dict[str, Any] = {}

    def push(kid: str, seqs: list[int], value: float = 1.0) -> None:
        recs = np.zeros(len(seqs), RECORD)
        recs["seq"], recs["value"] = seqs, value
        ring = g.inbox(kid)
        assert ring_push(ring.header, ring.records, recs) == len(recs)

    async def pop(kid: str, n: int) -> list[int]:
        ring = g.outbox(kid)
        assert ring is not None
        buf = np.zeros(n, RECORD)
        have = 0
        deadline = time.monotonic() + 30
        while have < n and time.monotonic() < deadline:
            have += ring_pop(ring.header, ring.records, buf[have:])
            await asyncio.sleep(0.0005)
        return [int(s) for s in buf["seq"][:have]]

    try:
        t0 = time.perf_counter()
        for kid in ("stuck", "fine"):
            await g.launch(kid)
            await g.activate(kid)
        result["launch_s"] = round(time.perf_counter() - t0, 3)
        push("stuck", [0, 1, 2])
        result["before"] = await pop("stuck", 3)
        push("stuck", [3], MAGIC)
        push("stuck", [4, 5, 6, 7])
        await asyncio.sleep(0.5)
        t0 = time.perf_counter()
        report = await g.terminate("stuck", timeout=0.5)
        result["terminate_s"] = round(time.perf_counter() - t0, 3)
        result["forced"] = report.forced
        result["left_in_inbox"] = report.left_in_inbox
        push("fine", [10, 11])
        result["fine_after"] = await pop("fine", 2)
        t0 = time.perf_counter()
        await g.relaunch("stuck")
        await g.activate("stuck")
        result["relaunch_s"] = round(time.perf_counter() - t0, 3)
        result["after"] = await pop("stuck", 4)
        st = g.stats("stuck")
        result["lost"] = st.lost
        result["accounting_ok"] = st.accepted == st.records_in + st.lost + st.inbox_depth
    finally:
        await g.close(timeout=2.0)
    result["ok"] = (
        result.get("forced") is True
        and result.get("left_in_inbox") == 5
        and result.get("fine_after") == [10, 11]
        and result.get("after") == [4, 5, 6, 7]
        and result.get("lost") == 1
        and result.get("accounting_ok") is True
    )
    return result


def phase_summary(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    """The goals, checked against the JSON files the other phases wrote in ``--dir``."""
    folder = Path(args.dir)

    def read(name: str) -> dict[str, Any]:
        path = folder / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else {}

    rt, st, base, fs = read("roundtrip"), read("stream"), read("baseline"), read("forcestop")
    device = backend == "cuda"  # the latency goals are the device's; the twin reports them
    checks: dict[str, bool | None] = {
        "roundtrip_p50": rt.get("p50_us", 1e9) <= GOALS["p50_us"] if device else None,
        "roundtrip_p99": rt.get("p99_us", 1e9) <= GOALS["p99_us"] if device else None,
        "zero_ordering_errors": bool(st)
        and st.get("ordering_errors") == 0
        and st.get("value_errors") == 0
        and st.get("received") == st.get("records")
        and rt.get("ordering_errors") == 0,
        "forcestop_recovers": bool(fs.get("ok")),
        "speedup_vs_launch": None,
    }
    if "p50_us" in base and "p50_us" in rt:
        speedup = base["p50_us"] / rt["p50_us"]
        checks["speedup_vs_launch"] = speedup >= GOALS["speedup"]
    return {
        "goals": GOALS,
        "roundtrip": {k: rt.get(k) for k in ("p50_us", "p99_us")},
        "baseline": {k: base.get(k) for k in ("p50_us", "p99_us")},
        "checks": checks,
        "speedup": round(base["p50_us"] / rt["p50_us"], 2) if "p50_us" in base and rt else None,
        "passed": all(v is not False for v in checks.values()),
    }


PHASES: dict[str, Callable[[str, argparse.Namespace], dict[str, Any]]] = {
    "env": phase_env,
    "roundtrip": phase_roundtrip,
    "stream": phase_stream,
    "baseline": phase_baseline,
    "blocking": phase_blocking,
    "forcestop": phase_forcestop,
    "summary": phase_summary,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=sorted(PHASES))
    parser.add_argument("--backend", choices=("cuda", "twin"), default="cuda")
    parser.add_argument("--records", type=int, default=0, help="records (0: the phase's own)")
    parser.add_argument("--json", help="write the phase's result here")
    parser.add_argument("--dir", default=".", help="summary: where the phases' JSON files are")
    args = parser.parse_args()
    result = {
        "phase": args.phase,
        "backend": args.backend,
        **PHASES[args.phase](args.backend, args),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.phase == "summary":
        return 0 if result["passed"] else 1
    if args.phase == "forcestop":
        return 0 if result["ok"] else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
