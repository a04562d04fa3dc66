"""Every checked-in topology under ``topologies/`` must validate (schema and wiring)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringctl.topology import launch_order, load_topology, resolve_entries

REPO = Path(__file__).resolve().parents[2]
FILES = sorted((REPO / "topologies").glob("*.yaml")) + sorted((REPO / "topologies").glob("*.yml"))


@pytest.mark.skipif(not FILES, reason="no topologies/*.yaml yet")
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_checked_in_topology_validates(path: Path) -> None:
    topology = load_topology(path)
    assert sorted(launch_order(topology)) == sorted(topology.kernels)


@pytest.mark.skipif(not FILES, reason="no topologies/*.yaml yet")
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_checked_in_topology_entries_import(path: Path) -> None:
    # What `ringctl validate --import` and `ringctl up` do: entries, params and ports.
    topology = load_topology(path)
    assert list(resolve_entries(topology)) == list(topology.kernels)
