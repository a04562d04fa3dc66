"""Control-plane benchmarks: prints figures, asserts nothing (run on demand, not in CI).

    python benchmarks/control_bench.py            # full run (about a minute on 2 cores)
    python benchmarks/control_bench.py --quick    # tiny sizes, same code paths

Figures (targets in brackets):

- ``ringctl up -d`` of a small topology, wall time until every kernel is ACTIVE [< 1 s];
- ``pause`` (and ``resume``) round trip on a 100-kernel topology, over the socket [< 100 ms];
- a 1,000-kernel topology up and down, in-process ``Supervisor`` and via the CLI [< 5 s];
- a topology of 5,000 idle kernels: the supervisor's CPU while nothing moves [< 10 % of
  a core], and ``ringctl ps NAME`` wall time [< 2 s];
- the control work's cost on kernel throughput: a pipeline's messages/s with nobody
  watching, then with a ``watch`` client at 20 Hz and ``ps`` polled every 50 ms [< 3 %];
- ``ps NAME`` (a ``status`` round trip over the socket) while a kernel blocks the kernels'
  event loop for 3 s, against the same request with the loop free [< 200 ms];
- what the control thread and the loop watchdog cost the kernels when idle: the 3-stage
  pipeline's messages/s with them and without them, in the same process [< 1 %];
  and the same cost from the inside (what a status document costs the loop), which
  other load on a shared machine cannot blur.

Each run uses its own ``RINGCTL_STATE_DIR`` and downs whatever it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
sys.path[:0] = [str(REPO), str(TESTS)]

from ringctl.control.client import ControlClient  # noqa: E402
from ringctl.control.paths import StateDir  # noqa: E402
from ringctl.engine.local.loop import run  # noqa: E402
from ringctl.orchestrator.loading import plan_from_file  # noqa: E402
from ringctl.orchestrator.supervisor import Supervisor  # noqa: E402

HEADER = f'version: 1\nname: {{name}}\npython_path: ["{REPO}", "{TESTS}"]\n'


def chains(name: str, n_chains: int, rate: float) -> str:
    """``n_chains`` independent source -> relay -> relay -> sink chains (4 kernels each)."""
    lines = [HEADER.format(name=name), "kernels:"]
    queues = ["queues:"]
    for c in range(n_chains):
        lines += [
            f"  s{c}: {{entry: 'orchestrator.testkernels:ticker', params: {{rate: {rate}}}}}",
            f"  a{c}: {{entry: 'orchestrator.testkernels:relay'}}",
            f"  b{c}: {{entry: 'orchestrator.testkernels:relay'}}",
            f"  t{c}: {{entry: 'orchestrator.testkernels:tally'}}",
        ]
        queues += [
            f"  - {{from: s{c}, to: a{c}}}",
            f"  - {{from: a{c}, to: b{c}}}",
            f"  - {{from: b{c}, to: t{c}}}",
        ]
    return "\n".join(lines + queues) + "\n"


PIPELINE = (
    HEADER.format(name="pipe")
    + """kernels:
  source: {entry: 'kernels.sources:counter', params: {count: null, batch: 1}}
  relay: {entry: 'orchestrator.testkernels:relay'}
  sink: {entry: 'kernels.sinks:summing'}
queues:
  - {from: source, to: relay, capacity: 1024}
  - {from: relay, to: sink, capacity: 1024}
