"""Prometheus exposition of the status document (``ringctl up --metrics-port PORT``).

prometheus-client is an optional extra (``pip install 'ringctl[metrics]'``), so it is
imported inside the functions that need it, never at module import: ``ringctl --help``
stays fast and a machine without the extra only fails when metrics are asked for.

Nothing here touches the message path. A scrape calls ``get_status`` once (the latest
document the supervisor already has) and turns it into metric families with a custom
collector, the way prometheus_client recommends for proxying another system's numbers
(https://prometheus.github.io/client_python/collector/custom/): there are no
``Counter`` objects to increment per message, and a kernel that disappears disappears
from the next scrape instead of lingering with its last value.

Names: ``ringctl_kernel_*`` with labels ``topology`` and ``kernel``; ``ringctl_queue_*``
with ``topology``, ``from`` and ``to``; lifecycle state and status word as labelled 0/1
gauges (``ringctl_kernel_state{state="ACTIVE"}``), so an alert can say
``ringctl_kernel_status{status="stalled"} == 1``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from ringctl.dashboard._status import (
    KERNEL_STATES,
    TOPOLOGY_STATES,
    KernelStatus,
    parse_status,
)
from ringctl.exceptions import UserInputError

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = [
    "DEFAULT_HOST",
    "MetricsServer",
    "StatusCollector",
    "metric_families",
    "metrics_text",
    "serve_metrics",
]

#: Loopback by default: the endpoint has no authentication, so exposing it beyond the
#: machine is a decision the user makes with ``host="0.0.0.0"``, not a default.
DEFAULT_HOST: Final = "127.0.0.1"

StatusGetter = Callable[[], Mapping[str, Any] | None]


def _prometheus() -> Any:
    """The prometheus_client module, or an error that says which extra to install."""
    try:
        import prometheus_client
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise UserInputError(
            "metrics need prometheus-client, which is not installed",
            hint="pip install 'ringctl[metrics]'",
        ) from exc
    return prometheus_client


def metric_families(status: Mapping[str, Any] | None) -> list[Metric]:
    """The metric families for one status document (empty-but-valid when it is ``None``).

    ``ringctl_status_available`` is 1 when a document was there to read: a scrape that
    succeeds while the supervisor is gone must not look like a healthy idle topology.
    """
    _prometheus()  # the install hint, rather than a bare ImportError
    from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

    available = GaugeMetricFamily(
        "ringctl_status_available",
        "1 when the supervisor's latest status document was available to this scrape.",
        value=0 if status is None else 1,
    )
    if status is None:
        return [available]
    st = parse_status(status)
    topology = st.name or "unnamed"

    t_labels = ["topology"]
    uptime = GaugeMetricFamily(
        "ringctl_topology_uptime_seconds", "Seconds since the topology started.", labels=t_labels
    )
    if st.uptime_s is not None:
        uptime.add_metric([topology], st.uptime_s)
    t_state = GaugeMetricFamily(
        "ringctl_topology_state",
        "1 for the topology's current state, 0 for the others.",
        labels=[*t_labels, "state"],
    )
    _one_hot(t_state, [topology], TOPOLOGY_STATES, st.state)
    t_kernels = GaugeMetricFamily(
        "ringctl_topology_kernels", "Kernels in the topology.", labels=t_labels
    )
    t_kernels.add_metric([topology], len(st.kernels))

    k_labels = ["topology", "kernel"]
    k_figures = _families(_KERNEL_FIGURES, k_labels)
    k_state, k_status, k_user = (
        GaugeMetricFamily(name, doc, labels=[*k_labels, label])
        for name, doc, label in _KERNEL_LABELLED
    )
    k_info = InfoMetricFamily("ringctl_kernel", "Where and how the kernel runs.", labels=k_labels)

    seen: set[str] = set()
    for k in st.kernels:
        if k.id in seen:  # duplicate samples would make Prometheus reject the scrape
            continue
        seen.add(k.id)
        lv = [topology, k.id]
        _add_figures(k, k_figures, lv)
        _one_hot(k_state, lv, KERNEL_STATES, k.state)
        _one_hot(k_status, lv, _WORDS, k.status.value)
        for name, value in k.numeric_metrics:
            k_user.add_metric([*lv, name], value)
        k_info.add_metric(lv, {key: getattr(k, key) or "" for key in _KERNEL_INFO})

    q_labels = ["topology", "from", "to"]
    q_figures = _families(_QUEUE_FIGURES, q_labels)
    q_info = InfoMetricFamily("ringctl_queue", "The queue's name and policy.", labels=q_labels)
    seen_edges: set[tuple[str, str]] = set()
    for q in st.queues:
        edge = (q.source, q.to)
        if edge in seen_edges:
            continue
        seen_edges.add(edge)
        lv = [topology, q.source, q.to]
        _add_figures(q, q_figures, lv)
        q_info.add_metric(lv, {"name": q.name or "", "backpressure": q.backpressure or ""})

    return [
        available,
        uptime,
        t_state,
        t_kernels,
        *(family for _, _, family in k_figures),
        k_state,
        k_status,
        k_user,
        k_info,
        *(family for _, _, family in q_figures),
        q_info,
    ]


_Figure = tuple[str, float, bool, str, str]

#: (name, help, label) of the kernel gauges with a label of their own, in order.
_KERNEL_LABELLED: Final = (
    ("ringctl_kernel_state", "1 for the kernel's lifecycle state, 0 for the others.", "state"),
    ("ringctl_kernel_status",
     "1 for the kernel's status word (idle, busy, backpressured, stalled, ...).", "status"),
    ("ringctl_kernel_metric", "Numeric values the kernel put in ctx.metrics.", "metric"),
)  # fmt: skip
#: Every status word, in ``KernelStatus`` order.
_WORDS: Final = tuple(word.value for word in KernelStatus)
#: What ``ringctl_kernel_info`` labels a kernel with.
_KERNEL_INFO: Final = ("backend", "device", "node", "entry")

#: (attribute, divisor, counter, name, help) of each figure a kernel exports, in order.
_KERNEL_FIGURES: Final[tuple[_Figure, ...]] = (
    ("messages_in", 1.0, True, "ringctl_kernel_messages_in", "Messages the kernel received."),
    ("messages_out", 1.0, True, "ringctl_kernel_messages_out", "Messages the kernel sent."),
    ("errors", 1.0, True, "ringctl_kernel_errors", "Errors raised by the kernel's body."),
    ("drops", 1.0, True, "ringctl_kernel_drops", "Messages dropped on the way into the inbox."),
    ("restarts", 1.0, True, "ringctl_kernel_restarts", "Times the kernel was restarted."),
    ("rate_in", 1.0, False, "ringctl_kernel_messages_in_per_second",
     "Receive rate over the runtime's window."),
    ("rate_out", 1.0, False, "ringctl_kernel_messages_out_per_second",
     "Send rate over the runtime's window."),
    ("inbox_depth", 1.0, False, "ringctl_kernel_inbox_depth", "Messages waiting in the inbox."),
    ("inbox_capacity", 1.0, False, "ringctl_kernel_inbox_capacity", "Capacity of the inbox."),
    ("inbox_high_water", 1.0, False, "ringctl_kernel_inbox_high_water",
     "Highest inbox depth seen."),
    ("latency_p50_us", 1e6, False, "ringctl_kernel_latency_p50_seconds",
     "Median processing time."),
    ("latency_p99_us", 1e6, False, "ringctl_kernel_latency_p99_seconds",
     "99th percentile processing time."),
    ("replicas", 1.0, False, "ringctl_kernel_replicas", "Replicas of the kernel."),
    ("waiting", 1.0, False, "ringctl_kernel_waiting_replicas", "Replicas idle in receive."),
    ("blocked", 1.0, False, "ringctl_kernel_blocked_replicas",
     "Replicas waiting for space on a full queue."),
    ("last_progress_s", 1.0, False, "ringctl_kernel_seconds_since_progress",
     "Seconds since the kernel last received or sent."),
)  # fmt: skip

#: The same for each figure a queue exports.
_QUEUE_FIGURES: Final[tuple[_Figure, ...]] = (
    ("depth", 1.0, False, "ringctl_queue_depth", "Messages in the queue."),
    ("capacity", 1.0, False, "ringctl_queue_capacity", "Queue capacity."),
    ("high_water", 1.0, False, "ringctl_queue_high_water", "Highest queue depth seen."),
    ("messages", 1.0, True, "ringctl_queue_messages", "Messages accepted into the queue."),
    ("drops", 1.0, True, "ringctl_queue_drops", "Messages dropped."),
    ("blocked_s", 1.0, True, "ringctl_queue_blocked_seconds",
     "Total time producers waited for space in the queue."),
)  # fmt: skip


def _families(figures: tuple[_Figure, ...], labels: list[str]) -> list[tuple[str, float, Any]]:
    """(attribute, divisor, metric family) for each row of a figures table."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    families = []
    for attr, divisor, counter, name, doc in figures:
        kind = CounterMetricFamily if counter else GaugeMetricFamily
        families.append((attr, divisor, kind(name, doc, labels=labels)))
    return families


