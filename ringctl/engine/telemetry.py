"""The cheap recorders behind the engines' snapshots.

The engines count with plain integer attributes on the message path; ``snapshot()``
turns those counters into the frozen structures of ``ringctl.engine.contract``, off the
message path, with the help of the recorders here (latency reservoir, rate windows).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["LatencySampler", "RateWindow", "merge_metrics"]

#: One message in this many has its processing time measured (keeps the hot path plain).
LATENCY_SAMPLE_EVERY: Final = 16
_LATENCY_RESERVOIR: Final = 512


def merge_metrics(per_replica: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One kernel's ``ctx.metrics`` from all its replicas: numbers add up, the rest is the
    last replica's. Counters (a sink's total, items seen) are what kernels publish most;
    a figure that must not add up (a mean) is best published by ``ctx.replica == 0`` only.
    """
    merged: dict[str, Any] = {}
    for metrics in per_replica:
        for key, value in metrics.items():
            previous = merged.get(key)
            both = _is_number(value) and _is_number(previous)
            merged[key] = previous + value if both else value
    return merged


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class LatencySampler:
    """A bounded reservoir of processing times, in seconds; percentiles on demand."""

    __slots__ = ("_samples",)

    def __init__(self) -> None:
        self._samples: deque[float] = deque(maxlen=_LATENCY_RESERVOIR)

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)

    def percentiles_us(self) -> tuple[float | None, float | None]:
        if not self._samples:
            return None, None
        ordered = sorted(self._samples)
        n = len(ordered)
        p50 = ordered[min(n - 1, n // 2)]
        p99 = ordered[min(n - 1, (n * 99) // 100)]
        return round(p50 * 1e6, 2), round(p99 * 1e6, 2)


class RateWindow:
    """Messages per second over a sliding window, fed by counter readings at snapshot time.

    The counters themselves are never touched on the message path: each snapshot adds
    one ``(time, count)`` reading and the rate is the slope across the window.
    """

    __slots__ = ("_readings", "_window", "rate")

    def __init__(self, window_s: float = 2.0) -> None:
        self._window = window_s
        self._readings: deque[tuple[float, int]] = deque()
        self.rate = 0.0  # as of the last reading

    def observe(self, count: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        readings = self._readings
        readings.append((now, count))
        while len(readings) > 2 and now - readings[1][0] >= self._window:
            readings.popleft()
        if len(readings) < 2:
            self.rate = 0.0
            return 0.0
        t0, c0 = readings[0]
        dt = now - t0
        self.rate = (count - c0) / dt if dt > 0 else 0.0
        return self.rate