"""
)


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.state = Path(tempfile.mkdtemp(prefix="rcb-", dir="/tmp"))
        self.env = {**os.environ, "RINGCTL_STATE_DIR": str(self.state)}

    def topology(self, name: str, text: str) -> Path:
        path = self.work / f"{name}.yaml"
        path.write_text(text)
        return path

    def ringctl(self, *args: str | Path) -> tuple[float, subprocess.CompletedProcess[str]]:
        t0 = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "ringctl.cli", *map(str, args)],
            capture_output=True, text=True, env=self.env, cwd=REPO, timeout=300,
        )  # fmt: skip
        elapsed = time.perf_counter() - t0
        if result.returncode != 0:
            raise SystemExit(f"ringctl {' '.join(map(str, args))} failed:\n{result.stderr}")
        return elapsed, result

    def client(self, name: str) -> ControlClient:
        return ControlClient(StateDir(self.state).files(name), timeout=60)

    def cleanup(self) -> None:
        for pid_file in self.state.glob("*.pid"):
            with contextlib.suppress(SystemExit, subprocess.SubprocessError):
                self.ringctl("down", pid_file.stem, "--timeout", "5")


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.1f} ms"


def bench_up_detached(b: Bench, runs: int) -> None:
    path = b.topology("small", chains("small", 1, 1000))
    times = []
    for _ in range(runs):
        elapsed, _ = b.ringctl("up", "-d", path)
        status = b.client("small").request("status")
        assert all(k["state"] == "ACTIVE" for k in status["kernels"]), status
        times.append(elapsed)
        b.ringctl("down", "small")
    print(
        f"up -d, 4 kernels, until all ACTIVE:  median {fmt_ms(statistics.median(times))}  "
        f"min {fmt_ms(min(times))}  ({runs} runs)   [target < 1000 ms]"
    )
    python_start = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import ringctl.cli"], check=True)
        python_start.append(time.perf_counter() - t0)
    print(f"  (of which one 'python -c import ringctl.cli': {fmt_ms(min(python_start))})")


def bench_pause(b: Bench, kernels: int, rounds: int) -> None:
    name = f"k{kernels}"
    path = b.topology(name, chains(name, kernels // 4, 50))
    b.ringctl("up", "-d", path)
    client = b.client(name)
    pauses, resumes = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        reply = client.request("pause")
        pauses.append(time.perf_counter() - t0)
        assert len(reply["paused"]) == kernels, reply
        t0 = time.perf_counter()
        client.request("resume")
        resumes.append(time.perf_counter() - t0)
    cli, _ = b.ringctl("pause", name)
    b.ringctl("down", name)
    print(
        f"pause of {kernels} kernels (socket round trip):  "
        f"median {fmt_ms(statistics.median(pauses))}"
        f"  p90 {fmt_ms(sorted(pauses)[int(0.9 * len(pauses))])}   [target < 100 ms]"
    )
    print(f"resume of {kernels} kernels:  median {fmt_ms(statistics.median(resumes))}")
    print(f"  ('ringctl pause' command, wall incl. Python start-up: {fmt_ms(cli)})")


def bench_many(b: Bench, kernels: int) -> None:
    name = f"k{kernels}"
    path = b.topology(name, chains(name, kernels // 4, 20))

    async def in_process() -> tuple[float, float, float]:
        t0 = time.perf_counter()
        plan = plan_from_file(path)
        t1 = time.perf_counter()
        sup = Supervisor(plan)
        await sup.up()
        t2 = time.perf_counter()
        report = await sup.down(timeout=10)
        t3 = time.perf_counter()
        assert report.graceful, report
        await sup.runtime.close()
        return t1 - t0, t2 - t1, t3 - t2

    load, up, down = run(in_process())
    print(
        f"{kernels} kernels in-process: load+import {fmt_ms(load)}, up {fmt_ms(up)}, "
        f"down {fmt_ms(down)}; up+down {fmt_ms(up + down)}   [target < 5000 ms]"
    )
    t_up, _ = b.ringctl("up", "-d", path)
    t_down, _ = b.ringctl("down", name)
    print(
        f"{kernels} kernels via CLI: up -d {fmt_ms(t_up)}, down {fmt_ms(t_down)}; "
        f"total {fmt_ms(t_up + t_down)}   [target < 5000 ms]"
    )


def idle(name: str, kernels: int) -> str:
    """``kernels`` relays in pairs ``a -> b``, nothing feeding the first: a topology that
    runs and waits (each ``a`` is a source that never finishes) and moves nothing."""
    lines, queues = [HEADER.format(name=name), "kernels:"], ["queues:"]
    for i in range(kernels // 2):
        lines += [f"  a{i}: {{entry: 'orchestrator.testkernels:relay'}}",
                  f"  b{i}: {{entry: 'orchestrator.testkernels:relay'}}"]  # fmt: skip
        queues.append(f"  - {{from: a{i}, to: b{i}}}")
    return "\n".join(lines + queues) + "\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_idle_many(b: Bench, kernels: int, window: float) -> None:
    name = f"idle{kernels}"
    path = b.topology(name, idle(name, kernels))
    b.ringctl("up", "-d", path)
    pid = int(b.client(name).request("ping")["pid"])
    time.sleep(1.0)  # past the launch
    c0, t0 = cpu_seconds(pid), time.perf_counter()
    time.sleep(window)
    share = (cpu_seconds(pid) - c0) / (time.perf_counter() - t0)
    ps = [b.ringctl("ps", name)[0] for _ in range(3)]
    b.ringctl("down", name)
    print(
        f"{kernels} idle kernels: supervisor CPU {share:6.1%} of a core over {window:g} s"
        f"   [target < 10 %];  ps NAME median {fmt_ms(statistics.median(ps))}"
        "   [target < 2000 ms]"
    )


def sink_in(client: ControlClient) -> int:
    status = client.request("status")
    return int(next(k for k in status["kernels"] if k["id"] == "sink")["messages_in"])


def bench_control_cost(b: Bench, window: float, trials: int) -> None:
    path = b.topology("pipe", PIPELINE)
    b.ringctl("up", "-d", path)
    client = b.client("pipe")
    time.sleep(0.5)  # warm-up: let the pipeline reach its steady state

    def measure(load: bool) -> float:
        stop = threading.Event()
        workers: list[threading.Thread] = []
        if load:

            def watch() -> None:
                for _ in b.client("pipe").stream("watch", interval=0.05):
                    if stop.is_set():
                        return

            def poll() -> None:
                c = b.client("pipe")
                while not stop.is_set():
                    c.request("status")
                    time.sleep(0.05)

            workers = [threading.Thread(target=f, daemon=True) for f in (watch, poll)]
            for w in workers:
                w.start()
            time.sleep(0.2)
        n0, t0 = sink_in(client), time.perf_counter()
        time.sleep(window)
        n1, t1 = sink_in(client), time.perf_counter()
        stop.set()
        for w in workers:
            w.join(timeout=5)
        return (n1 - n0) / (t1 - t0)

    quiet, loaded = [], []
    for _ in range(trials):  # interleaved, so drift on a shared machine hits both alike
        quiet.append(measure(False))
        loaded.append(measure(True))
    b.ringctl("down", "pipe")
    q, ld = statistics.median(quiet), statistics.median(loaded)
    print(
        f"pipeline throughput: nobody watching {q:,.0f} msg/s; with watch@20Hz + ps@20Hz "
        f"{ld:,.0f} msg/s; cost {100 * (q - ld) / q:+.1f} %   [target < 3 %]"
    )
    print(f"  trials quiet:  {', '.join(f'{x:,.0f}' for x in quiet)}")
    print(f"  trials loaded: {', '.join(f'{x:,.0f}' for x in loaded)}")


def bench_status_cost(b: Bench, rounds: int) -> None:
    """The same question measured from the inside, which load on a shared machine cannot
    blur: what one status document costs the supervisor's loop, and what share of the
    loop 20 watch frames + 20 ``ps`` a second take (documents are cached for 50 ms)."""
    from ringctl.control import protocol
    from ringctl.orchestrator.supervisor import STATUS_MAX_AGE_S

    path = b.topology("pipe", PIPELINE)

    async def measure() -> tuple[float, float, int]:
        sup = Supervisor(plan_from_file(path))
        await sup.up()
        await asyncio.sleep(0.5)  # real counters and latency samples
        t0 = time.perf_counter()
        for _ in range(rounds):
            doc = sup.status(fresh=True)
        t1 = time.perf_counter()
        for _ in range(rounds):
            line = protocol.encode({"v": 1, "event": "status", "data": doc})
        t2 = time.perf_counter()
        await sup.down(timeout=5)
        await sup.runtime.close()
        return (t1 - t0) / rounds, (t2 - t1) / rounds, len(line)

    build, encode, size = run(measure())
    rebuilds = min(40.0, 1 / STATUS_MAX_AGE_S) + 2  # capped by the cache, plus 2 Hz sampling
    share = rebuilds * build + 40 * encode
    print(
        f"status document, 3-kernel pipeline: build {build * 1e6:.0f} us, encode "
        f"{encode * 1e6:.0f} us ({size} bytes); watch@20Hz + ps@20Hz take about "
        f"{100 * share:.2f} % of the loop   [target < 3 %]"
    )


def hog_topology(seconds: float, trigger: Path) -> str:
    return HEADER.format(name="hog") + (
        "kernels:\n"
        f"  hog: {{entry: 'orchestrator.testkernels:hog', "
        f"params: {{trigger: '{trigger}', seconds: {seconds}}}}}\n"
    )


def bench_ps_while_blocked(b: Bench, samples: int) -> None:
    trigger = b.work / "trigger"
    path = b.topology("hog", hog_topology(3.0, trigger))
    b.ringctl("up", "-d", path)
    client = b.client("hog")
    client.timeout = 10.0

    def round_trips(n: int) -> list[float]:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            client.request("status")
            times.append(time.perf_counter() - t0)
        return times

    free = round_trips(samples)
    trigger.touch()
    while trigger.exists():
        time.sleep(0.005)
    time.sleep(0.6)  # past the watchdog's threshold: the loop is now known to be blocked
    blocked = []
    t_end = time.perf_counter() + 1.5  # well inside the 3 s block
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        status = client.request("status")
        blocked.append(time.perf_counter() - t0)
        assert status["loop"]["status"] == "blocked", status["loop"]
    # The hog never waits for messages: its drain runs out the timeout (exit 1), as planned.
    with contextlib.suppress(SystemExit):
        b.ringctl("down", "hog", "--timeout", "0.2")
    print(
        f"ps NAME (status round trip) while a kernel blocks the loop for 3 s: "
        f"median {fmt_ms(statistics.median(blocked))}  max {fmt_ms(max(blocked))} "
        f"({len(blocked)} requests); loop free: median {fmt_ms(statistics.median(free))}"
        "   [target < 200 ms]"
    )


def _other_threads_cpu_ns() -> int:
    """CPU time (ns, from schedstat) of every thread of this process but the main one."""
    main = threading.main_thread().native_id
    total = 0
    for task in Path("/proc/self/task").iterdir():
        if int(task.name) == main:
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


def bench_control_thread_cost(b: Bench, window: float, trials: int) -> None:
    """What the control server's thread, the loop watchdog and the status publisher cost
    the kernels, nobody connected: the 3-stage pipeline in this process with them and
    without them (ABBA, read per pair), and, since drift on a shared machine moves that
    figure by tens of percent, the same cost measured from the inside: the CPU time the
    other threads used (which they take from the kernels' thread through the GIL) plus
    what the heartbeat and the publisher do on the kernels' loop."""
    from ringctl.control.server import ControlServer
    from ringctl.orchestrator.service import PUBLISH_EVERY_S, SupervisorTarget
    from ringctl.orchestrator.watchdog import LoopWatchdog

    path = b.topology("pipe", PIPELINE)
    inside: list[tuple[float, float, float]] = []

    async def measure(control: bool) -> float:
        sup = Supervisor(plan_from_file(path))
        loop = asyncio.get_running_loop()
        server = None
        tasks: list[asyncio.Task[None]] = []
        watchdog = LoopWatchdog(loop)
        if control:
            server = ControlServer(SupervisorTarget(sup, watchdog), StateDir(b.state).files("pipe"))
            await server.start()
            sup.on_status(server.publish)

            async def publish() -> None:
                while True:
                    sup.status()
                    await asyncio.sleep(PUBLISH_EVERY_S)

            tasks = [loop.create_task(watchdog.heartbeat()), loop.create_task(publish())]
        await sup.up()
        await asyncio.sleep(0.3)  # steady state
        cpu0 = _other_threads_cpu_ns()
        n0, t0 = received(sup), time.perf_counter()
        await asyncio.sleep(window)
        n1, t1 = received(sup), time.perf_counter()
        cpu1 = _other_threads_cpu_ns()
        if control:
            t2 = time.perf_counter()
            for _ in range(50):
                sup.status(fresh=True)
            build = (time.perf_counter() - t2) / 50
            beats = window / watchdog.period
            t3 = time.perf_counter()
            for _ in range(1000):  # what one heartbeat does besides sleeping
                with threading.Lock():
                    time.monotonic()
            beat = (time.perf_counter() - t3) / 1000
            on_loop = (build * window / PUBLISH_EVERY_S + beat * beats) / (t1 - t0)
            inside.append(((cpu1 - cpu0) / 1e9 / (t1 - t0), on_loop, build))
        await sup.down(timeout=5)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if server is not None:
            await server.close()
        await sup.runtime.close()
        return (n1 - n0) / (t1 - t0)

    def received(sup: Supervisor) -> int:
        kernels = sup.status(fresh=True)["kernels"]
        return int(next(k for k in kernels if k["id"] == "sink")["messages_in"])

    without, with_, ratios = [], [], []
    for i in range(trials):
        # ABBA order, and the cost read per pair: drift hits both sides of a pair alike.
        order = (False, True) if i % 2 == 0 else (True, False)
        pair = {control: run(measure(control)) for control in order}
        without.append(pair[False])
        with_.append(pair[True])
        ratios.append(pair[True] / pair[False])
    w0, w1 = statistics.median(without), statistics.median(with_)
    cost = 100 * (1 - statistics.median(ratios))
    threads = statistics.median(x[0] for x in inside)
    on_loop = statistics.median(x[1] for x in inside)
    build = statistics.median(x[2] for x in inside)
    print(
        f"3-stage pipeline: without control thread + watchdog {w0:,.0f} msg/s, with them "
        f"{w1:,.0f} msg/s (medians); cost, median of {trials} paired trials {cost:+.1f} %"
    )
    print(
        f"  from the inside: other threads' CPU {100 * threads:.3f} % of the time, work on "
        f"the kernels' loop {100 * on_loop:.3f} % (status build {build * 1e6:.0f} us, "
        f"every {PUBLISH_EVERY_S:g} s); together {100 * (threads + on_loop):.2f} %"
        "   [target < 1 %]"
    )
    print(f"  trials without: {', '.join(f'{x:,.0f}' for x in without)}")
    print(f"  trials with:    {', '.join(f'{x:,.0f}' for x in with_)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, same code paths")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated: up,pause,many,idle,cost,status,blocked,thread",
    )
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))

    def wanted(name: str) -> bool:
        return not only or name in only

    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(Path(tmp))
        try:
            print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, state dir {b.state}")
            q = args.quick
            if wanted("up"):
                bench_up_detached(b, 2 if q else 7)
            if wanted("pause"):
                bench_pause(b, 100, 5 if q else 30)
            if wanted("many"):
                bench_many(b, 100 if q else 1000)
            if wanted("idle"):
                bench_idle_many(b, 200 if q else 5000, 1.0 if q else 5.0)
            if wanted("cost"):
                bench_control_cost(b, 0.5 if q else 2.0, 1 if q else 5)
            if wanted("status"):
                bench_status_cost(b, 20 if q else 500)
            if wanted("blocked"):
                bench_ps_while_blocked(b, 5 if q else 30)
            if wanted("thread"):
                bench_control_thread_cost(b, 0.5 if q else 2.0, 1 if q else 7)
        finally:
            b.cleanup()
            for leftover in b.state.iterdir():
                leftover.unlink()
            b.state.rmdir()


if __name__ == "__main__":
    main()
