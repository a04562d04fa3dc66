"""The dashboard's side of the status document: the status words that ask for a look,
human units, and which rows fit.

The document itself (its classes, the tolerant reader ``parse_status`` and the status
word of a kernel) is defined once, in ``ringctl.orchestrator.status``; every output of
the dashboard layer (the rich view, the plain CI line, the Prometheus endpoint) reads it
through there.

Pure functions only: no I/O, no clock, no rich, no prometheus_client.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from ringctl.orchestrator.status import (
    FINAL_TOPOLOGY_STATES,
    KERNEL_STATES,
    STALL_AFTER_S,
    TOPOLOGY_STATES,
    EventDoc,
    KernelDoc,
    KernelStatus,
    QueueDoc,
    StatusDocument,
    classify_kernel,
)
from ringctl.orchestrator.status import read_status as parse_status

__all__ = [
    "ATTENTION",
    "FINAL_TOPOLOGY_STATES",
    "KERNEL_STATES",
    "STALL_AFTER_S",
    "TOPOLOGY_STATES",
    "EventDoc",
    "KernelDoc",
    "KernelStatus",
    "QueueDoc",
    "StatusDocument",
    "classify_kernel",
    "human_count",
    "human_duration",
    "human_latency",
    "parse_status",
    "pick_rows",
    "total_rate",
]

#: Words that ask a person to look: sorted first when not every row fits.
ATTENTION: Final = frozenset(
    {KernelStatus.FAILED, KernelStatus.STALLED, KernelStatus.BACKPRESSURED}
)


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
    keep = set([i for i, row in enumerate(rows) if urgent(row)][:limit])
    keep.update([i for i in range(len(rows)) if i not in keep][: limit - len(keep)])
    shown = [row for i, row in enumerate(rows) if i in keep]
    hidden = [row for i, row in enumerate(rows) if i not in keep]
    return shown, hidden
