"""``ringctl apply`` on persistent kernels: new params reach the compiled loop, and
persistent kernels are added and removed while the others run."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import Ringctl, ringctl_for, wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def topology(threshold: float, extra_kernels: str = "", extra_queues: str = "") -> str:
    return f"""\
version: 1
name: live
python_path: ["{REPO}"]
kernels:
  readings:
    entry: kernels.records_pipeline:readings
    params: {{channels: 4, batch: 64, batches: null, rate: 20000}}
  ewma_z:
    entry: kernels.records_pipeline:ewma_z
    persistent: {{ring: 1024}}
  flag:
    entry: kernels.records_pipeline:flag
    persistent: {{}}
    params: {{threshold: {threshold}}}
  alert_log:
    entry: kernels.records_pipeline:alert_log
{extra_kernels}queues:
  - {{from: readings, to: ewma_z}}
  - {{from: ewma_z, to: flag}}
  - {{from: flag, to: alert_log}}
{extra_queues}"""


SECOND = """\
  ewma_wide:
    entry: kernels.records_pipeline:ewma_z
    persistent: {ring: 1024}
    params: {alpha: 0.2}
  wide_log:
    entry: kernels.records_pipeline:alert_log
"""
SECOND_QUEUES = """\
  - {from: readings, to: ewma_wide}
  - {from: ewma_wide, to: wide_log}
"""


def metric(cli: Ringctl, kernel: str, name: str) -> int:
    return int(cli.kernel("live", kernel)["metrics"].get(name, 0))


def test_params_added_and_removed_persistent_kernels(tmp_path: Path, ringctl: Ringctl) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(topology(1000.0))  # nothing is that far out: no record is flagged
    assert ringctl.up_detached(path) == "live"
    pid = ringctl.pid_of("live")
    wait_for(lambda: metric(ringctl, "flag", "records_in") > 1000, timeout=60, what="records")
    assert metric(ringctl, "alert_log", "anomalies") == 0

    path.write_text(topology(0.5))
    applied = ringctl("apply", path, timeout=120)
    assert applied.returncode == 0, applied.stderr
    assert (
        "-/+ kernel flag: params.threshold 1000.0 -> 0.5 (restart, its state array made anew"
        in (applied.stdout)
    )
    # The new threshold is in the compiled loop: records are flagged now.
    wait_for(lambda: metric(ringctl, "alert_log", "anomalies") > 100, what="flagged records")
    assert ringctl.kernel("live", "flag")["restarts"] == 1

    path.write_text(topology(0.5, SECOND, SECOND_QUEUES))
    applied = ringctl("apply", path, timeout=120)
    assert applied.returncode == 0, applied.stderr
    wait_for(lambda: metric(ringctl, "ewma_wide", "records_in") > 1000, timeout=60, what="wide")

    path.write_text(topology(0.5))
    applied = ringctl("apply", path, timeout=120)
    assert applied.returncode == 0, applied.stderr
    assert "  - kernel ewma_wide: drained, then terminated" in applied.stdout
    status = ringctl.status("live")
    assert [k["id"] for k in status["kernels"]] == ["alert_log", "flag", "ewma_z", "readings"]
    assert {(q["from"], q["to"]) for q in status["queues"]} == {
        ("readings.out", "ewma_z"), ("ewma_z.out", "flag"), ("flag.out", "alert_log"),
    }  # fmt: skip

    # A ring between two persistent kernels is laid out at the start: refused, at its line.
    flag_wide = "  flag_wide:\n    entry: kernels.records_pipeline:flag\n    persistent: {}\n"
    ring = "  - {from: ewma_wide, to: flag_wide}"
    queues = SECOND_QUEUES.replace("to: wide_log}", "to: flag_wide}")
    text = topology(0.5, SECOND + flag_wide, queues + "  - {from: flag_wide, to: wide_log}\n")
    assert ring in text
    path.write_text(text)
    refused = ringctl("apply", path)
    assert refused.returncode == 2, refused.stderr
    line = text.splitlines().index(ring) + 1
    assert f"{path}:{line}:" in refused.stderr
    assert (
        "queue ewma_wide.out -> flag_wide: a ring between persistent kernels cannot be wired"
        in (refused.stderr)
    )
    assert "ewma_wide" not in {k["id"] for k in ringctl.status("live")["kernels"]}

    down = ringctl("down", "live", timeout=120)
    assert down.returncode == 0, down.stderr  # every record accounted for
    assert not list(Path("/dev/shm").glob(f"ringctl-live-{pid}-*"))  # shared memory freed
