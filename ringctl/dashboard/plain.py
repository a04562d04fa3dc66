"""Output without a terminal: one plain progress line per interval, or one JSON line.

When stdout is a CI log or a pipe, a live view is noise (cursor moves, redraws). Instead:
one line per ``--interval`` with totals and per-kernel rates that a person can read in a
CI log, or ``--json-stream``: one status document per line, the same structure as
``ringctl ps NAME --json``, for other tools (``jq``, log shippers).

:func:`plain_line` and :func:`json_line` are pure; :func:`run_plain` is the loop that
``ringctl up --no-dashboard`` / ``--json-stream`` runs, with its clock, sleep and
output injectable so that tests never sleep for luck.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Final

from ringctl.dashboard._status import (
    ATTENTION,
    FINAL_TOPOLOGY_STATES,
    STALL_AFTER_S,
    EventDoc,
    human_count,
    human_duration,
    parse_status,
    pick_rows,
)

__all__ = [
    "StatusPoller",
    "StopReason",
    "event_line",
    "json_line",
    "plain_line",
    "run_plain",
]

#: Per-kernel entries on one plain line; the rest are summarised (urgent ones kept).
MAX_KERNELS_PER_LINE: Final = 12

StatusGetter = Callable[[], Mapping[str, Any] | None]


class StopReason(StrEnum):
    """Why a dashboard loop returned; the caller maps it to what happens next.

    ``ringctl top`` just detaches on any of them; ``ringctl up`` starts a graceful down
    on ``INTERRUPTED`` and ``QUIT``, and picks its exit code from the final state on
    ``FINISHED``.
    """

    FINISHED = "finished"  # the topology reached completed / failed / stopped
    QUIT = "quit"  # the user pressed q
    INTERRUPTED = "interrupted"  # Ctrl-C (KeyboardInterrupt) while the loop ran
    STOPPED = "stopped"  # the caller's should_stop() said so
    LOST = "lost"  # no status for longer than give_up_after_s


def plain_line(
    status: Mapping[str, Any] | None,
    *,
    stall_after_s: float = STALL_AFTER_S,
    max_kernels: int = MAX_KERNELS_PER_LINE,
) -> str:
    """One line for a CI log: uptime, name, state, totals, then each kernel's rate.

    ``[   12.5s] quickstart running · in 51.2k out 51.2k · 40.1k msg/s · drops -- ·
    errors -- | source 40.1k/s busy, square 39.9k/s stalled, sink 40.1k/s idle``

    No colour and no width: a log viewer wraps it, and ``grep stalled`` finds it. The
    uptime is padded so consecutive lines align.
    """
    if status is None:
        return "[      --] no status yet"
    st = parse_status(status, stall_after_s=stall_after_s)
    head = f"[{human_duration(st.uptime_s):>8}] {st.name or '(unnamed)'} {st.state or 'unknown'}"
    parts = [head if not st.loop_blocked else f"{head} BLOCKED ({st.loop_blocked})"]
    if st.phase is not None:
        phase = st.phase
        progress = f"{phase.name} {phase.done if phase.done is not None else '?'}"
        if phase.total is not None:
            progress += f"/{phase.total}"
        for w in phase.waiting_on[:3]:
            progress += f" (waiting on {w.kernel}: {w.queued or 0} queued"
            if w.seconds_left is not None:
                progress += f", {w.seconds_left:.1f} s left"
            progress += ")"
        parts.append(progress)
    parts.append(f"in {human_count(st.messages_in)} out {human_count(st.messages_out)}")
    parts.append(f"{human_count(st.throughput)} msg/s")
    parts.append(f"drops {human_count(st.drops)}")
    parts.append(f"errors {human_count(st.errors)}")
    line = " · ".join(parts)
    shown, hidden = pick_rows(st.kernels, max_kernels, lambda k: k.status in ATTENTION)
    if shown:
        cells = []
        for k in shown:
            # A source has no inbox: its output rate is its pace.
            rate = k.rate_in if k.rate_in else k.rate_out
            cells.append(f"{k.id} {human_count(rate)}/s {k.status.value}")
        if hidden:
            cells.append(f"+{len(hidden)} more{_hidden_summary(hidden)}")
        line += " | " + ", ".join(cells)
    return line


def _hidden_summary(hidden: list[Any]) -> str:
    urgent = Counter(k.status for k in hidden if k.status in ATTENTION)
    if not urgent:
        return ""
    return " (" + ", ".join(f"{n} {s.value}" for s, n in urgent.items()) + ")"


def event_line(event: EventDoc) -> str:
    """``[   10.2s] event pause: paused square``: events get a line of their own in CI logs."""
    return f"[{human_duration(event.t):>8}] event {event.kind}: {event.text}"


def _finite(value: Any) -> Any:
    """The document with NaN / inf replaced by ``null``: strict JSON for other tools."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def json_line(status: Mapping[str, Any]) -> str:
    """The status document as one line of strict JSON (``--json-stream``).

    Exactly the ``ps --json`` structure, nothing added, so a consumer reads both the
    same way; one document per line so ``jq -c``, ``tail -f`` and log shippers can
    split the stream without a parser that understands nesting.
    """
    return json.dumps(_finite(status), separators=(",", ":"), default=str, allow_nan=False)