def _one_hot(family: Any, labels: list[str], known: Sequence[str], current: str | None) -> None:
    """1 for ``current``, 0 for every other ``known`` value (``current`` is added if new)."""
    new = [current] if current and current not in known else []
    for value in (*known, *new):
        family.add_metric([*labels, value], 1.0 if value == current else 0.0)


def _add_figures(row: object, figures: list[tuple[str, float, Any]], labels: list[str]) -> None:
    for attr, divisor, family in figures:
        value = getattr(row, attr)
        if value is not None:  # unknown is absent, not a misleading zero
            family.add_metric(labels, float(value) / divisor)


class StatusCollector:
    """A prometheus_client collector that reads the latest status on every scrape.

    Register it in any ``CollectorRegistry`` (an application that already serves its
    own metrics can add ringctl's to them). ``describe()`` returns nothing so that
    registering never calls ``get_status``.
    """

    def __init__(self, get_status: StatusGetter) -> None:
        self._get_status = get_status

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            status = self._get_status()
        except Exception:  # a scrape reports "unavailable" rather than an HTTP 500
            status = None
        yield from metric_families(status)


def metrics_text(status: Mapping[str, Any] | None) -> str:
    """The Prometheus text exposition of one status document (tests, ``ps --metrics``)."""
    prometheus = _prometheus()
    registry = prometheus.CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(lambda: status))
    return str(prometheus.generate_latest(registry).decode("utf-8"))


