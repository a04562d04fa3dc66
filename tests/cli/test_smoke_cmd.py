"""``ringctl smoke`` as CI runs it: exit codes, the table, ``--json`` and ``--junit``."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import TOPOLOGIES, Ringctl, ringctl_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    """``ringctl`` in a private state dir; what a test starts there is gone after it."""
    yield from ringctl_for(tmp_path)


def test_smoke_passes_a_good_file(ringctl: Ringctl) -> None:
    result = ringctl("smoke", TOPOLOGIES / "finite.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smoke: finite (" in result.stderr
    row = next(line for line in result.stdout.splitlines() if "finite" in line)
    assert row.split()[:2] == ["PASS", "finite"]
    assert "completed" in row and "8/8" in row


def test_smoke_fails_an_unmet_expectation_with_exit_1(ringctl: Ringctl) -> None:
    result = ringctl("smoke", TOPOLOGIES / "unmet.yaml", "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    (one,) = report["results"]
    assert (one["name"], one["outcome"], one["ok"]) == ("unmet", "completed", False)
    assert one["failures"] == ["total: min_messages_in expected 1000000, got 50"]


def test_smoke_fails_a_run_that_outlives_its_timeout(ringctl: Ringctl) -> None:
    result = ringctl("smoke", TOPOLOGIES / "hangs.yaml")
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "timeout" in result.stdout
    assert (
        "hangs: did not complete within smoke.timeout (1 s); a topology with an endless "
        "source needs smoke.duration"
    ) in " ".join(result.stdout.split())


def test_smoke_writes_junit_xml_for_every_file(ringctl: Ringctl, tmp_path: Path) -> None:
    junit = tmp_path / "reports" / "smoke.xml"
    result = ringctl(
        "smoke", TOPOLOGIES / "finite.yaml", TOPOLOGIES / "unmet.yaml", "--junit", junit
    )
    assert result.returncode == 1
    suite = ET.parse(junit).getroot()
    assert suite.tag == "testsuite"
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == (
        "ringctl smoke", "2", "1",
    )  # fmt: skip
    finite, unmet = suite.findall("testcase")
    assert (finite.get("name"), finite.get("file")) == ("finite", str(TOPOLOGIES / "finite.yaml"))
    assert finite.find("failure") is None
    failure = unmet.find("failure")
    assert failure is not None
    assert failure.get("message") == "total: min_messages_in expected 1000000, got 50"
    out = unmet.find("system-out")
    assert out is not None and out.text is not None and "outcome: completed" in out.text
    assert float(suite.get("time") or 0) > 0


def test_smoke_refuses_an_invalid_file_before_running_anything(ringctl: Ringctl) -> None:
    result = ringctl("smoke", TOPOLOGIES / "finite.yaml", TOPOLOGIES / "invalid.yaml")
    assert result.returncode == 2
    assert "invalid.yaml:6:15: kernels.source.replicas must be >= 1" in result.stderr
    assert "smoke: finite" not in result.stderr  # nothing ran


def test_smoke_of_a_project_topology(ringctl: Ringctl) -> None:
    result = ringctl("smoke", REPO / "topologies" / "quickstart.yaml", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["results"][0]["outcome"] == "completed"


def test_smoke_checks_kernel_metrics(ringctl: Ringctl, tmp_path: Path) -> None:
    text = (TOPOLOGIES / "finite.yaml").read_text()
    base = text.replace('["../../..", "../.."]', repr([str(REPO), str(REPO / "tests")]))
    good = tmp_path / "metrics-good.yaml"
    good.write_text(base.replace(
        "total: {min_messages_in: 500, max_errors: 0, max_drops: 0}",
        "total: {min_messages_in: 500, metrics: {total: 125250, items: {min: 500, max: 500}}}",
    ))  # fmt: skip
    bad = tmp_path / "metrics-bad.yaml"
    bad.write_text(base.replace(
        "total: {min_messages_in: 500, max_errors: 0, max_drops: 0}",
        "total: {metrics: {total: 125251, items: {max: 10}, nothing: {min: 1}}}",
    ))  # fmt: skip
    ok = ringctl("smoke", good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    result = ringctl("smoke", bad, "--json")
    assert result.returncode == 1
    (one,) = json.loads(result.stdout)["results"]
    assert one["failures"] == [
        "total: metrics.total == expected 125251, got 125250",
        "total: metrics.items max expected 10, got 500",
        "total: metrics.nothing min expected 1, got None "
        "(it has no metric 'nothing'; its metrics: items, total)",
    ]
    misspelled = tmp_path / "metrics-misspelled.yaml"
    misspelled.write_text(base.replace(
        "total: {min_messages_in: 500, max_errors: 0, max_drops: 0}",
        "total: {metrics: {totl: 125250}}",
    ))  # fmt: skip
    result = ringctl("smoke", misspelled)
    assert result.returncode == 1
    assert "did you mean 'total'?" in result.stdout + result.stderr


def test_smoke_refuses_a_metric_expectation_without_a_bound(
    ringctl: Ringctl, tmp_path: Path
) -> None:
    text = (TOPOLOGIES / "finite.yaml").read_text()
    path = tmp_path / "metrics-empty.yaml"
    path.write_text(text.replace(
        "total: {min_messages_in: 500, max_errors: 0, max_drops: 0}",
        "total: {metrics: {total: {}}}",
    ))  # fmt: skip
    result = ringctl("smoke", path)
    assert result.returncode == 2
    assert "give at least one of equals, min, max" in result.stderr
