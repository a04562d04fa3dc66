"""The dashboard view: a status document in, a rich renderable out, nothing else.

The view is a pure function of one snapshot (as every renderer is): no
clock, no socket, no global state. ``ringctl up``, ``ringctl top`` and ``top --once``
call :func:`render` with the dict the supervisor sends and print what comes back, and
the tests do the same with a ``Console(file=StringIO(), width=...)``.

The renderable decides its columns at render time from the width rich offers, so one
object serves a 40-column split pane and a 200-column monitor: columns are added by
priority (who, what state, how much in, how full) until the width is spent, and the
inbox bar replaces the bare ``depth/capacity`` figure only where it fits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from io import StringIO
from typing import Any, Final, Generic, TypeVar

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from ringctl.dashboard._status import (
    ATTENTION,
    STALL_AFTER_S,
    KernelDoc,
    KernelStatus,
    QueueDoc,
    StatusDocument,
    classify_kernel,
    human_count,
    human_duration,
    human_latency,
    parse_status,
    pick_rows,
    total_rate,
)

__all__ = [
    "DashboardView",
    "KernelStatus",
    "classify_kernel",
    "fill_bar",
    "render",
    "render_svg",
    "render_text",
]

STATUS_STYLE: Final[dict[KernelStatus, str]] = {
    KernelStatus.IDLE: "dim",
    KernelStatus.BUSY: "green",
    KernelStatus.BACKPRESSURED: "yellow",
    KernelStatus.STALLED: "bold red",
    KernelStatus.PAUSED: "blue",
    KernelStatus.DONE: "cyan",
    KernelStatus.FAILED: "bold white on red",
    KernelStatus.STARTING: "cyan",
    KernelStatus.STOPPING: "magenta",
    KernelStatus.STOPPED: "dim",
    KernelStatus.RESTARTING: "yellow",
}

STATE_STYLE: Final[dict[str, str]] = {
    "CREATED": "dim",
    "LAUNCHED": "cyan",
    "ACTIVE": "green",
    "DEACTIVATED": "blue",
    "TERMINATING": "magenta",
    "TERMINATED": "dim",
}

TOPOLOGY_STYLE: Final[dict[str, str]] = {
    "starting": "cyan",
    "running": "bold green",
    "paused": "bold blue",
    "draining": "bold magenta",
    "completed": "bold cyan",
    "failed": "bold white on red",
    "stopped": "dim",
}

EVENT_STYLE: Final[dict[str, str]] = {
    "failure": "red",
    "warning": "yellow",
    "restart": "yellow",
    "pause": "blue",
    "resume": "green",
    "info": "default",
}

PHASE_VERB: Final[dict[str, str]] = {
    "launch": "launched",
    "activate": "activated",
    "drain": "drained",
    "run": "done",
}

BAR_WIDTH: Final = 10
#: Spaces between two columns.
_GAP: Final = 2
#: Longest kernel id / queue edge that may claim width when columns are chosen; longer
#: ones are cut with an ellipsis rather than pushing the numbers off the screen.
_NAME_CAP: Final = 28
_METRICS_CAP: Final = 40  # a kernel's own figures; the rest of a long list is cut
_SQUEEZE: Final = 16  # the fewest cells metrics are cut to before they are left out
#: At most this many lines of failure / backend notes under the tables.
_MAX_NOTES: Final = 6


# --------------------------------------------------------------------------- cells

#: A run of text in one style; a table cell is a few runs (``("square", "bold")``).
Run = tuple[str, str]
Cell = tuple[Run, ...]


def _cell(text: str, style: str = "") -> Cell:
    return ((text, style),)


def _bar_runs(
    depth: int | None, capacity: int | None, high_water: int | None, width: int, label: bool
) -> Cell:
    if capacity is None or capacity <= 0:
        return _depth_cell(depth, capacity)  # unbounded: only the depth
    depth_n = max(depth or 0, 0)
    ratio = min(depth_n / capacity, 1.0)
    filled = min(width, max(1, round(ratio * width))) if depth_n > 0 else 0
    style = "red" if ratio >= 0.9 else "yellow" if ratio >= 0.5 else "green"
    mark = width  # nowhere
    if high_water is not None and high_water > depth_n:
        # The cell holding the high-water fraction, shown only beyond the fill.
        at = min(width - 1, max(0, -(-high_water * width // capacity) - 1))
        mark = at if at >= filled else width
    runs: list[Run] = [("█" * filled, style)]
    if mark < width:
        runs += [("·" * (mark - filled), "bright_black"), ("│", "magenta")]
        runs.append(("·" * (width - mark - 1), "bright_black"))
    else:
        runs.append(("·" * (width - filled), "bright_black"))
    if label:
        runs.append((f" {_exact(depth_n)}/{_exact(capacity)}", ""))
    return tuple(run for run in runs if run[0])


def fill_bar(
    depth: int | None,
    capacity: int | None,
    high_water: int | None = None,
    *,
    width: int = BAR_WIDTH,
    label: bool = True,
) -> Text:
    """``███····│·· 312/1024``: depth against capacity, with the high-water mark.

    Storm UI shows capacity as a number people must compare in their heads; a bar
    shows "where is the data piling up" at a glance, and the ``│`` mark keeps the worst
    moment visible after the queue has drained. The fill turns yellow past half and red
    past 90 %, where backpressure or drops are about to start. Without a capacity (an
    unbounded queue) only the depth is shown.
    """
    runs = _bar_runs(depth, capacity, high_water, width, label)
    return Text.assemble(*runs, no_wrap=True, overflow="ellipsis")


def _exact(n: int) -> str:
    """Depths and capacities stay exact while they are short enough to read at a glance."""
    return str(n) if n < 100_000 else human_count(n)


def _depth_cell(depth: int | None, capacity: int | None) -> Cell:
    """``12/1024`` coloured by fill: the bar's information where the bar does not fit."""
    d = max(depth or 0, 0)
    if capacity is None or capacity <= 0:
        return _cell(_exact(d) if d else "--")
    ratio = d / capacity
    style = "red" if ratio >= 0.9 else "yellow" if ratio >= 0.5 else ""
    return _cell(f"{_exact(d)}/{_exact(capacity)}", style)


