"""Plain progress lines and the JSON stream: what a CI log and another tool get."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ringctl.dashboard import StopReason, json_line, plain_line, run_plain


class FakeTime:
    """A clock that only moves when the loop sleeps: no test sleeps for luck."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def feed(*documents: Any) -> Callable[[], Any]:
    """``get_status`` returning each document in turn (exceptions are raised), then the last."""
    items: Iterator[Any] = iter(documents)
    last: list[Any] = [None]

    def get_status() -> Any:
        item = next(items, last[0])
        last[0] = item
        if isinstance(item, BaseException):
            raise item
        return item

    return get_status


def test_plain_line_reads_in_a_ci_log(status: dict[str, Any]) -> None:
    line = plain_line(status)
    assert "\n" not in line
    assert line.startswith("[   12.5s] quickstart running · ")
    assert "in 1.3M out 1.3M" in line
    assert "92.5k msg/s" in line
    assert "drops 7 · errors 3" in line
    assert "source 40.1k/s busy" in line  # a source's pace is its output rate
    assert "square 40.1k/s stalled" in line
    assert "scale 12.3k/s backpressured" in line
    assert "sink 40.1k/s idle" in line
    assert "audit --/s failed" in line


def test_plain_line_with_a_phase(status: dict[str, Any]) -> None:
    status["phase"] = {
        "name": "drain",
        "done": 2,
        "total": 5,
        "waiting_on": [{"kernel": "square", "queued": 312, "seconds_left": 4.2}],
    }
    assert "drain 2/5 (waiting on square: 312 queued, 4.2 s left)" in plain_line(status)


def test_plain_line_summarises_many_kernels_keeping_urgent_ones(
    make_chain: Callable[..., dict[str, Any]],
) -> None:
    line = plain_line(make_chain(500, stalled_at=321), max_kernels=5)
    assert "k0321 " in line and "stalled" in line
    assert "+495 more" in line


def test_plain_line_without_status() -> None:
    assert "no status yet" in plain_line(None)


def test_json_line_is_the_ps_json_document_on_one_line(status: dict[str, Any]) -> None:
    line = json_line(status)
    assert "\n" not in line
    assert json.loads(line) == status


def test_json_line_is_strict_json() -> None:
    line = json_line({"uptime_s": float("nan"), "kernels": [{"rate_in": float("inf")}]})
    assert json.loads(line) == {"uptime_s": None, "kernels": [{"rate_in": None}]}


def test_run_plain_writes_one_line_per_interval_until_the_topology_finishes(
    status: dict[str, Any],
) -> None:
    resumed = {**status, "events": [*status["events"], {"t": 13.0, "kind": "resume", "text": "x"}]}
    done = {**resumed, "state": "completed"}
    t, lines = FakeTime(), list[str]()
    reason = run_plain(
        feed(status, status, resumed, done),
        interval_s=2.0,
        write=lines.append,
        sleep=t.sleep,
        clock=t.clock,
    )
    assert reason is StopReason.FINISHED
    assert t.sleeps == [2.0, 2.0, 2.0]  # one snapshot per interval
    progress = [line for line in lines if " event " not in line]
    events = [line for line in lines if " event " in line]
    assert len(progress) == 4
    assert "quickstart completed" in progress[-1]  # the log ends with the final totals
    # each event once, when it first appears
    assert events == [
        "[    3.0s] event info: all 4 kernels active",
        "[   10.2s] event pause: paused square",
        "[   13.0s] event resume: x",
    ]


def test_run_plain_json_stream(status: dict[str, Any]) -> None:
    t, lines = FakeTime(), list[str]()
    done = {**status, "state": "failed"}
    reason = run_plain(
        feed(None, status, done), json_stream=True, write=lines.append, sleep=t.sleep, clock=t.clock
    )
    assert reason is StopReason.FINISHED
    assert [json.loads(line)["state"] for line in lines] == ["running", "failed"]


def test_run_plain_survives_a_flaky_supervisor_then_gives_up(status: dict[str, Any]) -> None:
    t, lines = FakeTime(), list[str]()
    reason = run_plain(
        feed(status, ConnectionRefusedError("no socket")),
        interval_s=1.0,
        give_up_after_s=3.0,
        write=lines.append,
        sleep=t.sleep,
        clock=t.clock,
    )
    assert reason is StopReason.LOST
    assert "status unavailable: ConnectionRefusedError: no socket" in lines[-1]
    assert "quickstart running" in lines[-1]  # still the last document's numbers


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({"should_stop": lambda: True}, StopReason.STOPPED)],
)
def test_run_plain_stops_when_told(
    status: dict[str, Any], kwargs: dict[str, Any], expected: StopReason
) -> None:
    t = FakeTime()
    assert run_plain(feed(status), write=lambda _: None, sleep=t.sleep, **kwargs) is expected


def test_run_plain_returns_on_ctrl_c(status: dict[str, Any]) -> None:
    t = FakeTime()
    reason = run_plain(feed(status, KeyboardInterrupt()), write=lambda _: None, sleep=t.sleep)
    assert reason is StopReason.INTERRUPTED