class MetricsServer:
    """prometheus_client's own HTTP server for ``/metrics``, owned by whoever starts it.

    ``prometheus_client.start_http_server`` serves a registry holding one
    :class:`StatusCollector` (it answers every path, as prometheus_client does).
    ``port=0`` binds any free port (tests); :attr:`port` tells which. Use it as a
    context manager, or ``start()`` / ``stop()``; ``stop()`` waits for the serving
    thread, so nothing outlives ``ringctl up``.
    """

    def __init__(
        self, get_status: StatusGetter, *, port: int = 9464, host: str = DEFAULT_HOST
    ) -> None:
        self._get_status = get_status
        self._host = host
        self._port = port
        self._server: Any | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (differs from the requested one when that was 0)."""
        if self._server is None:
            return self._port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}/metrics"

    def start(self) -> MetricsServer:
        if self._server is not None:
            return self
        prometheus = _prometheus()
        registry = prometheus.CollectorRegistry(auto_describe=False)
        registry.register(StatusCollector(self._get_status))
        try:
            self._server, self._thread = prometheus.start_http_server(
                self._port, addr=self._host, registry=registry
            )
        except OSError as exc:
            raise UserInputError(
                f"cannot serve metrics on {self._host}:{self._port}: {exc.strerror or exc}",
                hint="pick another --metrics-port (0 picks any free port)",
            ) from exc
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_metrics(
    get_status: StatusGetter, port: int, *, host: str = DEFAULT_HOST
) -> MetricsServer:
    """Start serving ``http://host:port/metrics`` now; call ``.stop()`` when done."""
    return MetricsServer(get_status, port=port, host=host).start()
