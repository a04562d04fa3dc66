"""Reading the status document: tolerant field access, the kernel status word, human units.

Every output of the dashboard layer (the rich view, the plain CI line, the Prometheus
endpoint) starts from the same plain dict that ``ringctl ps NAME --json`` prints and the
supervisor's ``watch`` stream sends (documented in ``docs/dashboard.md``). That document
crosses a process boundary and is "add fields, never rename", so it may come from an
older or newer supervisor: here every key may be missing, ``None`` or of the wrong type,
and nothing in this module raises on such input. It is parsed once into the frozen rows
below so the renderers never repeat the defensive checks.

Pure functions only: no I/O, no clock, no rich, no prometheus_client.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any, Final, TypeVar, cast

from ringctl._printable import printable

__all__ = [
    "STALL_AFTER_S",
    "Event",
    "KernelRow",
    "KernelStatus",
    "Phase",
    "QueueRow",
    "Status",
    "classify_kernel",
    "human_count",
    "human_duration",
    "parse_status",
    "pick_rows",
    "total_rate",
]

#: A kernel with input waiting and no progress for longer than this is "stalled". Two
#: seconds is eight refreshes at the default rate: long enough that a kernel busy on one
#: slow message between snapshots is not flagged, short enough that a person sees it.
STALL_AFTER_S: Final = 2.0

#: Lifecycle states (``docs/concepts.md``), as the document spells them.
KERNEL_STATES: Final = (
    "CREATED",
    "LAUNCHED",
    "ACTIVE",
    "DEACTIVATED",
    "TERMINATING",
    "TERMINATED",
)

#: Overall topology states, as the document spells them.
TOPOLOGY_STATES: Final = (
    "starting",
    "running",
    "paused",
    "draining",
    "completed",
    "failed",
    "stopped",
)

#: Topology states after which nothing will change: a live view may stop refreshing.
FINAL_TOPOLOGY_STATES: Final = frozenset({"completed", "failed", "stopped"})


class KernelStatus(StrEnum):
    """What a kernel is doing right now, in one word a person can act on.

    The lifecycle state says what a kernel *may* do; this word says what it *is* doing.
    The first four follow Flink's busy / idle / backpressured split, plus **stalled**,
    which none of the anchors tells apart and which is the one people need most: input
    is waiting, the kernel is not blocked on its output, and yet nothing moves.
    """

    IDLE = "idle"  # waiting in receive, nothing queued
    BUSY = "busy"  # processing, or able to
    BACKPRESSURED = "backpressured"  # a replica waits for space on a full downstream queue
    STALLED = "stalled"  # input queued, not blocked, no progress for a while
    PAUSED = "paused"  # DEACTIVATED: messages keep queueing
    DONE = "done"  # the body returned on its own (a finite source)
    FAILED = "failed"  # TERMINATED with an error
    STARTING = "starting"  # CREATED / LAUNCHED: not yet taking messages
    STOPPING = "stopping"  # TERMINATING: draining out
    STOPPED = "stopped"  # TERMINATED cleanly
    RESTARTING = "restarting"  # failed, waiting out its restart backoff


#: Words that ask a person to look: sorted first when not every row fits.
ATTENTION: Final = frozenset(
    {KernelStatus.FAILED, KernelStatus.STALLED, KernelStatus.BACKPRESSURED}
)


# --------------------------------------------------------------------------- readers

_BIGGEST: Final = 2**1023  # ints beyond this overflow a double

_ONE_LINE: Final = {ord(c): " " for c in "\t\n\r\v\f"}


def number(value: object) -> float | None:
    """A finite float from a JSON value, or ``None`` (missing, text, NaN, inf, too large)."""
    # Exact-type fast paths first: a frame reads ~25 numbers per kernel.
    kind = type(value)
    if kind is float:
        real = cast(float, value)
        return real if math.isfinite(real) else None
    if kind is int:
        whole = cast(int, value)
        return float(whole) if -_BIGGEST < whole < _BIGGEST else None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        try:
            result = float(value)
        except OverflowError:  # an int beyond a double's range
            return None
        return result if math.isfinite(result) else None
    return None


def count(value: object) -> int | None:
    """A whole count from a JSON value (``number`` truncated), or ``None``."""
    result = number(value)
    return None if result is None else int(result)


def text(value: object) -> str | None:
    """A one-line string from a JSON scalar, or ``None`` for anything else.

    Line breaks and tabs become spaces and other control characters are shown escaped
    (``\\x1b``): a kernel id or an error message must neither tear a table row nor move
    the terminal's cursor.
    """
    if value is None or isinstance(value, bool):
        return None if value is None else str(value).lower()
    if isinstance(value, str):
        return printable(value.translate(_ONE_LINE))
    if isinstance(value, int | float):
        return str(value)
    return None


def _get(mapping: Mapping[str, Any], key: str) -> object:
    if type(mapping) is dict:  # what json.loads and the supervisor give: cannot raise
        return mapping.get(key)
    try:
        return mapping.get(key)
    except Exception:  # a hostile Mapping; the document is data, never trust it
        return None


def _mappings(value: object) -> list[Mapping[str, Any]]:
    """The Mapping items of a JSON list; anything else in it is skipped, not fatal."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return []
    return [item for item in value if isinstance(item, Mapping)]


