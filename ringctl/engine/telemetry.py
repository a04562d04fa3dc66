"""Frozen telemetry snapshots, and the cheap recorders behind them.

The runtime counts with plain integer attributes on the message path; ``snapshot()``
turns those counters into the frozen structures below, off the message path. The
dashboard, ``ringctl ps``, ``--json`` and the Prometheus endpoint all read these same
structures (``as_dict()`` gives the ``--json`` shape documented in ``docs/cli.md``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

__all__ = [
    "KernelSnapshot",
    "LatencySampler",
    "QueueSnapshot",
    "RateWindow",
    "RuntimeSnapshot",
    "merge_metrics",
]

#: One message in this many has its processing time measured (keeps the hot path plain).
LATENCY_SAMPLE_EVERY: Final = 16
_LATENCY_RESERVOIR: Final = 512


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """One queue edge ``producer.port -> consumer`` (or a kernel's external in/out queue)."""

    name: str
    producer: str | None  # None: runtime.send() from outside
    port: str | None
    consumer: str | None  # None: an output port with no edge, read by runtime.receive()
    depth: int
    capacity: int
    backpressure: str
    messages: int  # accepted into the queue, ever
    drops: int  # dropped by the backpressure policy
    high_water: int
    blocked_s: float  # total time producers spent waiting for space
    delivered: int = 0  # taken out by the consumer
    lost: int = 0  # the consumer failed or ended and will not run again
    left: int = 0  # still queued when the consumer was stopped on request
    in_doubt: int = 0  # held by a consumer process that died: handled or not, unknown

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": f"{self.producer}.{self.port}" if self.producer else "(external)",
            "to": self.consumer or "(output)",
            "name": self.name,
            "depth": self.depth,
            "capacity": self.capacity,
            "backpressure": self.backpressure,
            "messages": self.messages,
            "drops": self.drops,
            "delivered": self.delivered,
            "lost": self.lost,
            "left": self.left,
            "in_doubt": self.in_doubt,
            "high_water": self.high_water,
            "blocked_s": round(self.blocked_s, 6),
        }


@dataclass(frozen=True, slots=True)
class KernelSnapshot:
    """A kernel (all its replicas together) at one instant."""

    id: str
    state: str
    backend: str
    device: str | None
    replicas: int
    messages_in: int
    messages_out: int
    errors: int
    drops: int  # dropped by a backpressure policy on the way into this kernel's inbox
    inbox_depth: int
    inbox_capacity: int
    inbox_high_water: int
    latency_p50_us: float | None
    latency_p99_us: float | None
    rate_in: float
    rate_out: float
    restarts: int
    last_error: str | None
    completed: bool  # the body returned on its own (a finite source)
    waiting: int  # replicas waiting in receive with nothing to read
    blocked: int  # replicas waiting for space on a full downstream queue
    last_progress_s: float  # seconds since the kernel last received or sent
    entry: str | None = None
    node: str | None = None  # the host / Ray node it runs on
    backend_note: str | None = None  # e.g. "auto: no usable GPU, on cpu"
    metrics: dict[str, Any] = field(default_factory=dict)  # what the kernel put in ctx.metrics
    lost: int = 0  # queued for it (or sent to it) after it failed for good
    left: int = 0  # queued for it when it was stopped on request
    in_doubt: int = 0  # held by a process of it that died: handled or not, unknown

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RuntimeSnapshot:
    """Every kernel and queue of one runtime, taken at ``taken_at`` (monotonic seconds)."""

    taken_at: float
    kernels: tuple[KernelSnapshot, ...]
    queues: tuple[QueueSnapshot, ...]
    quiescent: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def kernel(self, kernel_id: str) -> KernelSnapshot:
        for k in self.kernels:
            if k.id == kernel_id:
                return k
        raise KeyError(kernel_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kernels": [k.as_dict() for k in self.kernels],
            "queues": [q.as_dict() for q in self.queues],
            "quiescent": self.quiescent,
        }


def merge_metrics(per_replica: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One kernel's ``ctx.metrics`` from all its replicas: numbers add up, the rest is the
    last replica's. Counters (a sink's total, items seen) are what kernels publish most;
    a figure that must not add up (a mean) is best published by ``ctx.replica == 0`` only.
    """
    merged: dict[str, Any] = {}
    for metrics in per_replica:
        for key, value in metrics.items():
            previous = merged.get(key)
            if _is_number(value) and _is_number(previous):
                merged[key] = previous + value
            else:
                merged[key] = value
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
