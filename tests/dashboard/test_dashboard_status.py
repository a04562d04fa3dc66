"""The status word, human units and tolerant parsing: pure functions, no terminal."""

from __future__ import annotations

from typing import Any

import pytest
from dashboard_strategies import KERNEL, STATUS
from hypothesis import given
from hypothesis import strategies as st

from ringctl.dashboard import (
    STALL_AFTER_S,
    KernelStatus,
    classify_kernel,
    human_count,
    human_duration,
    parse_status,
    total_rate,
)
from ringctl.dashboard._status import pick_rows


def kernel(**fields: Any) -> dict[str, Any]:
    """An ACTIVE single-replica kernel, idle unless the fields say otherwise."""
    base: dict[str, Any] = {
        "id": "k",
        "state": "ACTIVE",
        "replicas": 1,
        "inbox_depth": 0,
        "waiting": 1,
        "blocked": 0,
        "last_progress_s": 0.0,
        "completed": False,
        "last_error": None,
    }
    base.update(fields)
    return base


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, KernelStatus.IDLE),
        ({"waiting": 0}, KernelStatus.BUSY),  # a source: no inbox, always producing
        ({"inbox_depth": 5, "waiting": 0, "last_progress_s": 0.1}, KernelStatus.BUSY),
        ({"inbox_depth": 5, "waiting": 0, "last_progress_s": 9.0}, KernelStatus.STALLED),
        ({"inbox_depth": 5, "blocked": 1, "last_progress_s": 9.0}, KernelStatus.BACKPRESSURED),
        ({"blocked": 2, "waiting": 0}, KernelStatus.BACKPRESSURED),
        ({"state": "DEACTIVATED", "inbox_depth": 900, "last_progress_s": 60}, KernelStatus.PAUSED),
        ({"completed": True, "state": "TERMINATED"}, KernelStatus.DONE),
        ({"completed": True, "inbox_depth": 3, "last_progress_s": 60}, KernelStatus.DONE),
        ({"state": "TERMINATED", "last_error": "ValueError: x"}, KernelStatus.FAILED),
        ({"state": "TERMINATED"}, KernelStatus.STOPPED),
        ({"state": "TERMINATING", "inbox_depth": 4}, KernelStatus.STOPPING),
        ({"state": "CREATED"}, KernelStatus.STARTING),
        ({"state": "LAUNCHED"}, KernelStatus.STARTING),
        ({"state": "active", "inbox_depth": 1, "last_progress_s": 3}, KernelStatus.STALLED),
        # An older runtime without `waiting`: nothing queued and nothing moving is idle.
        ({"waiting": None, "rate_in": 0.0, "rate_out": 0.0}, KernelStatus.IDLE),
        ({"waiting": None, "rate_out": 10.0}, KernelStatus.BUSY),
        # A persistent kernel whose compiled loop stopped beating, though nothing queued.
        ({"metrics": {"persistent": True, "stalled": True}}, KernelStatus.STALLED),
        ({"metrics": {"persistent": True, "stalled": False}}, KernelStatus.IDLE),
        ({"state": "DEACTIVATED", "metrics": {"stalled": True}}, KernelStatus.PAUSED),
    ],
)
def test_status_word(fields: dict[str, Any], expected: KernelStatus) -> None:
    assert classify_kernel(kernel(**fields)) is expected


def test_stalled_needs_input_and_silence_longer_than_the_threshold() -> None:
    at = kernel(inbox_depth=1, waiting=0, last_progress_s=STALL_AFTER_S)
    past = kernel(inbox_depth=1, waiting=0, last_progress_s=STALL_AFTER_S + 0.01)
    assert classify_kernel(at) is KernelStatus.BUSY
    assert classify_kernel(past) is KernelStatus.STALLED
    assert classify_kernel(past, stall_after_s=10.0) is KernelStatus.BUSY
    # Silence with nothing queued is idleness, not a stall.
    assert classify_kernel(kernel(last_progress_s=600.0)) is KernelStatus.IDLE


def test_an_empty_or_garbled_kernel_entry_still_gets_a_word() -> None:
    assert classify_kernel({}) is KernelStatus.IDLE
    garbled = {"state": 7, "blocked": "x", "inbox_depth": float("nan"), "waiting": [1]}
    assert classify_kernel(garbled) in set(KernelStatus)


@given(KERNEL)
def test_classify_never_raises(entry: dict[str, Any]) -> None:
    assert isinstance(classify_kernel(entry), KernelStatus)


@given(STATUS | st.none())
def test_parse_never_raises(document: dict[str, Any] | None) -> None:
    parsed = parse_status(document)
    assert parsed.throughput >= 0 or parsed.throughput < 0  # a real number, not NaN
    assert sum(parsed.status_counts.values()) == len(parsed.kernels)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "--"),
        (0, "--"),
        (0.0, "--"),
        (7, "7"),
        (0.4, "0.4"),
        (999, "999"),
        (12_345, "12.3k"),
        (40_100.0, "40.1k"),
        (999_999, "1.0M"),
        (1_234_567, "1.2M"),
        (3.2e9, "3.2G"),
        (-1500, "-1.5k"),
        (float("inf"), "--"),
    ],
)
def test_human_count(value: float | None, text: str) -> None:
    assert human_count(value) == text


def test_total_rate_reads_like_vector_top() -> None:
    assert total_rate(51_200, 40_100.0) == "51.2k (40.1k/s)"
    assert total_rate(10, 0.0) == "10 (--/s)"
    assert total_rate(0, 0.0) == "--"
    assert total_rate(None, None) == "--"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "--"),
        (-1, "--"),
        (12.5, "12.5s"),
        (185, "3m05s"),
        (7380, "2h03m"),
        (3 * 86400 + 7200, "3d02h"),
    ],
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


def test_pick_rows_keeps_the_urgent_ones_in_their_order() -> None:
    rows = list(range(100))
    shown, hidden = pick_rows(rows, 5, lambda r: r in (42, 97))
    assert shown == [0, 1, 2, 42, 97]
    assert len(hidden) == 95
    assert pick_rows(rows, None, bool) == (rows, [])