# --------------------------------------------------------------------------- the status word


def classify_kernel(
    kernel: Mapping[str, Any], *, stall_after_s: float = STALL_AFTER_S
) -> KernelStatus:
    """The status word for one kernel entry of the status document.

    Precedence, first match wins (end states before activity, so a finished kernel with
    a stale inbox reads "done", not "stalled"):

    0. a ``restart_in_s`` (the supervisor waits out a restart backoff) → restarting
    1. ``TERMINATED`` with a ``last_error`` → failed
    2. ``completed`` → done
    3. ``TERMINATED`` → stopped; ``TERMINATING`` → stopping
    4. ``CREATED`` / ``LAUNCHED`` → starting; ``DEACTIVATED`` → paused
    5. ACTIVE (or a state this version does not know): ``blocked > 0`` → backpressured;
       ``inbox_depth > 0`` and ``last_progress_s > stall_after_s`` → stalled; a
       persistent kernel whose heartbeat froze (``metrics.stalled`` true) → stalled;
       nothing queued and a replica ``waiting`` → idle; otherwise busy.

    Where ``waiting`` is missing (an older runtime), "nothing queued and no messages
    moving" stands in for idle.
    """
    state = (text(_get(kernel, "state")) or "").upper()
    if number(_get(kernel, "restart_in_s")) is not None:
        return KernelStatus.RESTARTING
    if state == "TERMINATED" and text(_get(kernel, "last_error")):
        return KernelStatus.FAILED
    if _get(kernel, "completed") is True:
        return KernelStatus.DONE
    if state == "TERMINATED":
        return KernelStatus.STOPPED
    if state == "TERMINATING":
        return KernelStatus.STOPPING
    if state in ("CREATED", "LAUNCHED"):
        return KernelStatus.STARTING
    if state == "DEACTIVATED":
        return KernelStatus.PAUSED
    metrics = _get(kernel, "metrics")
    if isinstance(metrics, Mapping) and metrics.get("stalled") is True:
        return KernelStatus.STALLED  # its compiled loop stopped beating: stuck in a handler
    if (count(_get(kernel, "blocked")) or 0) > 0:
        return KernelStatus.BACKPRESSURED
    depth = count(_get(kernel, "inbox_depth")) or 0
    quiet_for = number(_get(kernel, "last_progress_s"))
    if depth > 0:
        if quiet_for is not None and quiet_for > stall_after_s:
            return KernelStatus.STALLED
        return KernelStatus.BUSY
    waiting = count(_get(kernel, "waiting"))
    if waiting is not None:
        return KernelStatus.IDLE if waiting > 0 else KernelStatus.BUSY
    moving = (number(_get(kernel, "rate_in")) or 0.0) + (number(_get(kernel, "rate_out")) or 0.0)
    return KernelStatus.IDLE if moving == 0 else KernelStatus.BUSY


