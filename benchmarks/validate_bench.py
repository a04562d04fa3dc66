"""How fast ``ringctl validate`` is, as a whole process, on a small and a 5,000-kernel file.

Budgets: a small file under 0.35 s for the whole process, a generated
5,000-kernel topology under 2 s. Run from the repository root::

    .venv/bin/python benchmarks/validate_bench.py            # print the figures
    .venv/bin/python benchmarks/validate_bench.py --check    # exit 1 when over budget

Each figure is the best and the median of several runs, because a shared machine adds
noise that only ever makes a run slower.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL_BUDGET_S = 0.35
LARGE_BUDGET_S = 2.0

SMALL = """\
version: 1
name: small
python_path: [".."]
defaults:
  queue: {capacity: 1024, backpressure: block}
kernels:
  source: {entry: "kernels.sources:counter", params: {count: 1000}}
  square: {entry: "kernels.math:square", replicas: 2}
  total: {entry: "kernels.sinks:summing", depends_on: [store]}
  store: {entry: "kernels.sinks:key_value_store"}
queues:
  - {from: source, to: square}
  - {from: square.out, to: total, capacity: 4096}
"""


def large_topology(kernels: int) -> str:
    """A wide, deep file: 50 pipelines of ``kernels / 50`` stages, depends_on and params."""
    lines = [
        "version: 1",
        "name: large",
        "defaults:",
        "  queue: {capacity: 256, backpressure: drop_oldest}",
        "kernels:",
    ]
    width = 50
    for i in range(kernels):
        extra = f", depends_on: [k{i - width}]" if i >= width and i % 7 == 0 else ""
        lines.append(
            f"  k{i}: {{entry: 'pkg.stage{i % 13}:run', replicas: {1 + i % 3}, "
            f"params: {{index: {i}, label: 'stage {i}'}}{extra}}}"
        )
    lines.append("queues:")
    for i in range(width, kernels):
        lines.append(f"  - {{from: k{i - width}, to: k{i}, capacity: {64 + i % 100}}}")
    return "\n".join(lines) + "\n"


def ringctl_command() -> list[str]:
    script = Path(sys.executable).with_name("ringctl")
    if script.exists():
        return [str(script)]
    found = shutil.which("ringctl")
    return [found] if found else [sys.executable, "-m", "ringctl.cli"]


def time_process(args: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (user + system) seconds of each run of ``args``.

    CPU time is what the process itself cost; on a busy machine wall-clock also counts
    the time it waited for a core, so both are printed.
    """
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(args, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return times, cpu


def heavy_modules(path: Path) -> list[str]:
    """Modules validate must never import (numpy is reported too, though not budgeted)."""
    code = (
        "import sys\nfrom ringctl.cli import app\n"
        f"try:\n    app(['validate', {str(path)!r}])\nexcept SystemExit:\n    pass\n"
        "print('HEAVY:' + ','.join(m for m in ('numpy', 'numba', 'cupy', 'ray') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    line = next((x for x in out.splitlines() if x.startswith("HEAVY:")), "HEAVY:?")
    return [m for m in line.removeprefix("HEAVY:").split(",") if m]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs for the small file")
    parser.add_argument("--kernels", type=int, default=5000)
    parser.add_argument("--check", action="store_true", help="exit 1 when over budget")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder) / "small.yaml"
        large = Path(folder) / "large.yaml"
        small.write_text(SMALL)
        large.write_text(large_topology(options.kernels))
        # The large file's entries name `pkg`: validate looks packages up (no import).
        (Path(folder) / "pkg").mkdir()
        (Path(folder) / "pkg" / "__init__.py").write_text("")
        command = ringctl_command()

        small_times, small_cpu = time_process([*command, "validate", str(small)], options.runs)
        large_times, large_cpu = time_process([*command, "validate", str(large)], 5)

        from ringctl.topology import launch_order, load_topology

        start = time.perf_counter()
        topology = load_topology(large)
        loaded = time.perf_counter() - start
        start = time.perf_counter()
        launch_order(topology)
        ordered = time.perf_counter() - start
        heavy = heavy_modules(small)

    size_kib = len(large_topology(options.kernels).encode()) / 1024
    print(f"command: {' '.join(command)} validate FILE   (python {sys.version.split()[0]})")
    print(
        f"small file, whole process:  best {min(small_times):.3f} s, median "
        f"{statistics.median(small_times):.3f} s over {options.runs} runs "
        f"(budget {SMALL_BUDGET_S} s)"
    )
    print(
        f"{options.kernels}-kernel file ({size_kib:.0f} KiB), whole process:  best "
        f"{min(large_times):.3f} s, median {statistics.median(large_times):.3f} s "
        f"(budget {LARGE_BUDGET_S} s)"
    )
    print(
        f"CPU time (user + system), median: small {statistics.median(small_cpu):.3f} s, "
        f"{options.kernels} kernels {statistics.median(large_cpu):.3f} s"
    )
    print(f"  in process: load_topology {loaded:.3f} s, launch_order {ordered:.3f} s")
    print(f"heavy modules imported by validate: {', '.join(heavy) or 'none'}")
    over = (
        statistics.median(small_times) > SMALL_BUDGET_S
        or statistics.median(large_times) > LARGE_BUDGET_S
        or any(m in heavy for m in ("numba", "cupy", "ray"))
    )
    print("within budget" if not over else "OVER BUDGET")
    return 1 if over and options.check else 0


if __name__ == "__main__":
    sys.exit(main())
