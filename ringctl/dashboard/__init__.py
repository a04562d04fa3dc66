"""The dashboard layer: what people look at while a topology runs.

Everything here starts from one plain dict, the status document that
``ringctl ps NAME --json`` prints and the supervisor's ``watch`` stream sends, and
nothing here needs anything else: the view, the CI line and the Prometheus endpoint are
functions of that document, so ``up`` (in-process) and ``top`` (over the socket) show
the same thing.

What the commands call::

    from ringctl.dashboard import run_live, run_plain, serve_metrics, render

    run_live(get_status, refresh_per_second=4)          # ringctl up / top, in a terminal
    run_plain(get_status, interval_s=2, json_stream=False)  # --no-dashboard / --json-stream
    console.print(render(status))                       # ringctl top NAME --once
    with serve_metrics(get_status, port):               # --metrics-port PORT
        ...

prometheus-client is imported only when metrics are served or rendered.
"""

from ringctl.dashboard._status import (
    STALL_AFTER_S,
    KernelStatus,
    classify_kernel,
    human_count,
    human_duration,
    parse_status,
    total_rate,
)
from ringctl.dashboard.live import run_live
from ringctl.dashboard.metrics import MetricsServer, metrics_text, serve_metrics
from ringctl.dashboard.plain import (
    StatusPoller,
    StopReason,
    event_line,
    json_line,
    plain_line,
    run_plain,
)
from ringctl.dashboard.view import (
    DashboardView,
    fill_bar,
    render,
    render_svg,
    render_text,
)

__all__ = [
    "STALL_AFTER_S",
    "DashboardView",
    "KernelStatus",
    "MetricsServer",
    "StatusPoller",
    "StopReason",
    "classify_kernel",
    "event_line",
    "fill_bar",
    "human_count",
    "human_duration",
    "json_line",
    "metrics_text",
    "parse_status",
    "plain_line",
    "render",
    "render_svg",
    "render_text",
    "run_live",
    "run_plain",
    "serve_metrics",
    "total_rate",
]
