"""How long the commands people and scripts run all day take to start, against a baseline.

The baseline is ``python -c "import typer, rich"``: the two libraries every ``ringctl``
command needs, in a fresh process, measured in the same run as the commands so that a
busy or slow machine moves both alike. Each figure is the median of interleaved runs
(baseline, then each command, repeated), and the ratio is command / baseline. Goal:
every ratio at most 2.0. Run from the repository root::

    python benchmarks/startup_bench.py             # print the figures
    python benchmarks/startup_bench.py --check     # exit 1 when a ratio is over the goal
    python benchmarks/startup_bench.py --runs 30   # more runs, steadier medians

``ringctl ps`` runs with an empty private state directory (no topology running), so it
measures the command's own start-up, not a supervisor's answer. ``ringctl validate``
starts from the compiled schema in its cache (``ringctl/topology/compiled.py``), which
the warm-up run fills, as the first run after an install or upgrade does.

Two more rows, not held to the goal, are references: ``validate`` with an empty cache
each time (what that first run costs: pydantic and the models, then the cache written),
and the baseline plus importing pydantic and building one model, the least that
validating with pydantic models costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 2.0
REFERENCE = "(reference: + one pydantic model)"
COLD = "(reference: validate, empty cache)"
PYDANTIC_FLOOR = """\
import typer, rich
from pydantic import BaseModel, Field
class Probe(BaseModel):
    x: int = Field(1, ge=0)
Probe(x=2)
"""
ROOT = Path(__file__).resolve().parents[1]


def _time(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr.decode()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command (median)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 above {GOAL}x")
    args = parser.parse_args()

    python = sys.executable
    ringctl = [python, "-m", "ringctl.cli"]
    cases = {
        "baseline: import typer, rich": [python, "-c", "import typer, rich"],
        "ringctl --help": [*ringctl, "--help"],
        "ringctl validate FILE": [*ringctl, "validate", "topologies/quickstart.yaml"],
        "ringctl ps": [*ringctl, "ps"],
        COLD: [*ringctl, "validate", "topologies/quickstart.yaml"],
        REFERENCE: [python, "-c", PYDANTIC_FLOOR],
    }
    with tempfile.TemporaryDirectory() as state, tempfile.TemporaryDirectory() as cache:
        env = {
            **os.environ,
            "RINGCTL_STATE_DIR": state,
            "RINGCTL_CACHE_DIR": cache,
            "NO_COLOR": "1",
        }
        # As installed, modules are read from bytecode: let the warm-up run write it
        # (compiling ringctl's sources on every run would be measured otherwise).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for argv in cases.values():  # warm the file cache and the bytecode once
            _time(argv, env)
        for run in range(args.runs):
            for name, argv in cases.items():
                if name == COLD:
                    cold = {**env, "RINGCTL_CACHE_DIR": os.path.join(cache, f"cold-{run}")}
                    times[name].append(_time(argv, cold))
                else:
                    times[name].append(_time(argv, env))
    base = statistics.median(times["baseline: import typer, rich"])
    print(f"{'command':<36} {'median':>9} {'best':>9} {'ratio':>7}")
    over = []
    for name, samples in times.items():
        median = statistics.median(samples)
        ratio = median / base
        print(f"{name:<36} {median * 1e3:7.1f}ms {min(samples) * 1e3:7.1f}ms {ratio:6.2f}x")
        if ratio > GOAL and name not in (REFERENCE, COLD):
            over.append(name)
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, goal <= {GOAL}x the baseline")
    if args.check and over:
        print(f"over the goal: {', '.join(over)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
