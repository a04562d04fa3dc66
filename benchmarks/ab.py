"""A/B: the runtime benchmark on this tree and on another commit, side by side in one run.

    python benchmarks/ab.py HEAD~1                  # wall clock, 3 rounds each, alternating
    python benchmarks/ab.py main --rounds 5
    python benchmarks/ab.py HEAD~1 --instructions   # CPU instructions per message (valgrind)

The machine's speed drifts (other jobs, thermal, a shared host), so the two trees run
alternately, round after round, and the figures compared are the medians: the ratio is
what to read, not the absolute numbers. On a machine too busy for even that,
``--instructions`` counts the CPU instructions each message costs under valgrind's
callgrind (a run of N messages minus a run of one, divided by N, with a fixed hash
seed): the same on a quiet machine and a loaded one. The other commit is checked out
into a temporary git worktree, which is removed afterwards.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = Path("benchmarks") / "runtime_bench.py"

#: (label, regex on runtime_bench's output, higher is better)
FIGURES = (
    ("ping-pong p50 (us)", r"ping-pong round trip:\s+p50\s+([\d.]+)", False),
    ("one echo kernel (K msg/s)", r"one echo kernel, pipelined:\s+([\d.]+)", True),
    ("3-stage per message (K msg/s)", r"3-stage pipeline, per message:\s+([\d.]+)", True),
    ("3-stage bare asyncio (K msg/s)", r"3-stage bare asyncio baseline:\s+([\d.]+)", True),
)


def run_once(tree: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(tree / BENCH)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    ).stdout
    figures = {}
    for label, pattern, _ in FIGURES:
        found = re.search(pattern, out)
        if found:
            figures[label] = float(found.group(1))
    return figures


_PROBE = """
import sys
sys.path.insert(0, {bench_dir!r})
import runtime_bench as rb
from ringctl.engine.local.loop import run
n, what = int(sys.argv[1]), sys.argv[2]
run({{
    "three_stage": lambda: rb.three_stage(n),
    "messages": lambda: rb.three_stage(n, iterate=True),
    "batches": lambda: rb.three_stage(n * 256, batch=256),
    "floor": lambda: rb.bare_three_stage(n),
    "floor_batched": lambda: rb.bare_three_stage_batched(n * 256, 256),
    "ping_pong": lambda: rb.ping_pong(n),
}}[what]())
"""

#: (label, what the probe runs, messages per unit) measured in instructions per message;
#: "batches" moves 256 messages per unit, so its figure is per message as well.
INSTRUCTION_FIGURES = (
    ("ping-pong", "ping_pong", 1),
    ("3-stage per message", "three_stage", 1),
    ("3-stage messages()", "messages", 1),
    ("3-stage batches of 256", "batches", 256),
    ("3-stage bare asyncio floor", "floor", 1),
    ("3-stage floor, batches of 256", "floor_batched", 256),
)


def instructions(tree: Path, what: str, n: int) -> int:
    """Instructions callgrind counts for a whole process that moves ``n`` messages."""
    code = _PROBE.format(bench_dir=str(tree / "benchmarks"))
    err = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, "-c", code, str(n), what],
        cwd=tree, capture_output=True, text=True, check=True,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
    ).stderr  # fmt: skip
    found = re.search(r"Collected : (\d+)", err)
    if found is None:
        raise RuntimeError(f"callgrind gave no count:\n{err[-2000:]}")
    return int(found.group(1))


def per_message(tree: Path, what: str, n: int) -> float:
    # Byte-compile first: otherwise the first of the two runs compiles what is stale (all
    # of a fresh worktree) and that cost lands in the figure per message.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(tree / "ringctl"), str(tree / "benchmarks")],
        cwd=tree, check=True, capture_output=True, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return (instructions(tree, what, n + 1) - instructions(tree, what, 1)) / n


def compare_instructions(rev: str, other: Path, n: int) -> None:
    print(f"{'instructions per message':<32}{'this':>10}{rev:>12}{'this/other':>12}")
    for label, what, unit in INSTRUCTION_FIGURES:
        count = max(1, n // unit)
        a = per_message(REPO, what, count) / unit
        b = per_message(other, what, count) / unit
        print(f"{label:<32}{a:>10.0f}{b:>12.0f}{a / b:>12.3f}   (lower is better)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the commit to compare this tree with (e.g. HEAD~1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count CPU instructions per message under valgrind instead of timing",
    )
    parser.add_argument("--messages", type=int, default=20_000, help="for --instructions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ringctl-ab-") as tmp:
        other = Path(tmp) / "other"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(other), args.rev],
            cwd=REPO, check=True, capture_output=True,
        )  # fmt: skip
        try:
            if args.instructions:
                compare_instructions(args.rev, other, args.messages)
                return
            runs: dict[str, list[dict[str, float]]] = {"this": [], args.rev: []}
            for n in range(args.rounds):
                for name, tree in (("this", REPO), (args.rev, other)):
                    runs[name].append(run_once(tree))
                print(f"round {n + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(other)], cwd=REPO, check=False
            )
    print(f"{'figure':<32}{'this':>10}{args.rev:>12}{'this/other':>12}")
    for label, _, higher_is_better in FIGURES:
        mine = [r[label] for r in runs["this"] if label in r]
        theirs = [r[label] for r in runs[args.rev] if label in r]
        if not mine or not theirs:
            continue
        a, b = statistics.median(mine), statistics.median(theirs)
        note = "higher is better" if higher_is_better else "lower is better"
        print(f"{label:<32}{a:>10.2f}{b:>12.2f}{a / b:>12.3f}   ({note})")


if __name__ == "__main__":
    main()