class StatusPoller:
    """Calls ``get_status`` once per tick and remembers the last good document.

    A failed call (an exception, or ``None``) keeps the last document on screen and
    turns into a ``connection`` line, instead of a blank frame or a traceback: the
    supervisor may be busy, restarting a kernel, or gone, and the person watching
    should see which.
    """

    def __init__(
        self,
        get_status: StatusGetter,
        *,
        give_up_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._get_status = get_status
        self._give_up_after_s = give_up_after_s
        self._clock = clock
        self.last: Mapping[str, Any] | None = None
        self.connection: str | None = None
        self._failing_since: float | None = None

    def poll(self) -> Mapping[str, Any] | None:
        """Take one snapshot; returns the last good document (possibly an older one)."""
        now = self._clock()
        try:
            status = self._get_status()
        except Exception as exc:  # the view must outlive a flaky supervisor
            status = None
            problem = f"status unavailable: {type(exc).__name__}: {exc}"
        else:
            problem = "no status from the supervisor"
        if status is not None:
            self.last = status
            self.connection = None
            self._failing_since = None
        else:
            if self._failing_since is None:
                self._failing_since = now
            waited = now - self._failing_since
            self.connection = problem + (f" ({waited:.0f} s)" if waited >= 1 else "")
        return self.last

    @property
    def lost(self) -> bool:
        """True once nothing good has come for longer than ``give_up_after_s``."""
        if self._give_up_after_s is None or self._failing_since is None:
            return False
        return self._clock() - self._failing_since > self._give_up_after_s

    @property
    def finished(self) -> bool:
        """True when the last document says the topology will not change any more."""
        state = self.last.get("state") if self.last is not None else None
        return isinstance(state, str) and state.lower() in FINAL_TOPOLOGY_STATES


def run_plain(
    get_status: StatusGetter,
    *,
    interval_s: float = 2.0,
    json_stream: bool = False,
    write: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    stop_when_finished: bool = True,
    give_up_after_s: float | None = None,
    stall_after_s: float = STALL_AFTER_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> StopReason:
    """Write a line per ``interval_s`` until the topology finishes or the caller stops it.

    One snapshot per interval, never more, taken by calling ``get_status`` from this
    thread. ``write`` gets each line without its newline (default: stdout, flushed, so
    CI shows lines as they come). Plain mode also writes each new event on a line of its
    own. The last frame is always written, so a CI log ends with the final totals.

    Ctrl-C returns :attr:`StopReason.INTERRUPTED` rather than raising: ``up`` decides
    whether that means a graceful down.
    """
    emit = write if write is not None else _stdout_line
    poller = StatusPoller(get_status, give_up_after_s=give_up_after_s, clock=clock)
    last_event: EventDoc | None = None
    try:
        while True:
            status = poller.poll()
            if json_stream:
                if status is not None and poller.connection is None:
                    emit(json_line(status))
            else:
                if status is not None:
                    events = parse_status(status).events
                    for event in _new_events(events, last_event):
                        emit(event_line(event))
                    if events:
                        last_event = events[-1]
                line = plain_line(status, stall_after_s=stall_after_s)
                if poller.connection:
                    line += f" · {poller.connection}"
                emit(line)
            if stop_when_finished and poller.finished:
                return StopReason.FINISHED
            if poller.lost:
                return StopReason.LOST
            if should_stop is not None and should_stop():
                return StopReason.STOPPED
            sleep(interval_s)
    except KeyboardInterrupt:
        return StopReason.INTERRUPTED


def _new_events(events: tuple[EventDoc, ...], last: EventDoc | None) -> tuple[EventDoc, ...]:
    """The events after ``last``; all of them if ``last`` is no longer in the list.

    The document carries a bounded tail of events, so its length stops growing once the
    tail is full; finding the last one shown is what tells new events apart.
    """
    seen = [i for i, event in enumerate(events) if event == last]
    return events[seen[-1] + 1 :] if seen else events


def _stdout_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
