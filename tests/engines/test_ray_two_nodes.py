"""Kernels placed on both nodes of a two-node cluster (simulated on loopback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engines.conftest import HAVE_RAY, REPO

pytestmark = [
    pytest.mark.ray,
    pytest.mark.timeout(150),
    pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed"),
]

SCRIPT = Path(__file__).resolve().parent / "two_node_cluster.py"


def test_quickstart_across_two_nodes() -> None:
    # Its own process: this one may already belong to the session's cluster.
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=140
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["outcome"] == "completed"
    assert report["metrics"]["total"] == {"total": 333328333350000, "items": 100000}
    nodes, placement = report["nodes"], report["placement"]
    assert len(set(nodes.values())) == 2
    assert {r["node_id"] for r in placement["source"]} == {nodes["node_a"]}
    assert {r["node_id"] for r in placement["total"]} == {nodes["node_a"]}
    assert [r["node_id"] for r in placement["square"]] == [nodes["node_b"]] * 2
    assert all(report["rows"].values()), "every kernel row names its node"