def _count_cell(n: float | None, bad: str = "red") -> Cell:
    """Drops, errors, restarts: ``--`` when none, coloured when any (they need a look)."""
    s = human_count(n)
    return _cell(s, bad if s != "--" and (n or 0) > 0 else "dim")


def _kernel_name(k: KernelDoc) -> Cell:
    if k.replicas is not None and k.replicas > 1:
        return ((k.id, "bold"), (f" ×{k.replicas}", "dim"))  # noqa: RUF001 - a times sign
    return _cell(k.id, "bold")


def _backend(k: KernelDoc) -> Cell:
    where = k.device or k.backend or "--"
    # The asterisk is explained in the notes under the table.
    return ((where, ""), ("*", "yellow")) if k.backend_note else _cell(where)


def _latency(k: KernelDoc) -> Cell:
    if k.latency_p50_us is None and k.latency_p99_us is None:
        return _cell("--", "dim")
    return _cell(f"{human_latency(k.latency_p50_us)}/{human_latency(k.latency_p99_us)}")


def status_word(k: KernelDoc) -> str:
    """The status word, with the wait of a pending restart ("restarting in 12s")."""
    if k.status is KernelStatus.RESTARTING and k.restart_in_s is not None:
        return f"restarting in {human_duration(k.restart_in_s)}"
    return k.status.value


def _since(k: KernelDoc) -> Cell:
    if k.last_progress_s is None:
        return _cell("--", "dim")
    if k.status is KernelStatus.STALLED:
        return _cell(f"{human_duration(k.last_progress_s)} ago", "red")
    if k.last_progress_s < 1.0:
        return _cell("now", "dim")
    return _cell(f"{human_duration(k.last_progress_s)} ago")


def _metrics_cell(k: KernelDoc) -> Cell:
    """The kernel's own numeric ``ctx.metrics``: ``total=333.3T rows=100``."""
    if not k.numeric_metrics:
        return _cell("--", "dim")
    parts = []
    for key, value in k.numeric_metrics:
        shown = f"{value:g}" if abs(value) < 1e6 else human_count(value)
        parts.append(f"{key}={shown}")
    return _cell(" ".join(parts))


def _state_style(k: KernelDoc) -> str:
    if k.status is KernelStatus.FAILED:
        return "red"
    return STATE_STYLE.get(k.state or "", "")


def _edge(q: QueueDoc) -> Cell:
    return ((q.source, ""), (" → ", "dim"), (q.to, "bold"))


