"""Topology files from Python: load, check and run them as ``ringctl up`` and ``smoke`` do.

Remember it as the three steps of ``ringctl up``::

    import ringctl

    topology = ringctl.load("topologies/quickstart.yaml")   # parse, check, import kernels
    report = topology.run(duration=5.0)                       # up, run, drain, down
    print(report.outcome, report.kernel("total")["metrics"])

In a notebook or any program that already runs an event loop, ``await
topology.run_async()`` instead. ``ringctl up`` and ``ringctl smoke`` call these same
functions, so a file behaves the same from the command line and from a program.

``load`` raises ``TopologyError`` (every problem, each at ``file:line:column``) before
anything starts; ``check`` returns those problems instead of raising.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TextIO, TypeVar

from ringctl._lazy import lazy_exports

if TYPE_CHECKING:
    import asyncio

    from ringctl._preview import preview_text as preview_text
    from ringctl.checks import MAX_SECONDS as MAX_SECONDS
    from ringctl.checks import check_name as check_name
    from ringctl.checks import check_seconds as check_seconds
    from ringctl.control.remote import KernelLog as KernelLog
    from ringctl.control.remote import Running as Running
    from ringctl.control.remote import applies as applies
    from ringctl.control.remote import connect as connect
    from ringctl.control.remote import finished as finished
    from ringctl.control.remote import kernel_log as kernel_log
    from ringctl.control.remote import last_run as last_run
    from ringctl.control.remote import listing as listing
    from ringctl.control.remote import names as names
    from ringctl.engine.accounting import Accounting
    from ringctl.engine.accounting import equation as equation
    from ringctl.engine.contract import Engine
    from ringctl.engine.local.output import LogFollower as LogFollower
    from ringctl.engine.local.output import OutputRecord
    from ringctl.engine.local.output import capture as capture
    from ringctl.engine.local.output import unmarked as unmarked
    from ringctl.orchestrator.detach import Detached as Detached
    from ringctl.orchestrator.detach import start_detached as start_detached
    from ringctl.orchestrator.plan import Plan
    from ringctl.orchestrator.smoke import SmokeResult as SmokeResult
    from ringctl.orchestrator.smoke import junit_xml as junit_xml
    from ringctl.orchestrator.supervisor import DownReport, RunResult, Supervisor
    from ringctl.orchestrator.supervisor import LaunchFailed as LaunchFailed
    from ringctl.scaffold import shell_arg as shell_arg
    from ringctl.scaffold import write_project as write_project
    from ringctl.topology.errors import Diagnostic as Diagnostic
    from ringctl.topology.errors import TopologyError as TopologyError
    from ringctl.topology.errors import did_you_mean as did_you_mean
    from ringctl.topology.quick import Summary

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: What the door passes on from the modules behind it, imported on first use so that
#: ``ringctl ps`` and ``validate`` load only what they call.
_EXPORTS = {
    **dict.fromkeys(["MAX_SECONDS", "check_name", "check_seconds"], "ringctl.checks"),
    **dict.fromkeys(["KernelLog", "Running", "applies"], "ringctl.control.remote"),
    **dict.fromkeys(["connect", "finished", "kernel_log"], "ringctl.control.remote"),
    **dict.fromkeys(["last_run", "listing", "names"], "ringctl.control.remote"),
    "preview_text": "ringctl._preview",
    "equation": "ringctl.engine.accounting",
    **dict.fromkeys(["LogFollower", "capture", "unmarked"], "ringctl.engine.local.output"),
    **dict.fromkeys(["Detached", "start_detached"], "ringctl.orchestrator.detach"),
    **dict.fromkeys(["SmokeResult", "junit_xml"], "ringctl.orchestrator.smoke"),
    "LaunchFailed": "ringctl.orchestrator.supervisor",
    **dict.fromkeys(["shell_arg", "write_project"], "ringctl.scaffold"),
    **dict.fromkeys(["Diagnostic", "TopologyError", "did_you_mean"], "ringctl.topology.errors"),
}

#: Besides those, what this module defines for the CLI and for programs.
__all__ = [*_EXPORTS, "Checked", "LiveRun", "RunHooks", "RunReport", "TopologyFile"]
__all__ += ["apply", "check", "diff", "graph_text", "load", "topology_schema", "up"]

__getattr__, __dir__ = lazy_exports("ringctl.api", _EXPORTS, globals(), __all__)


def load(
    path: str | Path,
    *,
    engine: str | None = None,
    env: Mapping[str, str] | None = None,
) -> TopologyFile:
    """Load a topology file: YAML, schema and graph checks, kernel imports, params.

    ``engine`` (``local`` or ``ray``) overrides the file's; ``env`` replaces
    ``os.environ`` for ``${VAR}`` substitution. Raises ``TopologyError`` listing every
    problem, or ``UserInputError`` for an unknown engine; nothing runs either way.
    """
    from ringctl.engine.contract import ENGINES

    if engine is not None and engine not in ENGINES:
        from ringctl.exceptions import UserInputError

        raise UserInputError(f"unknown engine {engine!r}", hint="the engine is local or ray")
    from ringctl.orchestrator.loading import plan_from_file

    return TopologyFile(plan_from_file(path, env=env, engine=engine))


class Checked(list["Diagnostic"]):
    """What ``check`` found: every problem (a list of ``Diagnostic``, empty when the file
    is fine) and, for a file that is fine, its ``summary`` (name, kernels, queues, engine)."""

    __slots__ = ("summary",)

    def __init__(self, problems: list[Diagnostic], summary: Summary | None) -> None:
        super().__init__(problems)
        self.summary = summary


def check(path: str | Path, *, import_entries: bool = True) -> Checked:
    """Every problem with a topology file, as ``Diagnostic`` objects; empty when it is fine.

    ``import_entries=False`` imports nothing: kernel modules are only looked up (their
    top-level package must exist), as plain ``ringctl validate`` does; that check starts
    from the compiled schema in the cache when it is there (the first check writes it).
    """
    from ringctl.topology.quick import check_file

    compile_handlers: Any = None
    if import_entries:  # each persistent kernel's handler compiled, as the engine would
        from ringctl.engine.local.persistent.diagnose import check_compiles

        compile_handlers = check_compiles
    summary, problems = check_file(
        path, import_entries=import_entries, compile_handlers=compile_handlers
    )
    return Checked(problems, summary)


@dataclass(frozen=True, slots=True)
class RunHooks:
    """How a front end follows a run (the CLI draws its dashboard and progress with these).

    Every callback runs on the run's event loop and must return quickly.
    """

    #: Called as each launch phase advances: ``{"name", "done", "total", "elapsed_s"}``.
    on_phase: Callable[[dict[str, Any]], None] | None = None
    #: Called every ``tick_interval`` seconds with the status document (as ``ps --json``).
    on_tick: Callable[[dict[str, Any]], None] | None = None
    tick_interval: float = 1.0
    #: Called with ``"interrupt"``, ``"force"`` or ``"terminate"`` on SIGINT / SIGTERM.
    on_signal: Callable[[str], None] | None = None
    #: Called once the run exists, before the launch, with its ``LiveRun``.
    on_start: Callable[[LiveRun], None] | None = None
    #: A live view: started with the run on its loop, awaited once the run has ended
    #: (so it can draw the last frame). It gets the ``LiveRun``.
    view: Callable[[LiveRun], Awaitable[None]] | None = None
    #: Called once a second, from a thread, while a launch or activation phase stands
    #: still (a slow set-up hook): ``phase 1: launching k (0/3 done, 4 s on it)``.
    on_slow_phase: Callable[[str], None] | None = None
    #: With ``control=True``: called with each record of what a kernel printed, logged
    #: or raised (``ringctl.engine.local.output.OutputRecord``); all of them also go to the
    #: name's kernel log that ``ringctl logs`` reads.
    on_output: Callable[[OutputRecord], None] | None = None
    #: With ``control=True``: also write what kernels print here, as they print it.
    echo_output: TextIO | None = None


class LiveRun:
    """A run in progress, as its front end follows it (``RunHooks.on_start`` / ``view``)."""

    def __init__(self, supervisor: Supervisor) -> None:
        import asyncio

        self._sup = supervisor
        self._loop = asyncio.get_running_loop()

    def status(self, *, fresh: bool = False) -> dict[str, Any]:
        """The status document (as ``ringctl ps NAME --json``). The run's loop only."""
        return self._sup.status(fresh=fresh)

    @property
    def ended(self) -> bool:
        return self._sup.ended

    def stop(self, reason: str = "interrupted") -> None:
        """Start a graceful down. The run's loop only."""
        self._sup.request_stop(reason)

    def event(self, kind: str, text: str) -> None:
        """Add to the run's event log; safe from any thread."""
        import contextlib

        with contextlib.suppress(RuntimeError):  # the loop is closed: the run is over
            self._loop.call_soon_threadsafe(self._sup.event, kind, text)


