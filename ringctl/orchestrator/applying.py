"""Carrying out ``ringctl apply``: the changes of ``changes.diff`` on a running topology.

The supervisor calls ``carry_out`` holding its command lock. Everything is checked before
anything changes (what the engine can do, which kernels can still be changed); then, as
``up`` does, everything new is launched and wired before anything new is activated:

1. kernels added are launched; kernels whose params or entry changed are restarted with
   the new ones (``ctx.state`` kept unless the file says ``keep_state: false``);
   replicas are scaled;
2. every queue added, switched or removed is rewired in one step (``Engine.rewire``), so
   each message goes to the old consumer or the new one, never both, never neither;
   queue settings are changed in place;
3. the kernels added are activated; the supervisor runs the new plan from here on;
4. kernels removed are stopped as ``down`` stops them (those no queue feeds first, the
   rest once they have taken what was queued for them); what they still held is
   counted as left.

A failure in steps 1-3 undoes what was done, newest first, and says so; step 4 only
stops kernels, and its report says what each one left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Final, Protocol

from ringctl.engine.contract import Capability, Engine, Wire
from ringctl.engine.lifecycle import RUNNING as _RUNNING
from ringctl.engine.lifecycle import KernelState
from ringctl.exceptions import ControlPlaneError, RingctlError, RunFailedError, UserInputError
from ringctl.orchestrator.changes import Change, Diff, diff, edge_key
from ringctl.orchestrator.plan import EdgePlan, KernelPlan, Plan
from ringctl.orchestrator.policy import Policy
from ringctl.orchestrator.states import TopologyState

__all__ = [
    "Applied", "carry_out", "diff", "load_for_apply", "preview", "refusal_error", "running_plan",
]  # fmt: skip

S = KernelState


class Running(Protocol):
    """What apply needs of the supervisor of the running topology (it holds the command
    lock while apply runs)."""

    plan: Plan
    policy: Policy

    @property
    def runtime(self) -> Engine: ...

    @property
    def state(self) -> TopologyState: ...

    def event(self, kind: str, text: str) -> None: ...

    def forget_status(self) -> None: ...

    async def cancel_backoff(self, kernel_id: str) -> None: ...


#: The engine capabilities each kind of change needs (the local engine has them all).
_NEEDS: Final[dict[str, tuple[Capability, ...]]] = {
    "add": ("rewire",), "restart": ("reconfigure", "restart"), "scale": ("scale",),
    "connect": ("rewire",), "move": ("rewire",), "disconnect": ("rewire",),
    "retune": ("rewire",), "remove": ("rewire",), "update": (),
}  # fmt: skip
_VERBS: Final = {
    "add": "add a kernel", "restart": "restart a kernel with new params",
    "scale": "scale a kernel", "connect": "rewire a queue", "move": "rewire a queue",
    "disconnect": "rewire a queue", "retune": "retune a queue", "remove": "remove a kernel",
    "update": "update a kernel",
}  # fmt: skip
Undo = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Applied:
    """What an apply did: the file, when, each change's line, and what removed kernels
    left behind (counted as left by the accounting law)."""

    file: str
    at: float
    changes: tuple[str, ...]
    left: dict[str, int]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "at": round(self.at, 3),
            "done": list(self.changes),
            "left": dict(self.left),
            "seconds": round(self.seconds, 3),
        }


def load_for_apply(path: str, running: Plan) -> tuple[Plan, Diff, Any]:
    """Load the edited file (its entries imported) and diff it against ``running``.

    Returns the new plan (named as the running topology), the diff and the file's source
    map. Raises ``TopologyError`` for a bad file, exactly as ``up`` would.
    """
    from ringctl.orchestrator.loading import plan_from_file
    from ringctl.topology import load_topology

    source = load_topology(path).source_map
    # A topology started with --engine runs on it: a file that names no engine agrees.
    names_engine = source is not None and source.contains(("engine",))
    new = plan_from_file(path, engine=None if names_engine else running.engine)
    new = replace(new, name=running.name)
    return new, diff(running, new), source


def running_plan(sup: Running) -> Plan:
    """The supervisor's plan as it runs now: a ``scale`` since is part of it."""
    kernels = []
    for k in sup.plan.kernels:
        if sup.runtime.get_state(k.id) in _RUNNING:
            replicas = sup.runtime.get_info(k.id).replicas
            k = replace(k, replicas=replicas) if replicas != k.replicas else k
        kernels.append(k)
    return replace(sup.plan, kernels=kernels)


