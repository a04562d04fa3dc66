"""The transition table, exhaustively and without asyncio (lifecycle as data).

``SPEC_MOVES`` (in ``support.py``) is written out from the spec's "Valid Transitions"
table and state diagram (plus: ``terminate`` is valid from LAUNCHED, ACTIVE and
DEACTIVATED), not imported from the code, so a wrong entry in ``lifecycle.TRANSITIONS``
fails a test.
"""

from __future__ import annotations

import itertools

import pytest

from ringctl.engine import lifecycle
from ringctl.engine.lifecycle import KernelState, expected_states, next_state
from ringctl.exceptions import KernelStateError

from .support import ACTIONS, SPEC_MOVES, spec_expected

S = KernelState
EVERY_CASE = list(itertools.product(KernelState, ACTIONS))


def test_the_six_states_in_lifecycle_order() -> None:
    assert [s.name for s in KernelState] == [
        "CREATED",
        "LAUNCHED",
        "ACTIVE",
        "DEACTIVATED",
        "TERMINATING",
        "TERMINATED",
    ]


def test_user_actions_are_the_spec_five() -> None:
    assert lifecycle.USER_ACTIONS == ACTIONS


@pytest.mark.parametrize(
    ("state", "action"),
    [case for case in EVERY_CASE if case in SPEC_MOVES],
    ids=lambda v: v.name if isinstance(v, KernelState) else v,
)
def test_valid_move_lands_where_the_table_says(state: KernelState, action: str) -> None:
    assert next_state("k", state, action) is SPEC_MOVES[(state, action)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("state", "action"),
    [case for case in EVERY_CASE if case not in SPEC_MOVES],
    ids=lambda v: v.name if isinstance(v, KernelState) else v,
)
def test_every_other_move_raises_with_current_and_expected(state: KernelState, action: str) -> None:
    with pytest.raises(KernelStateError) as caught:
        next_state("k", state, action)  # type: ignore[arg-type]
    err = caught.value
    assert err.current_state is state
    assert err.expected_states == spec_expected(action)
    assert err.kernel_id == "k"
    assert err.action == action
    assert f"cannot {action}() kernel 'k': it is {state.name}" in str(err)


@pytest.mark.parametrize(
    ("state", "action", "valid"),
    [
        # The spec's "Valid Transitions" table, row by row.
        (S.CREATED, "launch", S.LAUNCHED),
        (S.CREATED, "activate", None),
        (S.LAUNCHED, "activate", S.ACTIVE),
        (S.LAUNCHED, "deactivate", None),
        (S.ACTIVE, "deactivate", S.DEACTIVATED),
        (S.ACTIVE, "launch", None),
        (S.DEACTIVATED, "reactivate", S.ACTIVE),
        (S.DEACTIVATED, "activate", None),
    ],
)
def test_the_spec_table_rows(state: KernelState, action: str, valid: KernelState | None) -> None:
    if valid is None:
        with pytest.raises(KernelStateError):
            next_state("worker", state, action)  # type: ignore[arg-type]
    else:
        assert next_state("worker", state, action) is valid  # type: ignore[arg-type]


@pytest.mark.parametrize("action", ACTIONS)
def test_terminated_is_final_for_every_user_action(action: str) -> None:
    with pytest.raises(KernelStateError) as caught:
        next_state("k", S.TERMINATED, action)  # type: ignore[arg-type]
    assert caught.value.current_state is S.TERMINATED
    assert "remove()" in (caught.value.hint or "")


def test_activate_before_launch_names_the_fix() -> None:
    with pytest.raises(KernelStateError) as caught:
        next_state("worker", S.CREATED, "activate")
    assert caught.value.expected_states == (S.LAUNCHED,)
    assert "launch it first" in str(caught.value)


def test_activate_on_a_paused_kernel_points_to_reactivate() -> None:
    with pytest.raises(KernelStateError, match="reactivate"):
        next_state("worker", S.DEACTIVATED, "activate")


@pytest.mark.parametrize("action", ACTIONS)
def test_expected_states_matches_the_spec(action: str) -> None:
    assert expected_states(action) == spec_expected(action)  # type: ignore[arg-type]


# -- the runtime's own events: a body finishing, a restart policy relaunching ---------------


@pytest.mark.parametrize("state", list(KernelState), ids=lambda s: s.name)
def test_finish_ends_any_started_kernel(state: KernelState) -> None:
    started = {S.LAUNCHED, S.ACTIVE, S.DEACTIVATED, S.TERMINATING}
    if state in started:
        assert next_state("k", state, "finish") is S.TERMINATED
    else:
        with pytest.raises(KernelStateError):
            next_state("k", state, "finish")


@pytest.mark.parametrize("state", list(KernelState), ids=lambda s: s.name)
def test_relaunch_only_from_terminated(state: KernelState) -> None:
    if state is S.TERMINATED:
        assert next_state("k", state, "relaunch") is S.LAUNCHED
    else:
        with pytest.raises(KernelStateError) as caught:
            next_state("k", state, "relaunch")
        assert caught.value.expected_states == (S.TERMINATED,)


def test_the_table_has_no_move_beyond_the_spec_and_the_runtime_events() -> None:
    user_moves = {
        key: to for key, to in lifecycle.TRANSITIONS.items() if key[1] in lifecycle.USER_ACTIONS
    }
    assert user_moves == SPEC_MOVES
    assert {a for _, a in lifecycle.TRANSITIONS} == {*ACTIONS, "finish", "relaunch"}


def test_is_running() -> None:
    assert {s for s in KernelState if s.is_running} == {S.LAUNCHED, S.ACTIVE, S.DEACTIVATED}
