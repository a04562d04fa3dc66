"""Commands sent while a ``down`` drains are answered at once: the topology is draining."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import TOPOLOGIES, Ringctl, ringctl_for, wait_for

SLOWDRAIN = TOPOLOGIES / "slowdrain.yaml"


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


REFUSED = [
    ("pause", ["pause", "slowdrain", "--wait", "2"]),
    ("resume", ["resume", "slowdrain", "sink", "--wait", "2"]),
    ("restart", ["restart", "slowdrain", "sink"]),
    ("scale", ["scale", "slowdrain", "sink=2"]),
]


def test_commands_during_a_down_are_refused_at_once(ringctl: Ringctl) -> None:
    ringctl.up_detached(SLOWDRAIN)
    wait_for(lambda: ringctl.kernel("slowdrain", "sink")["inbox_depth"] >= 110, what="a backlog")
    down = ringctl.spawn("down", "slowdrain", "--timeout", "30")
    wait_for(lambda: ringctl.status("slowdrain")["state"] == "draining", what="the drain")
    for action, argv in REFUSED:
        t0 = time.monotonic()
        result = ringctl(*argv)
        took = time.monotonic() - t0
        assert result.returncode == 1, (action, result.stderr)
        assert result.stderr.splitlines() == [
            f"error: cannot {action} topology 'slowdrain': it is draining (a down is under way)",
            "hint: ringctl ps slowdrain shows how the drain goes",
        ]
        assert took < 2.0, f"{action} waited {took:.1f}s for the drain"
    _out, err = down.communicate(timeout=60)
    assert down.returncode == 0, err  # the drain itself went on untouched
    sent, received = ringctl.report("source"), ringctl.report("sink")
    assert received == {"received": sent["sent"], "sum": sent["sum"]}