def refusal_error(d: Diff, source: Any, path: str) -> UserInputError:
    """The refusals as one error naming each field and its line in the file."""
    from ringctl.topology import TopologyError
    from ringctl.topology.loader import SourceMap

    where = source or SourceMap(path, None)
    found = []
    for r in d.refused:
        at = r.path
        if at[-1] == "backend" and not where.contains(at):  # it comes from the defaults
            at = ("defaults", "backend")
        found.append(where.diagnostic(at, r.message, r.hint))
    return TopologyError(sorted(found, key=lambda x: (x.line or 0, x.column or 0)))


def preview(d: Diff) -> dict[str, Any]:
    return {"changes": [c.as_dict() for c in d.changes], "changed": bool(d.changes)}


def _check(sup: Running, changes: Sequence[Change]) -> None:
    """Refuse, before anything changes, what this engine or these kernels cannot do."""
    rt = sup.runtime
    for c in changes:
        if any(need not in rt.capabilities for need in _NEEDS[c.kind]):
            raise UserInputError(
                f"cannot apply `{c.line.strip()}`: engine {rt.name} cannot "
                f"{_VERBS[c.kind]} while the topology runs",
                hint="nothing was changed; make this change with ringctl down and up",
            )
        if c.kind in ("restart", "scale"):
            assert c.kernel is not None
            kid = c.kernel.id
            if kid in sup.policy.restart_due:
                raise ControlPlaneError(
                    f"cannot apply `{c.line.strip()}`: {kid} waits for its restart",
                    hint="nothing was changed; apply again once it runs (ringctl ps)",
                )
            if rt.get_state(kid) not in _RUNNING:
                raise ControlPlaneError(
                    f"cannot apply `{c.line.strip()}`: {kid} has terminated",
                    hint="nothing was changed; a kernel that ended cannot be changed live",
                )
        if c.kind == "add" and c.kernel is not None and c.kernel.id in rt.kernel_ids:
            unprocessed = _unprocessed(rt, c.kernel.id)
            if unprocessed:
                raise UserInputError(
                    f"cannot apply `{c.line.strip()}`: a kernel {c.kernel.id} was removed "
                    f"earlier in this run with {unprocessed} messages unprocessed, and the "
                    "run's accounting still counts them under that id",
                    hint="nothing was changed; give the new kernel another id, or ringctl "
                    "down and up the topology",
                )
    for c in changes:
        if c.edge is not None and c.kind in ("connect", "move"):
            for kid in (c.edge.producer, c.edge.consumer):
                added = any(a.kind == "add" and a.kernel and a.kernel.id == kid for a in changes)
                if not added and rt.get_state(kid) not in _RUNNING:
                    raise ControlPlaneError(
                        f"cannot apply `{c.line.strip()}`: {kid} has terminated",
                        hint="nothing was changed",
                    )


def _unprocessed(rt: Engine, kid: str) -> int:
    """Messages accepted for ``kid`` that it did not process (left or lost)."""
    return sum(q.left + q.lost for q in rt.accounting().queues if q.consumer == kid)


def _accepted(rt: Engine, kid: str) -> int:
    return sum(q.accepted for q in rt.accounting().queues if q.consumer == kid)


def launch(rt: Engine, k: KernelPlan) -> Awaitable[None]:
    """Launch the kernel ``k`` plans on ``rt`` (``up`` and ``apply`` both do)."""
    return rt.launch(k.id, k.kernel, params=k.params, replicas=k.replicas,
                     queue_size=k.queue_size, backend=k.backend, entry=k.entry,
                     resources=dict(k.resources))  # fmt: skip


def _wire(e: EdgePlan) -> Wire:
    return (e.producer, e.port, e.consumer, e.capacity, e.backpressure, e.fanout)


