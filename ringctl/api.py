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

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ringctl.engine.accounting import Accounting
    from ringctl.engine.contract import Engine
    from ringctl.engine.local.output import OutputRecord
    from ringctl.orchestrator.plan import Plan
    from ringctl.orchestrator.smoke import SmokeResult
    from ringctl.orchestrator.supervisor import DownReport, RunResult, Supervisor
    from ringctl.topology.errors import Diagnostic

__all__ = ["RunHooks", "RunReport", "TopologyFile", "apply", "check", "diff", "load"]


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


def check(path: str | Path, *, import_entries: bool = True) -> list[Diagnostic]:
    """Every problem with a topology file, as ``Diagnostic`` objects; empty when it is fine.

    ``import_entries=False`` imports nothing: kernel modules are only looked up (their
    top-level package must exist), as plain ``ringctl validate`` does.
    """
    from ringctl.topology import TopologyError, load_topology, resolve_entries
    from ringctl.topology.importer import find_entries

    try:
        topology = load_topology(path)
        if import_entries:
            resolve_entries(topology)
        else:
            find_entries(topology)
    except TopologyError as exc:
        return list(exc.diagnostics)
    return []


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
    #: Called once the supervisor exists, before the launch (for a live view of it).
    supervisor_ready: Callable[[Supervisor], None] | None = None
    #: With ``control=True``: called with each record of what a kernel printed, logged
    #: or raised (``ringctl.engine.local.output.OutputRecord``); all of them also go to the
    #: name's kernel log that ``ringctl logs`` reads.
    on_output: Callable[[OutputRecord], None] | None = None
    #: With ``control=True``: also write what kernels print here, as they print it.
    echo_output: TextIO | None = None


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
        return cls(
            name=name,
            outcome=result.outcome,
            exit_code=result.exit_code,
            reason=result.reason,
            failure=result.failure,
            down=result.down,
            accounting=result.accounting,
            status=status,
        )


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
        from ringctl.orchestrator.service import serve

        hooks = hooks or RunHooks()
        supervisors: list[Supervisor] = []

        def ready(sup: Supervisor) -> None:
            supervisors.append(sup)
            if hooks.supervisor_ready is not None:
                hooks.supervisor_ready(sup)

        result = await serve(
            self.plan,
            duration=duration,
            down_timeout=down_timeout,
            on_phase=hooks.on_phase,
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
        status = supervisors[0].status(fresh=True) if supervisors else {}
        return RunReport.of(result, status, self.name)

    def run(
        self,
        *,
        duration: float | None = None,
        down_timeout: float = 10.0,
        control: bool = False,
        address: str | None = None,
    ) -> RunReport:
        """``run_async`` on a new event loop (uvloop when installed); see there."""
        _no_running_loop("run")
        from ringctl.engine.local.loop import run

        return run(
            self.run_async(
                duration=duration, down_timeout=down_timeout, control=control, address=address
            )
        )

    async def smoke_async(self, *, address: str | None = None) -> SmokeResult:
        """What ``ringctl smoke`` does: run to completion (or ``smoke.duration``), check
        ``smoke.expect``, bounded by ``smoke.timeout``. Never raises for a failed run:
        the result says what failed."""
        from ringctl.orchestrator.smoke import smoke_plan

        return await smoke_plan(self.plan, engine=engine_for(self.plan, address))

    def smoke(self, *, address: str | None = None) -> SmokeResult:
        """``smoke_async`` on a new event loop; see there."""
        _no_running_loop("smoke")
        from ringctl.engine.local.loop import run

        return run(self.smoke_async(address=address))


def engine_for(plan: Plan, address: str | None = None) -> Engine:
    """A new engine of the kind the plan names (``address``: the Ray cluster to join)."""
    from ringctl.engine import make_engine

    return make_engine(plan.engine, address=address)


def _no_running_loop(method: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    from ringctl.exceptions import UserInputError

    raise UserInputError(
        f"TopologyFile.{method}() cannot start an event loop inside a running one",
        hint=f"use `await topology.{method}_async(...)` (in a notebook, or any async code)",
    )


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