@dataclass(frozen=True, slots=True)
class RunReport:
    """How a run ended, and the final status: every kernel's and queue's totals."""

    name: str
    #: ``completed`` (every source finished, every queue drained), ``stopped``,
    #: ``interrupted`` or ``failed``.
    outcome: str
    #: What ``ringctl up`` exits with: 0 completed or stopped cleanly, 1 failed.
    exit_code: int
    reason: str
    failure: str | None
    #: The drain's report when the run was brought down (``None`` when it completed).
    down: DownReport | None
    #: Every queue's accepted = delivered + dropped + lost + left, at the end of the run.
    accounting: Accounting | None
    #: The final status document, the same as ``ringctl ps NAME --json``.
    status: dict[str, Any] = field(repr=False)
    #: With ``up``: how many lines of output (stdout, stderr, the log) a full disk lost.
    output_lost: str | None = None
    #: A stop came before every kernel was up: the launch was rolled back.
    launch_stopped: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def kernel(self, kernel_id: str) -> dict[str, Any]:
        """One kernel's final figures: ``messages_in``, ``errors``, ``metrics``..."""
        for k in self.status.get("kernels", []):
            if k.get("id") == kernel_id:
                return dict(k)
        known = ", ".join(str(k.get("id")) for k in self.status.get("kernels", []))
        raise KeyError(f"no kernel {kernel_id!r} in {self.name} (kernels: {known})")

    @classmethod
    def of(cls, result: RunResult, status: dict[str, Any], name: str) -> RunReport:
        copied = {f.name: getattr(result, f.name) for f in fields(result)}
        return cls(name=name, status=status, **copied)

    def result(self) -> dict[str, Any]:
        """How the run ended as JSON (``up --json-stream``'s ``result``)."""
        return {
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "failure": self.failure,
            "down": self.down.as_dict() if self.down is not None else None,
            "accounting": self.accounting.as_dict() if self.accounting is not None else None,
            "launch_stopped": self.launch_stopped,
        }