async def carry_out(sup: Running, new: Plan, changes: Sequence[Change], file: str,
                    timeout: float = 10.0) -> Applied:  # fmt: skip
    """Make ``changes`` (``diff(sup.plan, new)``) on the running topology; the caller
    holds the supervisor's command lock."""
    _check(sup, changes)
    t0 = time.monotonic()
    rt = sup.runtime
    old = sup.plan
    undo: list[tuple[str, Undo]] = []
    done: list[str] = []
    by_kind = {kind: [c for c in changes if c.kind == kind] for kind in _NEEDS}
    removed = {c.kernel.id for c in by_kind["remove"] if c.kernel is not None}
    step = ""
    try:
        for c in by_kind["add"]:
            k = c.kernel
            assert k is not None
            step = c.line.strip()
            if k.id in rt.kernel_ids:  # removed by an earlier apply, all it took processed
                rt.remove(k.id)
            await launch(rt, k)
            undo.append((f"launch of {k.id}", _unlaunch(rt, k.id)))
            done.append(c.line)
        for c in changes:  # consumers before their producers, as the plan lists them
            if c.kind not in ("restart", "scale", "update"):
                continue
            assert c.kernel is not None
            step = c.line.strip()
            if c.kind == "restart":
                await _restart(sup, rt, old, c, undo, timeout)
            elif c.kind == "scale":
                kid, n = c.kernel.id, c.kernel.replicas
                before = await rt.scale(kid, n, timeout=timeout)
                undo.append((f"scale of {kid}", partial(rt.scale, kid, before, timeout=timeout)))
            done.append(c.line)
        step = "rewiring the queues"
        connect = [c.edge for c in (*by_kind["connect"], *by_kind["move"]) if c.edge]
        cut = [c.old_edge for c in by_kind["move"] if c.old_edge]
        cut += [c.edge for c in by_kind["disconnect"] if c.edge and c.edge.producer not in removed]
        if connect or cut:
            await rt.rewire([_wire(e) for e in connect], [edge_key(e) for e in cut])
            back = partial(rt.rewire, [_wire(e) for e in cut], [edge_key(e) for e in connect])
            undo.append(("rewiring", back))
        for c in (*by_kind["connect"], *by_kind["move"], *by_kind["disconnect"]):
            if c.edge is None or c.edge.producer not in removed:
                done.append(c.line)
        before_edges = {edge_key(e): e for e in old.edges}
        for c in by_kind["retune"]:
            e = c.edge
            assert e is not None
            step = c.line.strip()
            await _retune(rt, e)
            was = before_edges[edge_key(e)]
            undo.append((f"retune of {e.producer}.{e.port}", partial(_retune, rt, was)))
            done.append(c.line)
        for c in by_kind["add"]:
            assert c.kernel is not None
            step = f"activating {c.kernel.id}"
            await rt.activate(c.kernel.id)
            sup.policy.since[c.kernel.id] = time.monotonic()
            if sup.state == "paused":  # everything else is paused: so is what joins it
                sup.policy.paused.add(c.kernel.id)
                await rt.deactivate(c.kernel.id)
    except Exception as exc:
        failures = await _roll_back(undo)
        sup.forget_status()
        reason = getattr(exc, "message", None) or str(exc)
        if failures:
            raise RunFailedError(
                f"apply failed at `{step}`: {reason}; undoing it failed too "
                f"({'; '.join(failures)}): the topology runs partly changed",
                hint=f"ringctl ps {old.name} shows what runs; ringctl down and up restores "
                "a known state",
            ) from exc
        undone = ", ".join(name for name, _ in reversed(undo)) or "nothing had changed yet"
        raise RunFailedError(
            f"apply failed at `{step}`: {reason}; rolled back ({undone}); "
            f"{old.name} runs as before",
            hint=getattr(exc, "hint", None) or "fix the file and apply again",
        ) from exc
    sup.plan = replace(new, file=file)
    left = await _remove(sup, rt, old, removed, timeout)
    done += [c.line for c in by_kind["disconnect"] if c.edge and c.edge.producer in removed]
    done += [c.line for c in by_kind["remove"]]
    sup.forget_status()
    return Applied(file, time.time(), tuple(done), left, time.monotonic() - t0)


async def _restart(sup: Running, rt: Engine, old: Plan, c: Change, undo: list[tuple[str, Undo]],
                   timeout: float) -> None:  # fmt: skip
    k = c.kernel
    assert k is not None
    was = old.kernel(k.id)
    # A persistent kernel keeps its running bridge: only its params change.
    func = was.kernel if was.persistent is not None else k.kernel
    rt.reconfigure(k.id, func, params=k.params, queue_size=k.queue_size, keep_state=k.keep_state)
    sup.policy.restart_due[k.id] = time.monotonic()
    try:

        async def back() -> None:
            rt.reconfigure(k.id, was.kernel, params=was.params, queue_size=was.queue_size)
            if rt.get_state(k.id) in _RUNNING:
                await rt.restart(k.id, timeout=timeout)
            else:  # the new instance did not start
                await rt.relaunch(k.id)
                await rt.activate(k.id)
            sup.policy.since[k.id] = time.monotonic()

        undo.append((f"restart of {k.id}", _marked(sup, k.id, back)))  # whether it starts or not
        await rt.restart(k.id, timeout=timeout)
        sup.policy.since[k.id] = time.monotonic()
        sup.event("restart", f"{k.id} restarted by apply ({c.detail})")
    finally:
        sup.policy.restart_due.pop(k.id, None)
        sup.policy.handled[k.id] = rt.get_info(k.id).restarts