# --------------------------------------------------------------------------- human units

_UNITS: Final = ("k", "M", "G", "T", "P")


def human_count(value: float | None) -> str:
    """``12.3k``, ``1.2M``; zero and unknown read ``--`` (as in ``vector top``).

    A dash rather than ``0`` makes the columns that move stand out at a glance.
    """
    if value is None or value == 0 or not math.isfinite(value):
        return "--"
    sign = "-" if value < 0 else ""
    size = abs(value)
    if size < 999.5:
        # Counts are whole; a slow rate (0.4/s) keeps a decimal so it does not read 0.
        return f"{sign}{size:.1f}" if size < 10 and size != int(size) else f"{sign}{size:.0f}"
    if size >= 1e18:
        return f"{sign}{size:.2g}"
    for unit in _UNITS:
        size /= 1000.0
        if size < 999.95:
            return f"{sign}{size:.1f}{unit}"
    return f"{sign}{size:.1f}{_UNITS[-1]}"  # pragma: no cover - bounded by the 1e18 branch


def total_rate(total: float | None, rate: float | None) -> str:
    """A ``vector top`` cell: ``51.2k (40.1k/s)``; ``--`` when both are zero or unknown."""
    if not total and not rate:
        return "--"
    return f"{human_count(total)} ({human_count(rate)}/s)"


