"""A running topology's own states, and the only moves between them.

Like a kernel's lifecycle, the table is data and every change goes through
``next_topology_state``; a move the table does not list is a bug in the supervisor
(``TopologyTransitionError``), never a user mistake.

::

    created -> starting -> running <-> paused
                   |          \\        /
                   v           draining -> completed | stopped | failed
          stopped | failed    (a down during the launch; a launch that failed)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = ["FINAL_STATES", "TOPOLOGY_TRANSITIONS", "TopologyState", "TopologyTransitionError",
           "next_topology_state"]  # fmt: skip


class TopologyState(enum.StrEnum):
    CREATED = "created"
    STARTING = "starting"  # phase 1 and phase 2
    RUNNING = "running"
    PAUSED = "paused"  # every kernel that still runs is paused
    DRAINING = "draining"  # down: sources stopped, waiting for the queues to empty
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"


T = TopologyState

TOPOLOGY_TRANSITIONS: Final[Mapping[TopologyState, frozenset[TopologyState]]] = {
    T.CREATED: frozenset({T.STARTING}),
    T.STARTING: frozenset({T.RUNNING, T.STOPPED, T.FAILED}),
    T.RUNNING: frozenset({T.RUNNING, T.PAUSED, T.DRAINING}),
    T.PAUSED: frozenset({T.PAUSED, T.RUNNING, T.DRAINING}),
    T.DRAINING: frozenset({T.COMPLETED, T.STOPPED, T.FAILED}),
    T.COMPLETED: frozenset(),
    T.STOPPED: frozenset(),
    T.FAILED: frozenset(),
}

FINAL_STATES: Final = frozenset({T.COMPLETED, T.STOPPED, T.FAILED})


class TopologyTransitionError(RuntimeError):
    """The supervisor tried a move its table does not have (a bug, with the history)."""

    def __init__(self, current: TopologyState, new: TopologyState, history: list[str]) -> None:
        self.current = current
        self.new = new
        self.history = history
        super().__init__(
            f"topology cannot move from {current} to {new} (history: {' -> '.join(history)})"
        )


def next_topology_state(
    current: TopologyState, new: TopologyState, history: list[str] | None = None
) -> TopologyState:
    """``new`` if the table allows ``current -> new``; raises otherwise."""
    if new not in TOPOLOGY_TRANSITIONS[current]:
        raise TopologyTransitionError(current, new, history or [str(current)])
    return new
