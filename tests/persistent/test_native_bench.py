"""The device run's measuring script, dry-run on the CPU twin (so one device run suffices)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ringctl.engine.local.persistent.native.twin import compiler

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(compiler() is None, reason="no C++ compiler")


def phase(out: Path, name: str, *args: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_persistent.py"), name,
         "--backend", "twin", "--json", str(out / f"{name}.json"), *args],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert (out / f"{name}.json").exists(), done.stdout + done.stderr
    return done.returncode, json.loads((out / f"{name}.json").read_text())


def test_the_phases_measure_on_the_twin_and_the_summary_checks_them(tmp_path: Path) -> None:
    rc, rt = phase(tmp_path, "roundtrip", "--records", "2000")
    assert rc == 0 and rt["n"] == 2000 and rt["ordering_errors"] == 0
    assert 0 < float(rt["p50_us"]) <= float(rt["p99_us"])  # type: ignore[arg-type]
    rc, st = phase(tmp_path, "stream", "--records", "50000")
    assert rc == 0 and st["received"] == st["handled"] == 50000
    assert st["ordering_errors"] == 0 and st["value_errors"] == 0
    rc, fs = phase(tmp_path, "forcestop")
    assert rc == 0 and fs["forced"] is True and fs["after"] == [4, 5, 6, 7], fs
    rc, summary = phase(tmp_path, "summary", "--dir", str(tmp_path))
    checks = summary["checks"]
    assert isinstance(checks, dict)
    assert checks["zero_ordering_errors"] is True and checks["forcestop_recovers"] is True
    assert checks["roundtrip_p50"] is None  # the latency goals are the device's
    assert rc == 0 and summary["passed"] is True

    # A stream with an ordering error fails the summary.
    st["ordering_errors"] = 1
    (tmp_path / "stream.json").write_text(json.dumps(st))
    rc, summary = phase(tmp_path, "summary", "--dir", str(tmp_path))
    assert rc == 1 and summary["passed"] is False
