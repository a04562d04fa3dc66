"""Files generated from the code must match the code: regenerate them, don't edit them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current() -> None:
    from ringctl.cli.docs import render

    assert (ROOT / "docs" / "cli.md").read_text() == render(), (
        "docs/cli.md is stale: run `python -m ringctl.cli.docs > docs/cli.md`"
    )


def test_checked_in_schema_is_current() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ringctl.cli", "schema"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    checked_in = (ROOT / "topologies" / "topology.schema.json").read_text()
    assert json.loads(out) == json.loads(checked_in), (
        "topologies/topology.schema.json is stale: run `ringctl schema > "
        "topologies/topology.schema.json`"
    )


def test_every_topology_points_editors_at_the_schema() -> None:
    for path in sorted((ROOT / "topologies").glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=./topology.schema.json", path.name