def _inbox_bar(k: KernelDoc) -> Cell:
    return _bar_runs(k.inbox_depth, k.inbox_capacity, k.inbox_high_water, BAR_WIDTH, True)


def _queue_bar(q: QueueDoc) -> Cell:
    return _bar_runs(q.depth, q.capacity, q.high_water, BAR_WIDTH, True)


def _blocked(q: QueueDoc) -> Cell:
    return _cell(human_duration(q.blocked_s) if q.blocked_s else "--", "dim")


# --------------------------------------------------------------------------- columns

RowT = TypeVar("RowT")


@dataclass(frozen=True, slots=True)
class Column(Generic[RowT]):
    """A table column: shown in list order left to right, kept by ``priority`` when narrow.

    ``replaces`` names a cheaper column carrying the same information (the bar replaces
    the bare ``depth/capacity``), so a wide terminal never shows both. ``squeeze``: the
    fewest cells the column may be cut to (with an ellipsis) rather than left out.
    """

    key: str
    header: str
    priority: int
    cell: Callable[[RowT], Cell]
    justify: str = "left"
    replaces: str | None = None
    cap: int | None = None
    squeeze: int | None = None


KERNEL_COLUMNS: Final[tuple[Column[KernelDoc], ...]] = (
    Column("kernel", "kernel", 0, _kernel_name, cap=_NAME_CAP),
    Column("state", "state", 9, lambda k: _cell(k.state or "--", _state_style(k))),
    Column("status", "status", 0, lambda k: _cell(status_word(k), STATUS_STYLE[k.status])),
    Column("backend", "backend", 10, _backend),
    Column("in", "in", 1, lambda k: _cell(total_rate(k.messages_in, k.rate_in)), "right"),
    Column("out", "out", 3, lambda k: _cell(total_rate(k.messages_out, k.rate_out)), "right"),
    Column("depth", "inbox", 2, lambda k: _depth_cell(k.inbox_depth, k.inbox_capacity), "right"),
    Column("inbox", "inbox", 5, _inbox_bar, replaces="depth"),
    Column("drops", "drops", 4, lambda k: _count_cell(k.drops, "yellow"), "right"),
    Column("errors", "errors", 4, lambda k: _count_cell(k.errors), "right"),
    Column("restarts", "restarts", 6, lambda k: _count_cell(k.restarts, "yellow"), "right"),
    Column("latency", "p50/p99", 8, _latency, "right"),
    Column("since", "last msg", 11, _since, "right"),
    Column("node", "node", 12, lambda k: _cell(k.node or "--", "dim")),
    # The kernel's own figures come before the details: at common widths (120 to 160
    # columns) they are shown, cut to the room left, rather than left out.
    Column("metrics", "metrics", 7, lambda k: _metrics_cell(k), cap=_METRICS_CAP, squeeze=_SQUEEZE),
)

QUEUE_COLUMNS: Final[tuple[Column[QueueDoc], ...]] = (
    Column("edge", "queue", 0, _edge, cap=_NAME_CAP + 8),
    Column("depth", "depth", 1, lambda q: _depth_cell(q.depth, q.capacity), "right"),
    Column("bar", "depth", 5, _queue_bar, replaces="depth"),
    Column("policy", "policy", 2, lambda q: _cell(q.backpressure or "--")),
    Column("drops", "drops", 3, lambda q: _count_cell(q.drops, "yellow"), "right"),
    Column("messages", "messages", 4, lambda q: _cell(human_count(q.messages)), "right"),
    Column("blocked", "blocked", 6, _blocked, "right"),
)


def _width(cell: Cell) -> int:
    return sum(cell_len(text) for text, _ in cell)


def _fit(columns: Sequence[Column[RowT]], widths: dict[str, int], width: int) -> list[str]:
    """The keys of the columns to show: by priority until ``width`` is spent.

    Priority-0 columns are always shown (a row must say who and what); the name column
    is then cut with an ellipsis if even they do not fit. A column that may be squeezed
    is narrowed (in ``widths``) to the room left when that is enough. Never raises,
    whatever the width.
    """
    chosen: list[str] = []
    used = -_GAP  # n columns cost n - 1 gaps
    for col in sorted(columns, key=lambda c: c.priority):
        cost = widths[col.key] + _GAP
        swap = col.replaces if col.replaces in chosen else None
        if swap is not None:
            cost -= widths[swap] + _GAP
        room = width - used - _GAP
        if col.squeeze is not None and used + cost > width and room >= col.squeeze:
            widths[col.key] = room
            cost = room + _GAP
        if col.priority == 0 or used + cost <= width:
            chosen.append(col.key)
            used += cost
            if swap is not None:
                chosen.remove(swap)
    return chosen


