"""What ``ringctl apply`` would change: the running plan against the edited file's.

Pure: two ``Plan`` values in, an ordered list of ``Change`` out (and the ``Refusal`` of
anything that cannot change while the topology runs). The order is the order the
supervisor carries them out in, the two phases of ``up``:

1. launch: kernels added (dependencies first), kernels restarted with new params or a
   new entry, replicas scaled, settings applied in place;
2. wire: queues added, switched to another consumer, retuned or removed, every queue of a
   producer's port in one step, so no message is lost or sent twice;
3. activate the kernels added;
4. kernels removed: stopped once what they hold has drained, counted by the law.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from ringctl.orchestrator.plan import EdgePlan, KernelPlan, Plan

__all__ = ["Change", "Diff", "Refusal", "diff", "edge_key"]

ChangeKind = Literal[
    "add", "restart", "scale", "update", "connect", "move", "retune", "disconnect", "remove"
]
#: The mark each kind gets in the printed plan (as ``terraform plan`` marks them).
MARKS: Final[Mapping[str, str]] = {
    "add": "+", "restart": "-/+", "scale": "~", "update": "~", "connect": "+",
    "move": "~", "retune": "~", "disconnect": "-", "remove": "-",
}  # fmt: skip
EdgeKey = tuple[str, str, str]  # producer, port, consumer
DataPath = tuple[str | int, ...]


def edge_key(e: EdgePlan) -> EdgeKey:
    return (e.producer, e.port, e.consumer)


def edge_name(e: EdgePlan) -> str:
    return f"{e.producer}.{e.port} -> {e.consumer}"


@dataclass(frozen=True, slots=True)
class Change:
    """One step of an apply. ``kernel`` is the kernel as the file now has it (add,
    restart, scale, update, remove: the running one); ``edge`` the queue as the file now
    has it (disconnect: the running one), ``old_edge`` the queue a move replaces."""

    kind: ChangeKind
    subject: str
    detail: str
    kernel: KernelPlan | None = None
    edge: EdgePlan | None = None
    old_edge: EdgePlan | None = None

    @property
    def line(self) -> str:
        what = "kernel" if self.kernel is not None else "queue"
        return f"{MARKS[self.kind]:>3} {what} {self.subject}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail,
                "line": self.line}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Refusal:
    """A change that cannot be made while the topology runs; ``path`` is where it is in
    the file (``("kernels", "square", "backend")``), for its line."""

    path: DataPath
    message: str
    hint: str


@dataclass(frozen=True, slots=True)
class Diff:
    changes: tuple[Change, ...]
    refused: tuple[Refusal, ...]

    @property
    def empty(self) -> bool:
        return not self.changes and not self.refused


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _params_detail(old: Any, new: Any) -> str:
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return f"params {_show(old)} -> {_show(new)}"
    parts = []
    for key in sorted(set(old) | set(new), key=str):
        if key not in new:
            parts.append(f"params.{key} removed")
        elif key not in old:
            parts.append(f"params.{key} = {_show(new[key])}")
        elif old[key] != new[key]:
            parts.append(f"params.{key} {_show(old[key])} -> {_show(new[key])}")
    return ", ".join(parts)


def _restart_text(p: Any) -> str:
    return f"{p.policy} (max_restarts {p.max_restarts}, backoff {p.backoff:g}s)"


def _kernel_changes(old: KernelPlan, new: KernelPlan) -> tuple[list[Change], list[Refusal]]:
    kid = new.id
    refused: list[Refusal] = []
    if old.backend != new.backend:
        refused.append(Refusal(("kernels", kid, "backend"),
            f"kernel '{kid}': backend {old.backend} -> {new.backend} cannot change while it runs",
            "keep the backend, or ringctl down and up the topology"))  # fmt: skip
    if (old.persistent is None) != (new.persistent is None):
        refused.append(Refusal(("kernels", kid, "persistent") if new.persistent else
            ("kernels", kid), f"kernel '{kid}': cannot become "
            f"{'persistent' if new.persistent else 'an ordinary kernel'} while it runs",
            "ringctl down and up the topology, or add it as a new kernel"))  # fmt: skip
    elif old.persistent != new.persistent:
        refused.append(Refusal(("kernels", kid, "persistent"),
            f"kernel '{kid}': its persistent: settings (rings, batch, spin) cannot change "
            "while it runs", "keep them, or ringctl down and up the topology"))  # fmt: skip
    elif old.persistent is not None and old.entry != new.entry:
        refused.append(Refusal(("kernels", kid, "entry"),
            f"kernel '{kid}': a persistent kernel's entry (and so its record types) cannot "
            "change while it runs", "add the new handler as a new kernel, or ringctl down "
            "and up the topology"))  # fmt: skip
    if dict(old.resources) != dict(new.resources):
        refused.append(Refusal(("kernels", kid, "resources"),
            f"kernel '{kid}': resources cannot change while it runs (they place its replicas)",
            "keep them, or ringctl down and up the topology"))  # fmt: skip
    if refused:
        return [], refused
    out: list[Change] = []
    why = []
    if old.entry != new.entry:
        why.append(f"entry {old.entry} -> {new.entry}")
    if old.params != new.params:
        why.append(_params_detail(old.params, new.params))
    if old.queue_size != new.queue_size:
        why.append(f"queue_size {old.queue_size} -> {new.queue_size}")
    if why:
        state = "ctx.state kept" if new.keep_state else "ctx.state reset (keep_state: false)"
        if new.persistent is not None:
            state = "its state array made anew from the params"
        out.append(Change("restart", kid, f"{'; '.join(why)} (restart, {state})", kernel=new))
    if old.replicas != new.replicas:
        out.append(Change("scale", kid, f"replicas {old.replicas} -> {new.replicas}", kernel=new))
    settings = []
    if old.restart != new.restart:
        settings.append(f"restart {_restart_text(old.restart)} -> {_restart_text(new.restart)}")
    if old.keep_state != new.keep_state:
        settings.append(f"keep_state {old.keep_state} -> {new.keep_state}")
    if settings:
        out.append(Change("update", kid, "; ".join(settings) + " (applied live)", kernel=new))
    return out, []


def _edge_text(e: EdgePlan) -> str:
    text = f"capacity {e.capacity}, {e.backpressure}"
    return text + (f", fanout {e.fanout}" if e.fanout else "")


def _retune(old: EdgePlan, new: EdgePlan) -> str:
    parts = []
    if old.capacity != new.capacity:
        parts.append(f"capacity {old.capacity} -> {new.capacity}")
    if old.backpressure != new.backpressure:
        parts.append(f"backpressure {old.backpressure} -> {new.backpressure}")
    if old.fanout != new.fanout:
        parts.append(f"fanout {old.fanout or 'broadcast'} -> {new.fanout or 'broadcast'}")
    if old.feedback != new.feedback:
        parts.append(f"feedback {old.feedback} -> {new.feedback}")
    return ", ".join(parts)


def _edge_changes(old: Plan, new: Plan, removed: set[str]) -> list[Change]:
    before = {edge_key(e): e for e in old.edges}
    after = {edge_key(e): e for e in new.edges}
    gone = [e for k, e in before.items() if k not in after]
    came = [e for k, e in after.items() if k not in before]
    out: list[Change] = []
    # A port that loses one consumer and gains one: its producer is switched.
    moved: dict[EdgeKey, EdgePlan] = {}
    for e in came:
        same_port = [g for g in gone if (g.producer, g.port) == (e.producer, e.port)]
        gained = [c for c in came if (c.producer, c.port) == (e.producer, e.port)]
        if len(same_port) == 1 and len(gained) == 1:
            moved[edge_key(same_port[0])] = e
    for e in came:
        old_edge = next((g for g, to in moved.items() if to is e), None)
        if old_edge is not None:
            was = before[old_edge]
            out.append(Change("move", f"{e.producer}.{e.port}",
                f"{was.consumer} -> {e.consumer} (producer switched; what {was.consumer} "
                "holds drains there)", edge=e, old_edge=was))  # fmt: skip
        else:
            out.append(Change("connect", edge_name(e), _edge_text(e), edge=e))
    for key, e in after.items():
        if key in before and before[key] != e:
            out.append(Change("retune", edge_name(e), _retune(before[key], e) + " (applied live)",
                              edge=e))  # fmt: skip
    for e in gone:
        if edge_key(e) in moved:
            continue
        into_removed = e.consumer in removed
        how = "with its consumer" if into_removed else "its consumer drains what it holds"
        out.append(Change("disconnect", edge_name(e), f"removed ({how})", edge=e))
    return out


def diff(old: Plan, new: Plan) -> Diff:
    """The changes that turn the running ``old`` into ``new``, in the order they are made,
    and what cannot be changed live (when anything is refused, nothing is changed)."""
    refused: list[Refusal] = []
    if old.engine != new.engine:
        refused.append(Refusal(("engine",),
            f"engine {old.engine} -> {new.engine} cannot change while the topology runs",
            f"keep engine: {old.engine}, or ringctl down and up the topology"))  # fmt: skip
    running = {k.id: k for k in old.kernels}
    wanted = {k.id: k for k in new.kernels}
    refused += _ring_to_ring(old, new)
    removed = [k for k in old.kernels if k.id not in wanted]
    added = [k for k in new.kernels if k.id not in running]
    kernel_steps: list[Change] = []
    for k in new.kernels:
        if k.id in running:
            steps, no = _kernel_changes(running[k.id], k)
            kernel_steps.extend(steps)
            refused.extend(no)
    adds = [Change("add", k.id, _added_text(k), kernel=k) for k in added]
    edges = _edge_changes(old, new, {k.id for k in removed})
    removes = [
        Change("remove", k.id, "drained, then terminated (what it holds is counted)", kernel=k)
        for k in reversed(removed)
    ]
    if refused:
        return Diff((), tuple(refused))
    return Diff((*adds, *kernel_steps, *edges, *removes), ())


def _ring_to_ring(old: Plan, new: Plan) -> list[Refusal]:
    """Persistent kernels wired to each other share a ring inside one worker, laid out
    when the topology started: such a queue cannot be added, moved or removed live."""
    persistent = {k.id for k in (*old.kernels, *new.kernels) if k.persistent is not None}
    before = {edge_key(e) for e in old.edges}
    after = {edge_key(e) for e in new.edges}
    out = []
    for index, e in enumerate(new.edges):
        if {e.producer, e.consumer} <= persistent and edge_key(e) not in before:
            out.append(Refusal(("queues", index),
                f"queue {edge_name(e)}: a ring between persistent kernels cannot be wired "
                "while the topology runs", "ringctl down and up the topology"))  # fmt: skip
    kept = {k.id for k in new.kernels}
    for e in old.edges:
        ends = {e.producer, e.consumer}
        if ends <= persistent and edge_key(e) not in after and ends & kept:  # not both gone
            out.append(Refusal(("queues",),
                f"queue {edge_name(e)}: a ring between persistent kernels cannot be "
                "removed while the topology runs (unless both kernels go)",
                "ringctl down and up the topology"))  # fmt: skip
    return out


def _added_text(k: KernelPlan) -> str:
    plural = "s" if k.replicas != 1 else ""
    text = f"{k.entry}, {k.replicas} replica{plural}"
    if k.params:
        text += f", params {_show(k.params)}"
    return text + " (launched, wired, then activated)"
