"""Naming a run: ``up --name`` for a second copy of a file, ``tap`` without a name."""

from __future__ import annotations

import json
import subprocess
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


def test_completion_offers_running_topologies_and_their_kernels(ringctl: Ringctl) -> None:
    assert ringctl("up", "-d", ENDLESS).returncode == 0

    def complete(line: str) -> list[str]:
        env = {"_RINGCTL_COMPLETE": "complete_bash", "COMP_WORDS": line,
               "COMP_CWORD": str(len(line.split(" ")) - 1)}  # fmt: skip
        result = subprocess.run(
            ringctl.argv(), capture_output=True, text=True, timeout=60,
            env={**ringctl.env, **env},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert complete("ringctl ps e") == ["endless"]
    assert complete("ringctl down ") == ["endless"]
    assert complete("ringctl tap ") == ["endless"]
    assert complete("ringctl tap endless s") == ["sink", "source"]
    assert complete("ringctl restart endless source ") == ["sink"]  # not twice
    assert complete("ringctl logs endless si") == ["sink"]
    assert ringctl("down", "endless").returncode == 0
    assert complete("ringctl pause ") == []  # nothing runs: nothing to offer, no error