def _place(cell: Cell, cell_width: int, width: int, justify: str) -> list[Run]:
    """``cell`` cut (with an ellipsis) or padded to exactly ``width`` cells."""
    if cell_width > width:
        runs: list[Run] = []
        room = width - 1  # keep one cell for the ellipsis
        style = ""
        for text, style in cell:
            w = cell_len(text)
            if w > room:
                runs.append((set_cell_size(text, room), style))
                break
            runs.append((text, style))
            room -= w
        if width > 0:
            runs.append(("…", style))
        return runs
    pad = (" " * (width - cell_width), "")
    if cell_width == width:
        return list(cell)
    return [pad, *cell] if justify == "right" else [*cell, pad]


@dataclass(frozen=True, slots=True)
class _Lines:
    """Pre-laid lines of styled runs, drawn as segments with no further layout.

    rich's ``Table`` measures and renders every cell as its own renderable (about
    0.2 ms a cell, so a thousand kernels cost over a second a frame); the widths are
    already known here because they decide which columns fit, so the table is laid
    out once and handed to rich as finished lines. Lines are still cut at the width
    rich offers, so a miscount can never wrap.
    """

    lines: list[list[Run]]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        styles: dict[str, Style | None] = {"": None}
        newline = Segment.line()
        for line in self.lines:
            used = 0
            for text, name in line:
                style = styles.get(name)
                if style is None and name not in styles:
                    style = styles[name] = console.get_style(name, default=None)
                w = cell_len(text)
                if used + w > width:
                    yield Segment(set_cell_size(text, width - used), style)
                    break
                yield Segment(text, style)
                used += w
            yield newline


def _table(
    columns: Sequence[Column[RowT]], rows: Sequence[RowT], width: int, more: str | None
) -> _Lines:
    """Header, rule and one line per row, with the columns that fit ``width``."""
    cells = {col.key: [col.cell(row) for row in rows] for col in columns}
    sizes = {key: [_width(c) for c in column] for key, column in cells.items()}
    widths: dict[str, int] = {}
    for col in columns:
        natural = max([cell_len(col.header), *sizes[col.key]])
        widths[col.key] = min(natural, col.cap) if col.cap else natural
    keep = set(_fit(columns, widths, width))
    shown = [col for col in columns if col.key in keep]
    total = sum(widths[c.key] for c in shown) + _GAP * (len(shown) - 1)
    if total > width and shown:
        # Only the always-shown columns can overflow: take it out of the name column.
        first = shown[0].key
        cut = min(total - width, widths[first] - 1)
        widths[first] -= cut
        total -= cut
    gap: Run = (" " * _GAP, "")
    lines: list[list[Run]] = []
    head: list[Run] = []
    for i, col in enumerate(shown):
        if i:
            head.append(gap)
        header = _cell(col.header, "bold")
        head += _place(header, cell_len(col.header), widths[col.key], col.justify)
    lines.append(head)
    lines.append([("─" * min(total, width), "bright_black")])
    for r in range(len(rows)):
        line: list[Run] = []
        for i, col in enumerate(shown):
            if i:
                line.append(gap)
            line += _place(cells[col.key][r], sizes[col.key][r], widths[col.key], col.justify)
        lines.append(line)
    if more is not None:
        lines.append([(more, "dim")])
    return _Lines(lines)


# --------------------------------------------------------------------------- sections


