"""A full disk under what ringctl writes: one clear line and a failing exit code, never a
traceback, never a success that wrote nothing. ``/dev/full`` stands in for the full disk
(every write to it fails with ENOSPC). Each test runs ``ringctl`` as a subprocess."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import REPO, TOPOLOGIES, Ringctl, ringctl_for

FINITE = TOPOLOGIES / "finite.yaml"
FULL = Path("/dev/full")

pytestmark = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full (Linux)")


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def test_smoke_whose_junit_report_cannot_be_written_fails_in_one_line(ringctl: Ringctl) -> None:
    result = ringctl("smoke", FINITE, "--junit", FULL)
    assert result.returncode == 1  # the checks passed, but CI gets no report
    assert "Traceback" not in result.stderr
    assert f"error: cannot write the JUnit report {FULL}: No space left on device" in result.stderr
    assert "PASS" in result.stdout  # the results are still shown


def test_smoke_refuses_a_junit_path_it_can_never_write_before_running(
    ringctl: Ringctl, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = ringctl("smoke", FINITE, "--junit", blocker / "report.xml")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"error: --junit {blocker / 'report.xml'}: cannot create its folder" in result.stderr
    assert "smoke: finite" not in result.stderr  # nothing ran

    into_folder = ringctl("smoke", FINITE, "--junit", tmp_path)
    assert into_folder.returncode == 2
    assert f"error: --junit {tmp_path}: it is a folder" in into_folder.stderr


@pytest.mark.parametrize(
    "args",
    [("validate", str(FINITE), "--json"), ("graph", str(FINITE)), ("schema",)],
    ids=["validate-json", "graph", "schema"],
)
def test_output_redirected_to_a_full_disk_fails_in_one_line(
    ringctl: Ringctl, args: tuple[str, ...]
) -> None:
    with FULL.open("w") as full:
        result = subprocess.run(
            ringctl.argv(*args),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=ringctl.env,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [
        "error: cannot write the output: No space left on device",
        "hint: free some space where stdout goes (or write elsewhere), then run it again",
    ]
