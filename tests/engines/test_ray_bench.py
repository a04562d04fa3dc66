"""The Ray benchmark's quick form: every int through ringctl's Ray hops arrives once and
in order (several pushes in flight per edge), against its plain-actor baselines. It
fails on a fault, never on a ratio, which a busy machine cannot promise."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.engines.conftest import REPO

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def test_the_quick_benchmark_delivers_every_message_in_order(ray_head: str) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "ray_bench.py"), "--quick",
         "--address", ray_head],
        capture_output=True, text=True, timeout=280, check=False, cwd=REPO,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    assert lines, done.stdout + done.stderr[-3000:]
    bench = json.loads(lines[-1][len("BENCH ") :])
    assert done.returncode == 0 and bench["ok"], done.stdout
    for case in ("latency_4_hops", "python_ints", "int64_1000"):
        assert bench[case]["ringctl"] > 0 and bench[case]["raw"] > 0, bench