def _header(st: StatusDocument, connection: str | None) -> Panel:
    top = Text()
    top.append(st.name or "(unnamed topology)", style="bold")
    top.append("  ")
    state = st.state or "unknown"
    top.append(state.upper(), style=TOPOLOGY_STYLE.get(state, "bold"))
    if st.loop_blocked:
        top.append(" BLOCKED", style="bold white on red")
    top.append(f"  up {human_duration(st.uptime_s)}")
    top.append(f"  {human_count(st.throughput)} msg/s", style="bold")
    lines: list[RenderableType] = [top]

    where = Text(style="dim")
    parts = [p for p in (st.file, f"engine {st.engine}" if st.engine else None) if p]
    summary = f"{len(st.kernels)} kernel{'s' if len(st.kernels) != 1 else ''}"
    if st.status_counts:
        counted = ", ".join(
            f"{st.status_counts[s]} {s.value}" for s in KernelStatus if s in st.status_counts
        )
        summary += f": {counted}"
    where.append(" · ".join([*parts, summary]))
    lines.append(where)

    if connection:
        lines.append(Text(connection, style="bold red"))
    if st.loop_blocked:
        blocked = Text(st.loop_blocked, style="bold red")
        if st.stale_s is not None:
            blocked.append(f" (figures from {st.stale_s:.1f} s ago)", style="dim")
        lines.append(blocked)
    event = st.last_event
    if event is not None:
        line = Text("last event: ", style="dim")
        if event.t is not None:
            line.append(f"[{human_duration(event.t)}] ", style="dim")
        line.append(f"{event.kind}: ", style=EVENT_STYLE.get(event.kind, "default"))
        line.append(event.text)
        lines.append(line)
    return Panel(
        Group(*lines), title="ringctl", title_align="left", box=box.ROUNDED, padding=(0, 1)
    )


def _phase_lines(st: StatusDocument) -> list[Text]:
    phase = st.phase
    if phase is None:
        return []
    line = Text()
    line.append(f"{phase.name} ", style="bold magenta")
    if phase.total is not None and phase.total > 0:
        done = min(max(phase.done or 0, 0), phase.total)
        line.append_text(fill_bar(done, phase.total, label=False, width=BAR_WIDTH))
        verb = PHASE_VERB.get(phase.name, "done")
        line.append(f" {done}/{phase.total} kernels {verb}")
    elif phase.done is not None:
        line.append(f"{phase.done} done")
    lines = [line]
    for w in phase.waiting_on[:_MAX_NOTES]:
        wait = Text("  waiting on ", style="dim")
        wait.append(w.kernel, style="bold")
        details = []
        if w.queued is not None:
            details.append(f"{w.queued} queued")
        if w.seconds_left is not None:
            details.append(f"{w.seconds_left:.1f} s left")
        if details:
            wait.append(": " + ", ".join(details))
        lines.append(wait)
    if len(phase.waiting_on) > _MAX_NOTES:
        lines.append(Text(f"  … and {len(phase.waiting_on) - _MAX_NOTES} more", style="dim"))
    return lines


def _notes(st: StatusDocument) -> list[Text]:
    """Failures, stalls and backend fallbacks, each on a line a person can act on."""
    notes: list[Text] = []
    for k in st.kernels:
        if k.status is KernelStatus.FAILED or (k.last_error and k.status is not KernelStatus.DONE):
            notes.append(_note("✗ ", "red", k, k.last_error or "failed"))
        elif k.status is KernelStatus.STALLED:
            quiet = human_duration(k.last_progress_s)
            notes.append(
                _note("! ", "bold red", k, f"{k.inbox_depth or 0} queued, no progress for {quiet}")
            )
        if k.backend_note:
            notes.append(_note("* ", "yellow", k, k.backend_note))
    if len(notes) > _MAX_NOTES:
        extra = len(notes) - _MAX_NOTES + 1
        notes = [*notes[: _MAX_NOTES - 1], Text(f"… and {extra} more notes", style="dim")]
    return notes


def _note(mark: str, style: str, k: KernelDoc, text: str) -> Text:
    return Text.assemble(mark, (k.id, "bold"), f": {text}", style=style)


def _more(hidden: Sequence[KernelDoc] | Sequence[QueueDoc], noun: str) -> str | None:
    if not hidden:
        return None
    counts = Counter(row.status for row in hidden if isinstance(row, KernelDoc))
    words = [f"{counts[s]} {s.value}" for s in KernelStatus if s in counts]  # header's order
    detail = f" ({', '.join(words)})" if words else ""
    return f"… {len(hidden)} more {noun}{detail}"


# --------------------------------------------------------------------------- the view


