"""Text from kernels and topology files never reaches the operator's terminal raw.

A kernel's prints, log records, metric names and values and error messages, and a
topology's descriptions, hold escape sequences (terminal title, clear screen, colour),
a carriage return, a NUL and a bidi override. Every command shows them escaped
(``\\x1b``), and the machine-readable outputs (``--json``, JUnit XML) stay parseable.
Each test runs ``ringctl`` as a subprocess, as a user would.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import TOPOLOGIES, Ringctl, ringctl_for, wait_for

HOSTILE = TOPOLOGIES / "hostile.yaml"
#: What must never be printed as it is: C0 controls but tab and newline, DEL, C1, and
#: the bidi override.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]")
#: The kernel's text (testkernels.HOSTILE) as it is shown: every control escaped.
SHOWN = r"A\x1b]0;pwned\x07B\x1b[2JC\x1b[31mD\rE\x00F\u202eG"


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def assert_inert(*outputs: str) -> None:
    for output in outputs:
        found = RAW.search(output)
        assert found is None, f"raw {found.group()!r} in {output!r}"


@pytest.mark.parametrize("fmt", ["tree", "mermaid", "dot"])
def test_graph_shows_descriptions_escaped(ringctl: Ringctl, fmt: str) -> None:
    result = ringctl("graph", HOSTILE, "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert_inert(result.stdout, result.stderr)
    if fmt == "tree":  # the only one that shows the topology's description
        assert r"top\x1b]0;pwned\x07\x1b[2J\u202eend" in result.stdout
    assert r"sink\x1b[31m\rred" in result.stdout.replace("\\\\", "\\")


def test_ps_top_and_logs_show_kernel_text_escaped(ringctl: Ringctl) -> None:
    name = ringctl.up_detached(HOSTILE)
    wait_for(lambda: ringctl.kernel(name, "sink").get("metrics", {}).get("note"), what="metrics")

    ps = ringctl("ps", name)
    assert ps.returncode == 0, ps.stderr
    assert_inert(ps.stdout, ps.stderr)
    assert f"m{SHOWN}=" in ps.stdout  # the metric's name, escaped ...
    assert r"note=vA\x1b]0;pwned" in ps.stdout  # ... and its value (cut to the column)

    as_json = ringctl("ps", name, "--json")
    assert as_json.returncode == 0, as_json.stderr
    metrics = next(k for k in json.loads(as_json.stdout)["kernels"] if k["id"] == "sink")
    assert metrics["metrics"]["note"] == "vA\x1b]0;pwned\x07B\x1b[2JC\x1b[31mD\rE\x00F\u202eG"

    top = ringctl("top", name, "--once", "--width", "160")
    assert top.returncode == 0, top.stderr
    assert_inert(top.stdout)

    logs = ringctl("logs", name, "sink")
    assert logs.returncode == 0, logs.stderr
    assert_inert(logs.stdout)
    assert f"sink[0] | said {SHOWN}" in logs.stdout
    assert f"sink[0] WARNING | hostile: logged {SHOWN}" in logs.stdout
    # --json keeps the text as it was: JSON escapes it, a reader gets the original back.
    records = [json.loads(line) for line in ringctl("logs", name, "--json").stdout.splitlines()]
    assert any(
        r["text"] == "said A\x1b]0;pwned\x07B\x1b[2JC\x1b[31mD\rE\x00F\u202eG" for r in records
    )
    assert ringctl("down", name).returncode == 0


def test_a_failing_kernels_error_is_shown_escaped_everywhere(ringctl: Ringctl) -> None:
    ringctl.env["RC_FAIL_AFTER"] = "3"
    up = ringctl("up", HOSTILE, "--no-dashboard", "--interval", "0.2")
    assert up.returncode == 1, up.stderr
    assert_inert(up.stdout, up.stderr)
    assert f"said {SHOWN}" in up.stdout  # what the kernel printed, echoed in plain mode
    assert f"RuntimeError: bad {SHOWN}" in up.stderr  # its traceback

    finished = ringctl("ps", "-a")
    assert finished.returncode == 0, finished.stderr
    assert_inert(finished.stdout)
    assert f"bad {SHOWN}"[:30] in finished.stdout

    logs = ringctl("logs", "hostile")
    assert_inert(logs.stdout)
    assert f"traceback | RuntimeError: bad {SHOWN}" in logs.stdout


def test_smoke_json_and_junit_stay_machine_readable(ringctl: Ringctl, tmp_path: Path) -> None:
    ringctl.env["RC_FAIL_AFTER"] = "3"
    junit = tmp_path / "junit.xml"
    smoke = ringctl("smoke", HOSTILE, "--json", "--junit", junit)
    assert smoke.returncode == 1, smoke.stderr
    assert_inert(smoke.stdout, smoke.stderr)
    document = json.loads(smoke.stdout)  # the kernel's prints went to stderr, escaped
    assert document["ok"] is False
    assert f"said {SHOWN}" in smoke.stderr

    suite = ET.parse(junit).getroot()  # well-formed XML 1.0
    failure = suite.find("testcase/failure")
    assert failure is not None and failure.text is not None
    assert f"bad {SHOWN}" in failure.text
    assert f"bad {SHOWN}" in failure.get("message", "")

    plain = ringctl("smoke", HOSTILE)
    assert plain.returncode == 1
    assert_inert(plain.stdout, plain.stderr)
    assert f"bad {SHOWN}" in plain.stdout


def test_a_huge_metric_is_cut_in_the_run_summary(capsys: pytest.CaptureFixture[str]) -> None:
    from ringctl.cli.up_cmd import _print_summary

    kernel = {"id": "sink", "messages_in": 1, "messages_out": 0, "errors": 0, "drops": 0,
              "restarts": 0, "metrics": {"blob": "x" * 10_000_000, "count": 3}}  # fmt: skip
    _print_summary({"kernels": [kernel]})
    line = capsys.readouterr().err.strip()
    assert len(line) < 400 and line.endswith("count=3")
    assert "blob=" + "x" * 79 + "…" in line
