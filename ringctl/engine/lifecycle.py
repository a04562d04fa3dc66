"""Kernel states and the one table of valid moves between them (pure: no asyncio, no I/O).

The table is the lifecycle of ``docs/concepts.md``: every action a user
can ask for is a key ``(state, action)``; anything not in the table raises
``KernelStateError`` with ``current_state`` and ``expected_states``. The internal events
``finish`` (the body returned or raised) and ``relaunch`` (a restart policy replaces a
terminated kernel, keeping its inbox) are in the table too, so the runtime never moves a
kernel by hand.
"""

from __future__ import annotations

import enum
from typing import Final, Literal

from ringctl.exceptions import KernelStateError

__all__ = ["RUNNING", "TRANSITIONS", "USER_ACTIONS", "Action", "KernelState", "expected_states",
           "next_state"]  # fmt: skip


class KernelState(enum.Enum):
    """Where a kernel is in its life. ``ACTIVE ⇄ DEACTIVATED`` is the only loop."""

    CREATED = "CREATED"
    LAUNCHED = "LAUNCHED"
    ACTIVE = "ACTIVE"
    DEACTIVATED = "DEACTIVATED"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"

    @property
    def is_running(self) -> bool:
        """True where the kernel's tasks exist and have not finished."""
        return self in RUNNING


#: The states in which a kernel's tasks exist and have not finished, in lifecycle order
#: (the one definition: an action that needs a running kernel names these).
RUNNING: Final = (KernelState.LAUNCHED, KernelState.ACTIVE, KernelState.DEACTIVATED)

Action = Literal[
    "launch", "activate", "deactivate", "reactivate", "terminate", "finish", "relaunch"
]

#: The actions a user calls on the runtime; ``finish`` and ``relaunch`` are the runtime's own.
USER_ACTIONS: Final[tuple[Action, ...]] = (
    "launch",
    "activate",
    "deactivate",
    "reactivate",
    "terminate",
)

S = KernelState

#: ``(from, action) -> to``. Read it as the spec's "Valid Transitions" table.
TRANSITIONS: Final[dict[tuple[KernelState, Action], KernelState]] = {
    (S.CREATED, "launch"): S.LAUNCHED,
    (S.LAUNCHED, "activate"): S.ACTIVE,
    (S.ACTIVE, "deactivate"): S.DEACTIVATED,
    (S.DEACTIVATED, "reactivate"): S.ACTIVE,
    (S.LAUNCHED, "terminate"): S.TERMINATING,
    (S.ACTIVE, "terminate"): S.TERMINATING,
    (S.DEACTIVATED, "terminate"): S.TERMINATING,
    # The body returned or raised (or a force stop ended it).
    (S.TERMINATING, "finish"): S.TERMINATED,
    (S.ACTIVE, "finish"): S.TERMINATED,
    (S.DEACTIVATED, "finish"): S.TERMINATED,
    (S.LAUNCHED, "finish"): S.TERMINATED,
    # A restart policy gives a terminated kernel a new body; its queues are kept.
    (S.TERMINATED, "relaunch"): S.LAUNCHED,
}

_HINTS: Final[dict[tuple[KernelState, Action], str]] = {
    (S.CREATED, "activate"): "launch it first: await runtime.launch(kernel_id)",
    (S.DEACTIVATED, "activate"): "a paused kernel is resumed with reactivate()",
    (S.ACTIVE, "reactivate"): "it is already active",
    (S.ACTIVE, "activate"): "it is already active",
    (S.ACTIVE, "launch"): "it is already launched and active",
    (S.LAUNCHED, "launch"): "it is already launched; activate() starts it",
    (S.LAUNCHED, "deactivate"): "only an ACTIVE kernel can be paused; activate() it first",
}


def expected_states(action: Action) -> tuple[KernelState, ...]:
    """Every state from which ``action`` is valid, in lifecycle order."""
    return tuple(state for state in KernelState if (state, action) in TRANSITIONS)


def next_state(kernel_id: str, current: KernelState, action: Action) -> KernelState:
    """The state ``action`` leads to from ``current``, or ``KernelStateError``."""
    try:
        return TRANSITIONS[(current, action)]
    except KeyError:
        hint = _HINTS.get((current, action))
        if hint is None and current is S.TERMINATED:
            hint = "a terminated kernel cannot restart; runtime.remove() it, then launch anew"
        raise KernelStateError(
            kernel_id, action, current, expected_states(action), hint=hint
        ) from None
