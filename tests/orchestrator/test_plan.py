"""From a topology file to a launch plan, and the smoke run over a plan."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestrator.harness import REPO, TOPOLOGIES
from ringctl.orchestrator import RestartPolicy
from ringctl.orchestrator.loading import plan_from_file
from ringctl.orchestrator.smoke import junit_xml, smoke_plan
from ringctl.topology import TopologyError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return path


def test_consumers_launch_before_their_producers() -> None:
    plan = plan_from_file(REPO / "topologies" / "quickstart.yaml")
    assert plan.order == ["total", "square", "source"]
    assert plan.sources == ["source"]
    assert plan.kernel("square").replicas == 2
    assert [(e.producer, e.consumer, e.capacity, e.backpressure) for e in plan.edges] == [
        ("source", "square", 64, "block"),
        ("square", "total", 64, "block"),
    ]
    assert plan.smoke is not None and plan.smoke.timeout == 30


def test_depends_on_wins_over_consumers_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
version: 1
name: deps
python_path: ["{REPO}", "{REPO / "tests"}"]
kernels:
  source: {{entry: "orchestrator.testkernels:ticker"}}
  sink:
    entry: orchestrator.testkernels:tally
    depends_on: [source]
    restart: {{policy: on-failure, max_restarts: 5, backoff: 0.25}}
  logger: {{entry: "orchestrator.testkernels:tally"}}
queues:
  - {{from: source, to: sink}}
""",
    )
    plan = plan_from_file(path)
    assert plan.order.index("source") < plan.order.index("sink")
    # logger has no queue at all: nothing flows from it, so the run does not wait for it
    assert plan.sources == ["source"]
    assert plan.kernel("sink").restart == RestartPolicy("on-failure", 5, 0.25)


def test_an_invalid_file_raises_with_positions() -> None:
    with pytest.raises(TopologyError) as caught:
        plan_from_file(TOPOLOGIES / "invalid.yaml")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.format().startswith(f"{TOPOLOGIES / 'invalid.yaml'}:6:15: ")


def test_restart_backoff_doubles_and_is_capped() -> None:
    policy = RestartPolicy("on-failure", max_restarts=10, backoff=0.5)
    assert [policy.delay(n) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert policy.delay(20) == 30.0


async def test_smoke_passes_a_finite_topology_and_fails_an_unmet_expectation() -> None:
    good = await smoke_plan(plan_from_file(TOPOLOGIES / "finite.yaml"))
    assert good.ok and good.outcome == "completed" and good.error is None
    assert all(c.ok for c in good.checks) and len(good.checks) == 8
    bad = await smoke_plan(plan_from_file(TOPOLOGIES / "unmet.yaml"))
    assert not bad.ok and bad.outcome == "completed"
    assert bad.failures == ["total: min_messages_in expected 1000000, got 50"]
    report = ET.fromstring(junit_xml([good, bad]))
    assert (report.get("tests"), report.get("failures")) == ("2", "1")
    cases = report.findall("testcase")
    assert [c.get("name") for c in cases] == ["finite", "unmet"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "total: min_messages_in expected 1000000, got 50"


def test_resources_reach_the_plan_custom_ones_included(tmp_path: Path) -> None:
    """What the Ray engine places actors with: num_cpus, num_gpus and custom resources."""
    path = tmp_path / "placed.yaml"
    path.write_text(
        f"""version: 1
name: placed
python_path: ["{REPO}"]
kernels:
  source:
    entry: kernels.sources:counter
    resources: {{num_cpus: 0.5, custom: {{node_a: 1}}}}
  total:
    entry: kernels.sinks:summing
queues: [{{from: source, to: total}}]
"""
    )
    plan = plan_from_file(path)
    assert dict(plan.kernel("source").resources) == {"num_cpus": 0.5, "node_a": 1.0}
    assert dict(plan.kernel("total").resources) == {}