def human_duration(seconds: float | None) -> str:
    """``12.5s``, ``3m05s``, ``2h03m``, ``4d02h``: two units at most, so it stays short."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def human_latency(us: float | None) -> str:
    """Microseconds to ``17µs``, ``3.1ms``, ``1.2s``; unknown reads ``--``."""
    if us is None or us < 0:
        return "--"
    if us < 10:
        return f"{us:.1f}µs"
    if us < 1000:
        return f"{us:.0f}µs"
    if us < 1e6:
        return f"{us / 1e3:.1f}ms"
    return f"{us / 1e6:.1f}s"


# --------------------------------------------------------------------------- parsed rows


@dataclass(frozen=True, slots=True)
class KernelRow:
    """One kernel entry, read tolerantly; ``None`` wherever the document had no usable value."""

    id: str
    state: str | None
    status: KernelStatus
    backend: str | None
    device: str | None
    backend_note: str | None
    replicas: int | None
    entry: str | None
    node: str | None
    messages_in: float | None
    messages_out: float | None
    rate_in: float | None
    rate_out: float | None
    inbox_depth: int | None
    inbox_capacity: int | None
    inbox_high_water: int | None
    drops: float | None
    errors: float | None
    restarts: float | None
    latency_p50_us: float | None
    latency_p99_us: float | None
    last_error: str | None
    last_progress_s: float | None
    waiting: int | None
    blocked: int | None
    metrics: tuple[tuple[str, float], ...] = ()  # the numeric entries of ctx.metrics
    restart_in_s: float | None = None  # waiting out a restart backoff
    lost: float | None = None  # queued for it after it failed for good
    left: float | None = None  # queued for it when it was stopped on request
    in_doubt: float | None = None  # held by a process of it that died


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One queue edge ``producer.port → consumer``."""

    source: str
    target: str
    name: str | None
    depth: int | None
    capacity: int | None
    backpressure: str | None
    messages: float | None
    drops: float | None
    high_water: int | None
    blocked_s: float | None
    delivered: float | None = None
    lost: float | None = None
    left: float | None = None
    in_doubt: float | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the event log (pause, resume, restart, failure, info)."""

    t: float | None
    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """A kernel a phase waits on: ``waiting on X: N queued, T s left``."""

    kernel: str
    queued: int | None
    seconds_left: float | None


@dataclass(frozen=True, slots=True)
class Phase:
    """Launch / activate / drain progress, present only while one is under way."""

    name: str
    done: int | None
    total: int | None
    waiting_on: tuple[Waiting, ...]


@dataclass(frozen=True, slots=True)
class Status:
    """The whole status document, read once; what every renderer draws from."""

    name: str | None
    file: str | None
    engine: str | None
    uptime_s: float | None
    state: str | None
    phase: Phase | None
    events: tuple[Event, ...]
    kernels: tuple[KernelRow, ...]
    queues: tuple[QueueRow, ...]
    status_counts: dict[KernelStatus, int] = field(default_factory=dict)
    #: While the kernels' event loop is blocked: what holds it, in words
    #: (``loop blocked 3.0 s in kernel `slow```); None while it runs.
    loop_blocked: str | None = None
    #: Seconds the kernel figures are old when the loop did not answer in time.
    stale_s: float | None = None

    @property
    def throughput(self) -> float:
        """Messages per second taken in across all kernels: the topology's pace.

        Inputs, not outputs: a source's output is its consumer's input, so summing both
        would count every hop twice, and sources (no inbox) do not inflate the figure.
        """
        return sum(k.rate_in or 0.0 for k in self.kernels)

    @property
    def messages_in(self) -> float:
        return sum(k.messages_in or 0.0 for k in self.kernels)

    @property
    def messages_out(self) -> float:
        return sum(k.messages_out or 0.0 for k in self.kernels)

    @property
    def drops(self) -> float:
        return sum(k.drops or 0.0 for k in self.kernels)

    @property
    def errors(self) -> float:
        return sum(k.errors or 0.0 for k in self.kernels)

    @property
    def last_event(self) -> Event | None:
        return self.events[-1] if self.events else None


def _parse_kernel(raw: Mapping[str, Any], index: int, stall_after_s: float) -> KernelRow:
    # A bound dict.get where possible: ~25 lookups a kernel, every frame.
    get: Callable[[str], object] = raw.get if type(raw) is dict else partial(_get, raw)
    state = text(get("state"))
    return KernelRow(
        id=text(get("id")) or f"#{index}",
        state=state.upper() if state else None,
        status=classify_kernel(raw, stall_after_s=stall_after_s),
        backend=text(get("backend")),
        device=text(get("device")),
        backend_note=text(get("backend_note")),
        replicas=count(get("replicas")),
        entry=text(get("entry")),
        node=text(get("node")),
        messages_in=number(get("messages_in")),
        messages_out=number(get("messages_out")),
        rate_in=number(get("rate_in")),
        rate_out=number(get("rate_out")),
        inbox_depth=count(get("inbox_depth")),
        inbox_capacity=count(get("inbox_capacity")),
        inbox_high_water=count(get("inbox_high_water")),
        drops=number(get("drops")),
        errors=number(get("errors")),
        restarts=number(get("restarts")),
        latency_p50_us=number(get("latency_p50_us")),
        latency_p99_us=number(get("latency_p99_us")),
        last_error=text(get("last_error")),
        last_progress_s=number(get("last_progress_s")),
        waiting=count(get("waiting")),
        blocked=count(get("blocked")),
        metrics=_numeric_items(get("metrics")),
        restart_in_s=number(get("restart_in_s")),
        lost=number(get("lost")),
        left=number(get("left")),
        in_doubt=number(get("in_doubt")),
    )


def _numeric_items(value: object) -> tuple[tuple[str, float], ...]:
    """The numeric entries of a kernel's own ``metrics`` dict; the rest has no gauge."""
    if not isinstance(value, Mapping):
        return ()
    items = []
    for key, raw in value.items():
        n = number(raw)
        if n is not None and not isinstance(raw, bool):
            items.append((text(key) or str(key), n))
    return tuple(items)


