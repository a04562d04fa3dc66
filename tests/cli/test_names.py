"""Naming a run: ``up --name`` for a second copy of a file, ``tap`` without a name."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import TOPOLOGIES, Ringctl, ringctl_for

ENDLESS = TOPOLOGIES / "endless.yaml"


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def test_a_second_copy_of_a_file_runs_under_another_name(ringctl: Ringctl) -> None:
    assert ringctl("up", "-d", ENDLESS).returncode == 0
    again = ringctl("up", "-d", ENDLESS)
    assert again.returncode == 1
    assert f"run a second copy: ringctl up {ENDLESS} --name endless-2" in again.stderr

    # With one topology running, tap needs no name.
    tapped = ringctl("tap", "source", "-n", "1", "--json")
    assert tapped.returncode == 0, tapped.stderr
    assert json.loads(tapped.stdout.splitlines()[0])["kernel"] == "source"

    second = ringctl("up", "-d", ENDLESS, "--name", "endless-2")
    assert second.returncode == 0, second.stderr
    names = {t["name"] for t in ringctl.json("ps")["topologies"]}
    assert names == {"endless", "endless-2"}
    assert ringctl.status("endless-2")["file"] == str(ENDLESS)

    # Now two run: tap says which to name.
    ambiguous = ringctl("tap", "source", "-n", "1")
    assert ambiguous.returncode == 2
    assert "several topologies are running (endless, endless-2)" in ambiguous.stderr
    assert ringctl("tap", "endless-2", "source", "-n", "1").returncode == 0

    bad = ringctl("up", "-d", ENDLESS, "-p", "../x")
    assert bad.returncode == 2 and "'../x' is not a topology name" in bad.stderr
    for name in ("endless", "endless-2"):
        assert ringctl("down", name).returncode == 0