def _on_new_loop(method: Callable[_P, Coroutine[Any, Any, _R]]) -> Callable[_P, _R]:
    """``TopologyFile.run`` from ``run_async`` (``smoke`` from ``smoke_async``): the same
    call on a new event loop (uvloop when installed); refused inside a running one."""
    name = method.__name__.removesuffix("_async")

    @functools.wraps(method)
    def on_new_loop(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # none: start one below, not in here (the run's errors would chain to this)
        else:
            from ringctl.exceptions import UserInputError

            raise UserInputError(
                f"TopologyFile.{name}() cannot start an event loop inside a running one",
                hint=f"use `await topology.{name}_async(...)` (in a notebook, or any async code)",
            )
        from ringctl.engine.local.loop import run

        return run(method(*args, **kwargs))

    on_new_loop.__name__, on_new_loop.__qualname__ = name, f"TopologyFile.{name}"
    return on_new_loop


class TopologyFile:
    """A topology file that loaded cleanly: its kernels imported, ready to run.

    Each ``run`` starts the kernels afresh; a ``TopologyFile`` can be run again.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def __repr__(self) -> str:
        return f"<TopologyFile {self.name!r} ({self.file}): {len(self.kernels)} kernels>"

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def file(self) -> str | None:
        return self.plan.file

    @property
    def engine(self) -> str:
        return self.plan.engine

    @property
    def description(self) -> str:
        return self.plan.description

    @property
    def kernels(self) -> list[str]:
        """Kernel ids in launch order."""
        return [k.id for k in self.plan.kernels]

    async def run_async(
        self,
        *,
        duration: float | None = None,
        down_timeout: float = 10.0,
        control: bool = False,
        address: str | None = None,
        log_path: str | None = None,
        hooks: RunHooks | None = None,
    ) -> RunReport:
        """Launch in two phases, run until it completes, ``duration`` ends or it is stopped.

        ``control=True`` also serves the control socket, so ``ringctl ps / pause /
        down NAME`` reach this run from another shell (and two runs of one name
        refuse each other). ``address`` is the Ray cluster for ``engine: ray``. SIGINT
        and SIGTERM bring the run down gracefully when this runs in the main thread.
        Raises ``LaunchFailed`` when a kernel fails to launch (after the rollback).
        """
        import asyncio

        from ringctl.orchestrator.service import serve

        hooks = hooks or RunHooks()
        runs: list[LiveRun] = []
        views: list[asyncio.Task[None]] = []

        def ready(sup: Supervisor) -> None:
            live = LiveRun(sup)
            runs.append(live)
            if hooks.on_start is not None:
                hooks.on_start(live)
            if hooks.view is not None:
                views.append(asyncio.ensure_future(hooks.view(live)))

        on_phase = hooks.on_phase
        slow = None
        if hooks.on_slow_phase is not None:
            from ringctl.orchestrator.slow_launch import SlowLaunch

            slow = SlowLaunch(self.kernels, hooks.on_slow_phase)
            phase_hook = on_phase

            def on_phase(phase: dict[str, Any]) -> None:
                slow.update(phase)
                if phase_hook is not None:
                    phase_hook(phase)

            slow.start()
        try:
            result = await serve(
                self.plan,
                duration=duration,
                down_timeout=down_timeout,
                on_phase=on_phase,
                on_tick=hooks.on_tick,
                tick_interval=hooks.tick_interval,
                on_signal=hooks.on_signal,
                engine=engine_for(self.plan, address),
                control=control,
                log_path=log_path,
                supervisor_ready=ready,
                on_output=hooks.on_output,
                echo_output=hooks.echo_output,
            )
        finally:
            if slow is not None:
                slow.stop()
            for view in views:
                await view  # it draws the last frame once the run has ended
        status = runs[0].status(fresh=True) if runs else {}
        return RunReport.of(result, status, self.name)

    run = _on_new_loop(run_async)

    async def smoke_async(self, *, address: str | None = None) -> SmokeResult:
        """What ``ringctl smoke`` does: run to completion (or ``smoke.duration``), check
        ``smoke.expect``, bounded by ``smoke.timeout``. Never raises for a failed run:
        the result says what failed."""
        from ringctl.orchestrator.smoke import smoke_plan

        return await smoke_plan(self.plan, engine=engine_for(self.plan, address))

    smoke = _on_new_loop(smoke_async)


def up(
    topology: TopologyFile,
    *,
    duration: float | None = None,
    down_timeout: float = 10.0,
    address: str | None = None,
    hooks: RunHooks | None = None,
) -> RunReport:
    """What ``ringctl up FILE`` does in the foreground: ``run`` with the control socket,
    output that a full disk cannot break (lost lines are counted in the report's
    ``output_lost``, the first one also in the run's event log), and ringctl's own log
    records in the name's log in the state directory, which ``up -d`` writes too.
    """
    from ringctl.control.paths import state_dir
    from ringctl.orchestrator.detach import DETACHED_ENV
    from ringctl.orchestrator.outputs import Losses, guard_std_streams, log_records_to

    directory = state_dir()
    directory.ensure()
    log_path = str(directory.files(topology.name).log)
    losses = Losses()
    guard_std_streams(losses)  # a full disk under stdout or the log must not end the run
    hooks = hooks or RunHooks()
    detached = bool(os.environ.get(DETACHED_ENV))
    # A detached supervisor's stderr is its log already; in the foreground, records go
    # to that log, never over the dashboard.
    log_records_to(None if detached else log_path, losses)
    start = hooks.on_start

    def on_start(live: LiveRun) -> None:
        losses.on_first_loss = lambda text: live.event("failure", text)
        if start is not None:
            start(live)

    hooks = replace(
        hooks,
        on_start=on_start,
        echo_output=None if detached else hooks.echo_output,  # the log would hold it twice
    )
    report = topology.run(
        duration=duration,
        down_timeout=down_timeout,
        control=True,
        address=address,
        log_path=log_path,
        hooks=hooks,
    )
    return replace(report, output_lost=losses.summary())


def graph_text(path: str | Path, fmt: str = "tree") -> str:
    """The topology as text: ``tree`` (a terminal), ``mermaid`` or ``dot``.

    Raises ``TopologyError`` listing every problem.
    """
    from ringctl.topology import load_topology
    from ringctl.topology.views import render

    return render(load_topology(path), fmt)


def topology_schema() -> dict[str, Any]:
    """The JSON Schema of topology files (``ringctl schema``)."""
    from ringctl.topology import topology_json_schema

    schema: dict[str, Any] = topology_json_schema()
    return schema


def engine_for(plan: Plan, address: str | None = None) -> Engine:
    """A new engine of the kind the plan names (``address``: the Ray cluster to join)."""
    from ringctl.engine import make_engine

    return make_engine(plan.engine, address=address)


def apply(
    path: str | Path,
    *,
    name: str | None = None,
    dry_run: bool = False,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Change a running topology into what its edited file describes (``ringctl apply``).

    ``name``: the running topology (default: the ``name`` in the file). The supervisor
    reads the file, refuses what cannot change live (``TopologyError`` naming each field
    and line) before anything changes, then carries out the changes in dependency order:
    kernels added are launched and wired before they are activated, kernels removed are
    drained, then terminated. ``dry_run`` only says what would change. Returns
    ``{"changed": bool, "changes": [{"kind", "subject", "detail", "line"}, ...]}`` (and,
    once applied, ``at``, ``left``, ``seconds``). Raises ``TopologyNotRunningError`` if
    no such topology runs, ``RunFailedError`` if the apply failed (it was rolled back,
    or the message says what state it left).
    """
    from ringctl.control.client import ControlClient, find
    from ringctl.topology import load_topology

    file = os.path.abspath(path)
    topology = load_topology(file)  # a bad file is refused here, before any request
    client = ControlClient(find(name or topology.name), timeout=timeout + 60.0)
    result: dict[str, Any] = client.request("apply", file=file, dry_run=dry_run, timeout=timeout)
    return result


def diff(name: str | None, path: str | Path) -> dict[str, Any]:
    """What ``apply`` would change in the running topology ``name`` (``ringctl diff``)."""
    return apply(path, name=name, dry_run=True)
