"""End to end: ``ringctl top --once`` and the metrics, against a real detached topology."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

TOPOLOGY = """\
version: 1
name: dash-endless
python_path: ["{repo}"]
kernels:
  source: {{entry: "kernels.sources:counter", params: {{count: null, rate: 200}}}}
  total: {{entry: "kernels.sinks:summing"}}
queues:
  - {{from: source, to: total}}
"""

pytestmark = pytest.mark.slow


def ringctl(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ringctl.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )
    assert done.returncode == 0, f"ringctl {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture
def detached(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A paced, endless topology started with ``up -d`` in a private state directory."""
    topology = tmp_path / "endless.yaml"
    topology.write_text(TOPOLOGY.format(repo=REPO.as_posix()), encoding="utf-8")
    env = {**os.environ, "RINGCTL_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "100"}
    ringctl(env, "up", "-d", str(topology))
    try:
        yield env
    finally:
        subprocess.run(
            [sys.executable, "-m", "ringctl.cli", "down", "dash-endless"],
            capture_output=True,
            timeout=60,
            env=env,
            cwd=REPO,
        )


def test_top_once_draws_every_kernel(detached: dict[str, str]) -> None:
    frame = ringctl(detached, "top", "dash-endless", "--once", "--width", "100")
    assert "dash-endless" in frame
    assert "RUNNING" in frame
    rows = {line.split()[0]: line for line in frame.splitlines() if line[:1].isalpha()}
    assert "source" in rows and "total" in rows
    assert rows["source"].split()[1] in ("busy", "idle")
    assert "source.out → total" in frame
    assert all(len(line) <= 100 for line in frame.splitlines())


def test_metrics_of_a_real_status_match_ps_json(detached: dict[str, str]) -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families

    from ringctl.dashboard import serve_metrics

    document = json.loads(ringctl(detached, "ps", "dash-endless", "--json"))
    with (
        serve_metrics(lambda: document, 0) as server,
        urllib.request.urlopen(server.url, timeout=5) as response,
    ):
        body = response.read().decode("utf-8")
    samples = {
        (s.name, s.labels.get("kernel")): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.labels.get("topology") == "dash-endless"
    }
    for kernel in document["kernels"]:
        kid = kernel["id"]
        assert samples[("ringctl_kernel_messages_in_total", kid)] == kernel["messages_in"]
        assert samples[("ringctl_kernel_messages_out_total", kid)] == kernel["messages_out"]
        assert samples[("ringctl_kernel_inbox_capacity", kid)] == kernel["inbox_capacity"]