def _parse_queue(raw: Mapping[str, Any]) -> QueueRow:
    return QueueRow(
        source=text(_get(raw, "from")) or "?",
        target=text(_get(raw, "to")) or "?",
        name=text(_get(raw, "name")),
        depth=count(_get(raw, "depth")),
        capacity=count(_get(raw, "capacity")),
        backpressure=text(_get(raw, "backpressure")),
        messages=number(_get(raw, "messages")),
        drops=number(_get(raw, "drops")),
        high_water=count(_get(raw, "high_water")),
        delivered=number(_get(raw, "delivered")),
        lost=number(_get(raw, "lost")),
        left=number(_get(raw, "left")),
        in_doubt=number(_get(raw, "in_doubt")),
        blocked_s=number(_get(raw, "blocked_s")),
    )


def _parse_phase(raw: object) -> Phase | None:
    if not isinstance(raw, Mapping):
        return None
    waiting = tuple(
        Waiting(
            kernel=text(_get(w, "kernel")) or "?",
            queued=count(_get(w, "queued")),
            seconds_left=number(_get(w, "seconds_left")),
        )
        for w in _mappings(_get(raw, "waiting_on"))
    )
    return Phase(
        name=text(_get(raw, "name")) or "phase",
        done=count(_get(raw, "done")),
        total=count(_get(raw, "total")),
        waiting_on=waiting,
    )


def parse_status(
    document: Mapping[str, Any] | None, *, stall_after_s: float = STALL_AFTER_S
) -> Status:
    """Read a status document once, tolerating missing, extra, ``None`` and mistyped keys."""
    doc: Mapping[str, Any] = document if isinstance(document, Mapping) else {}
    kernels = tuple(
        _parse_kernel(raw, i, stall_after_s)
        for i, raw in enumerate(_mappings(_get(doc, "kernels")))
    )
    counts: dict[KernelStatus, int] = {}
    for k in kernels:
        counts[k.status] = counts.get(k.status, 0) + 1
    events = tuple(
        Event(
            t=number(_get(e, "t")),
            kind=text(_get(e, "kind")) or "info",
            text=text(_get(e, "text")) or "",
        )
        for e in _mappings(_get(doc, "events"))
    )
    state = text(_get(doc, "state"))
    loop = _get(doc, "loop")
    blocked = None
    if isinstance(loop, Mapping) and _get(loop, "status") == "blocked":
        blocked = text(_get(loop, "message")) or "loop blocked"
    return Status(
        name=text(_get(doc, "name")),
        file=text(_get(doc, "file")),
        engine=text(_get(doc, "engine")),
        uptime_s=number(_get(doc, "uptime_s")),
        state=state.lower() if state else None,
        phase=_parse_phase(_get(doc, "phase")),
        events=events,
        kernels=kernels,
        queues=tuple(_parse_queue(q) for q in _mappings(_get(doc, "queues"))),
        status_counts=counts,
        loop_blocked=blocked,
        stale_s=number(_get(doc, "stale_s")),
    )


RowT = TypeVar("RowT")


def pick_rows(
    rows: Sequence[RowT], limit: int | None, urgent: Callable[[RowT], bool]
) -> tuple[list[RowT], list[RowT]]:
    """At most ``limit`` rows, the urgent ones first, then shown in their original order.

    With a thousand kernels and forty lines of terminal, the rows a person needs are the
    failed, stalled and backpressured ones; showing the first forty would hide them.
    Returns ``(shown, hidden)``.
    """
    if limit is None or len(rows) <= limit:
        return list(rows), []
    limit = max(limit, 0)
    keep: set[int] = set()
    for i, row in enumerate(rows):
        if len(keep) >= limit:
            break
        if urgent(row):
            keep.add(i)
    for i in range(len(rows)):
        if len(keep) >= limit:
            break
        keep.add(i)
    shown = [row for i, row in enumerate(rows) if i in keep]
    hidden = [row for i, row in enumerate(rows) if i not in keep]
    return shown, hidden