@dataclass(frozen=True, slots=True)
class DashboardView:
    """The dashboard for one status document (``ringctl ps NAME --json``'s shape): a
    plain object rich knows how to draw.

    Nothing is computed until rich renders it, because only then is the width known;
    rendering the same object twice gives the same text. ``status=None`` draws a
    "waiting" frame (nothing received yet); ``connection`` adds a red line to the
    header, e.g. ``"supervisor not answering (3 s)"`` while the view keeps showing the
    last document it had. ``fit_height`` trims the tables to the terminal's height,
    keeping failed, stalled and backpressured rows: for live frames, not for ``--once``
    output that a script or a file should get whole.
    """

    status: Mapping[str, Any] | None
    _: KW_ONLY
    connection: str | None = None
    stall_after_s: float = STALL_AFTER_S
    max_kernel_rows: int | None = None
    max_queue_rows: int | None = None
    fit_height: bool = False

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width, 1)
        if self.status is None:
            yield Panel(
                Text(self.connection or "waiting for the first status…", style="dim"),
                title="ringctl",
                title_align="left",
                box=box.ROUNDED,
            )
            return
        st = parse_status(self.status, stall_after_s=self.stall_after_s)
        header = _header(st, self.connection)
        phase = _phase_lines(st)
        notes = _notes(st)

        k_limit, q_limit = self.max_kernel_rows, self.max_queue_rows
        if self.fit_height:
            # Rendered once here to count its lines, then reused rather than drawn twice.
            drawn = console.render_lines(header, options.update(height=None), pad=False)
            k_fit, q_fit = _split_height(
                options.size.height, len(drawn) + len(phase) + len(notes), st
            )
            k_limit = k_fit if k_limit is None else min(k_limit, k_fit)
            q_limit = q_fit if q_limit is None else min(q_limit, q_fit)
            newline = Segment.line()
            for segments in drawn:
                yield from segments
                yield newline
        else:
            yield header
        yield from phase
        if st.kernels:
            shown, hidden = pick_rows(st.kernels, k_limit, lambda k: k.status in ATTENTION)
            cols = list(KERNEL_COLUMNS)
            if not any(k.node for k in shown):
                cols = [c for c in cols if c.key != "node"]
            yield _table(cols, shown, width, _more(hidden, "kernels"))
        else:
            yield Text("no kernels reported", style="dim")
        if st.queues:
            q_shown, q_hidden = pick_rows(st.queues, q_limit, _queue_urgent)
            yield Text()  # a blank line: two tables, not one
            yield _table(QUEUE_COLUMNS, q_shown, width, _more(q_hidden, "queues"))
        yield from notes


def _queue_urgent(q: QueueDoc) -> bool:
    """A queue that drops or is full is where the data piles up: keep it on screen."""
    full = q.capacity is not None and q.capacity > 0 and (q.depth or 0) >= q.capacity
    return full or bool(q.drops)


def _split_height(height: int, fixed: int, st: StatusDocument) -> tuple[int, int]:
    """Rows for the kernel and queue tables so a live frame fits the terminal.

    Kernels get the lion's share (they carry the status words); queues keep a few rows
    so the fullest edge stays visible.
    """
    budget = height - fixed - 1
    budget -= 3 + (4 if st.queues else 0)  # heading, rule, "… more" (+ a blank line)
    q_rows = min(len(st.queues), max(2, budget // 4)) if st.queues else 0
    k_rows = max(3, budget - q_rows)
    return k_rows, max(q_rows, 2)


#: The dashboard for one status document: ``render(status, connection=..., ...)``.
render = DashboardView


def render_text(status: Mapping[str, Any] | None, *, width: int = 100, color: bool = False) -> str:
    """One frame as a string, e.g. for ``ringctl top NAME --once`` into a file or pipe."""
    out = StringIO()
    _print(status, out, width, color)
    return out.getvalue()


def render_svg(
    status: Mapping[str, Any] | None, *, width: int = 110, title: str = "ringctl top"
) -> str:
    """One frame as an SVG document: the README screenshot, regenerated by a command.

    ``python -m ringctl.dashboard svg status.json -o docs/img/dashboard.svg`` calls this
    with a document saved from a real run (``ringctl ps NAME --json``), so the picture
    is never drawn by hand and never drifts from what the view really shows.
    """
    return _print(status, StringIO(), width, True, record=True).export_svg(title=title)


def _print(
    status: Mapping[str, Any] | None, out: StringIO, width: int, color: bool, record: bool = False
) -> Console:
    """Print one frame into ``out``; the console (which keeps it, with ``record``, for SVG)."""
    console = Console(
        record=record,
        file=out,
        width=width,
        force_terminal=color,
        color_system="truecolor" if color else None,
        legacy_windows=False,
    )
    console.print(render(status))
    return console
