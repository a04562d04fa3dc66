"""``ringctl graph`` output, compared with golden files.

After an intended change: ``RINGCTL_UPDATE_GOLDEN=1 pytest tests/topology/test_topo_views.py``
and review the diff of ``tests/topology/golden/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ringctl.topology import load_topology
from ringctl.topology.views import FORMATS, render

HERE = Path(__file__).parent
SOURCES = ["quickstart", "feedback_loop"]
SUFFIX = {"tree": "txt", "mermaid": "md", "dot": "dot"}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("name", SOURCES)
def test_graph_output_matches_golden(name: str, fmt: str) -> None:
    topology = load_topology(HERE / "valid" / f"{name}.yaml", env={})
    text = render(topology, fmt)
    golden = HERE / "golden" / f"{name}.{SUFFIX[fmt]}"
    if os.environ.get("RINGCTL_UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_mermaid_is_a_fenced_block_with_safe_node_ids() -> None:
    topology = load_topology(HERE / "valid" / "quickstart.yaml")
    lines = render(topology, "mermaid").splitlines()
    assert lines[0] == "```mermaid" and lines[-1] == "```"
    assert lines[1] == "flowchart LR"
    assert '    k1["source<br/>kernels.sources:counter<br/>[cpu]"]' in lines
