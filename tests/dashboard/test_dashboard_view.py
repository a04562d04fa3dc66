"""The rich view, checked the way a person would: render it to text and read it."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from dashboard_strategies import JSON, STATUS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from ringctl.dashboard import fill_bar, render, render_svg, render_text

Frame = Callable[..., str]
WIDTHS = [40, 60, 80, 120]


def lines_of(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


@pytest.mark.parametrize("width", WIDTHS)
def test_every_kernel_has_a_row_with_its_status_word(
    status: dict[str, Any], frame: Frame, width: int
) -> None:
    text = frame(status, width)
    rows = {line.split()[0]: line for line in lines_of(text) if line[:1].isalpha()}
    assert rows["source"].split()[-2:] != []
    for kernel_id, word in [
        ("source", "busy"),
        ("square", "stalled"),
        ("scale", "backpressured"),
        ("sink", "idle"),
        ("audit", "failed"),
    ]:
        assert kernel_id in rows, f"no row for {kernel_id} at width {width}:\n{text}"
        assert word in rows[kernel_id], f"{kernel_id} should read {word} at width {width}"


@pytest.mark.parametrize("width", WIDTHS)
def test_narrow_terminals_lose_columns_not_lines(
    status: dict[str, Any], frame: Frame, width: int
) -> None:
    text = frame(status, width)
    assert all(len(line) <= width for line in lines_of(text))
    header = next(line for line in lines_of(text) if line.startswith("kernel"))
    columns = header.split()
    assert columns[:2] == ["kernel", "status"] or columns[:3] == ["kernel", "state", "status"]
    if width <= 40:
        assert "out" not in columns
    if width >= 120:
        assert {"in", "out", "inbox", "drops", "errors"} <= set(columns)


def test_wide_terminal_shows_the_whole_row(status: dict[str, Any], frame: Frame) -> None:
    text = frame(status, 200)
    square = next(line for line in lines_of(text) if line.startswith("square"))
    assert "square \u00d72" in square  # replicas
    assert "ACTIVE" in square
    assert "cuda:0" in square
    assert "51.2k (40.1k/s)" in square  # in: total (rate/s)
    assert "███····│·· 312/1024" in square  # depth against capacity, high-water mark
    assert "3.1µs/17µs" in square  # p50/p99
    assert "4.2s ago" in square  # last progress, the evidence for "stalled"


def test_zero_reads_as_a_dash(status: dict[str, Any], frame: Frame) -> None:
    text = frame(status, 200)
    sink = next(line for line in lines_of(text) if line.startswith("sink"))
    # messages out, drops, errors, restarts are all zero for the sink
    assert sink.count("--") >= 4
    assert " 0 " not in sink.replace("0/1024", "")


def test_header(status: dict[str, Any], frame: Frame) -> None:
    head = frame(status, 120).split("\nkernel")[0]
    for expected in [
        "quickstart",
        "RUNNING",
        "up 12.5s",
        "92.5k msg/s",  # inputs of all kernels: 40.1k + 12.3k + 40.1k
        "topologies/quickstart.yaml",
        "engine local",
        "1 stalled",
        "1 failed",
        "last event: [10.2s] pause: paused square",
    ]:
        assert expected in head, expected


def test_queue_rows(status: dict[str, Any], frame: Frame) -> None:
    text = frame(status, 120)
    edge = next(line for line in lines_of(text) if line.startswith("square.out → scale"))
    assert "1000/1024" in edge
    assert "drop_newest" in edge
    assert edge.split()[edge.split().index("drop_newest") + 1] == "7"  # drops
    assert "source.out → square" in text
    assert "scale.out → sink" in text


def test_notes_explain_the_problems(status: dict[str, Any], frame: Frame) -> None:
    text = frame(status, 120)
    assert "! square: 312 queued, no progress for 4.2s" in text
    assert "✗ audit: ZeroDivisionError: division by zero" in text
    assert "* scale: auto: no usable GPU, running on cpu" in text


def test_phase_progress_while_launching_and_draining(status: dict[str, Any], frame: Frame) -> None:
    status["state"] = "starting"
    status["phase"] = {"name": "launch", "done": 3, "total": 5, "waiting_on": []}
    assert "launch ██████···· 3/5 kernels launched" in frame(status, 80)
    status["state"] = "draining"
    status["phase"] = {
        "name": "drain",
        "done": 1,
        "total": 5,
        "waiting_on": [{"kernel": "square", "queued": 312, "seconds_left": 4.2}],
    }
    text = frame(status, 80)
    assert "DRAINING" in text
    assert "1/5 kernels drained" in text
    assert "waiting on square: 312 queued, 4.2 s left" in text


def test_no_status_yet_and_a_lost_connection(status: dict[str, Any], frame: Frame) -> None:
    assert "waiting for the first status" in frame(None, 60)
    text = frame(status, 100, connection="status unavailable: ConnectionRefusedError (3 s)")
    assert "status unavailable: ConnectionRefusedError (3 s)" in text
    assert "square" in text  # the last document stays on screen


def test_fill_bar() -> None:
    assert fill_bar(312, 1024, 800).plain == "███····│·· 312/1024"
    assert fill_bar(0, 1024, 0).plain == "·········· 0/1024"
    assert fill_bar(1, 1024, None).plain == "█········· 1/1024"  # any depth shows
    assert fill_bar(5000, 1024, 5000).plain == "██████████ 5000/1024"  # clamped
    assert fill_bar(12, None).plain == "12"  # unbounded queue: just the depth
    assert fill_bar(0, 0).plain == "--"
    assert fill_bar(312, 1024, 800, label=False).plain == "███····│··"
    assert fill_bar(1000, 1024, 1024).plain == "██████████ 1000/1024"  # mark under the fill
    assert fill_bar(300, 1000, 1000).plain == "███······│ 300/1000"


def test_states_are_coloured(status: dict[str, Any]) -> None:
    console = Console(file=StringIO(), width=200, force_terminal=True, color_system="standard")
    console.print(render(status))
    out = console.file
    assert isinstance(out, StringIO)
    ansi = out.getvalue()
    assert "\x1b[1;31mstalled" in ansi  # bold red
    assert "\x1b[33mbackpressured" in ansi  # yellow
    assert "\x1b[32mbusy" in ansi  # green
    assert "\x1b[32mACTIVE" in ansi


def test_a_thousand_kernels_fit_the_terminal_and_keep_the_stalled_one(
    frame: Frame, make_chain: Callable[..., dict[str, Any]]
) -> None:
    document = make_chain(1000, stalled_at=900)
    console = Console(file=StringIO(), width=120, height=40, color_system=None)
    console.print(render(document, fit_height=True))
    out = console.file
    assert isinstance(out, StringIO)
    text = out.getvalue()
    assert len(lines_of(text)) <= 40
    assert "k0900" in text and "stalled" in text
    assert "more kernels (" in text
    # Not fitted (top --once into a file): every row.
    assert all(f"k{i:04d} " in frame(document, 120) for i in (0, 500, 999))


def test_max_kernel_rows(status: dict[str, Any], frame: Frame) -> None:
    text = frame(status, 120, max_kernel_rows=3)
    assert "… 2 more kernels (1 idle, 1 busy)" in text
    for urgent in ("square", "scale", "audit"):
        assert urgent in text


def test_render_is_pure(status: dict[str, Any], frame: Frame) -> None:
    view = render(status)
    console = Console(file=StringIO(), width=90, color_system=None)
    console.print(view)
    console.print(view)
    assert isinstance(console.file, StringIO)
    once = frame(status, 90)
    assert console.file.getvalue() == once + once


def test_render_text_and_svg(status: dict[str, Any]) -> None:
    assert "stalled" in render_text(status, width=80)
    svg = render_svg(status, width=100)
    assert svg.startswith("<svg")
    assert "quickstart" in svg
    assert "stalled" in svg


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=STATUS | JSON | st.none(), width=st.integers(min_value=10, max_value=220))
def test_any_document_any_width_never_crashes(document: Any, width: int) -> None:
    console = Console(file=StringIO(), width=width, height=30, color_system=None)
    console.print(render(document))
    console.print(render(document, fit_height=True, connection="lost"))
    out = console.file
    assert isinstance(out, StringIO)
    assert out.getvalue()


def test_a_kernel_waiting_for_its_restart_says_how_long(
    status: dict[str, Any], frame: Frame
) -> None:
    audit = next(k for k in status["kernels"] if k["id"] == "audit")
    audit["restart_in_s"] = 12.0  # the supervisor waits out the backoff
    text = frame(status, 160)
    row = next(line for line in lines_of(text) if line.startswith("audit"))
    assert "restarting in 12.0s" in row


def test_metrics_show_at_common_widths_cut_to_the_room_left(
    status: dict[str, Any], frame: Frame
) -> None:
    for kernel in status["kernels"]:
        kernel.setdefault("metrics", {}).update(anomalies=1330, total=333328333350000)
    for width in (150, 160, 200):
        text = frame(status, width)
        header = next(line for line in text.splitlines() if line.startswith("kernel"))
        assert header.rstrip().endswith("metrics"), (width, header)
        assert "anomalies=1330" in text
        assert max(len(line) for line in text.splitlines()) <= width
    assert "total=333.3T" in frame(status, 200)