def _marked(sup: Running, kid: str, action: Undo) -> Undo:
    """``action`` with the kernel marked as restarting: the watch loop leaves it be."""

    async def run() -> None:
        sup.policy.restart_due[kid] = time.monotonic()
        try:
            await action()
        finally:
            sup.policy.restart_due.pop(kid, None)
            sup.policy.handled[kid] = sup.runtime.get_info(kid).restarts

    return run


def _unlaunch(rt: Engine, kid: str) -> Undo:
    async def run() -> None:
        if rt.get_state(kid) in _RUNNING:
            await rt.terminate(kid, timeout=2.0)
        rt.close_inbox(kid, "left")
        if not _accepted(rt, kid):  # else it stays (terminated) so its counts stay in the run
            rt.remove(kid)

    return run


def _retune(rt: Engine, e: EdgePlan) -> Awaitable[None]:
    """Give the running queue ``e``'s settings."""
    return rt.retune(e.producer, e.port, e.consumer, capacity=e.capacity,
                     backpressure=e.backpressure, fanout=e.fanout)  # fmt: skip


async def _roll_back(undo: list[tuple[str, Undo]]) -> list[str]:
    failures = []
    for name, action in reversed(undo):
        try:
            await action()
        except (RingctlError, ValueError, KeyError) as exc:
            failures.append(f"{name}: {exc}")
    return failures


async def _remove(sup: Running, rt: Engine, old: Plan, removed: set[str], timeout: float
                  ) -> dict[str, int]:  # fmt: skip
    """Stop the removed kernels as ``down`` would; what they held is counted as left."""
    if not removed:
        return {}
    order = [kid for kid in old.order if kid in removed]
    for kid in order:  # one waiting out its restart backoff is not brought back
        await sup.cancel_backoff(kid)
        sup.policy.restart_due.pop(kid, None)
    # Those no queue feeds stop first (sources); the rest once they have drained.
    fed = {e.consumer for e in old.edges if not e.feedback}
    left: dict[str, int] = {}
    deadline = time.monotonic() + timeout

    async def stop(kid: str) -> None:
        if rt.get_state(kid) in (S.ACTIVE, S.DEACTIVATED, S.LAUNCHED):
            if rt.get_state(kid) is S.DEACTIVATED:
                await rt.reactivate(kid)  # a paused kernel drains too
            wait = max(0.1, deadline - time.monotonic())
            report = await rt.terminate(kid, timeout=wait)
            if report.left_in_inbox:
                left[kid] = report.left_in_inbox
        if swept := rt.close_inbox(kid, "left"):
            left[kid] = left.get(kid, 0) + swept

    await asyncio.gather(*(stop(kid) for kid in order if kid not in fed))
    rest = [kid for kid in order if kid in fed]
    for kid in rest:
        if rt.get_state(kid) is S.DEACTIVATED:
            await rt.reactivate(kid)
    # Only a kernel that still runs can drain: one that ended (waiting out a restart
    # that was just cancelled, or failed) has its queue counted as left at once.
    draining = [kid for kid in rest if rt.get_state(kid) in _RUNNING]
    while draining and time.monotonic() < deadline:
        if all(rt.inflight(kid) == 0 for kid in draining) and rt.is_quiescent(draining):
            break
        await asyncio.sleep(0.02)
    for kid in reversed(rest):
        await stop(kid)
    # Their own queues go too (what one to a kernel that stays holds is taken there).
    gone = [edge_key(e) for e in old.edges if e.producer in removed]
    if gone:
        await rt.rewire((), gone)
    for kid in order:
        sup.policy.paused.discard(kid)
        what = f" ({left[kid]} messages left, counted)" if left.get(kid) else " (drained)"
        sup.event("apply", f"{kid} removed{what}")
    return left
