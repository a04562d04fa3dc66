"""The pure diff behind ``ringctl apply`` and ``ringctl diff``: running plan vs edited file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ringctl import KernelContext, ring_kernel
from ringctl.orchestrator.changes import Change, diff, edge_key
from ringctl.orchestrator.plan import EdgePlan, KernelPlan, Plan, RestartPolicy


@ring_kernel
async def body(ctx: KernelContext) -> None:
    await ctx.receive()


def k(kid: str, **kw: Any) -> KernelPlan:
    kw.setdefault("entry", "mod:body")
    return KernelPlan(id=kid, kernel=body, **kw)


def plan(*kernels: KernelPlan, edges: tuple[EdgePlan, ...] = (), engine: str = "local") -> Plan:
    return Plan(name="t", kernels=list(kernels), edges=list(edges), engine=engine)


def lines(old: Plan, new: Plan) -> list[str]:
    return [c.line for c in diff(old, new).changes]


def patch(old: Plan, changes: Sequence[Change], *, order: Sequence[str] | None = None) -> Plan:
    """The plan ``changes`` lead to from ``old``: ``patch(a, diff(a, b))`` must equal ``b``
    (kernels by id, queues as a set). ``order``: the launch order to give it; default:
    the kernels kept in their order, then those added."""
    kernels = {k.id: k for k in old.kernels}
    edges = {edge_key(e): e for e in old.edges}
    for c in changes:
        if c.kind == "add" and c.kernel is not None:
            kernels[c.kernel.id] = c.kernel
        elif c.kind == "remove" and c.kernel is not None:
            kernels.pop(c.kernel.id, None)
        elif c.kind == "restart" and c.kernel is not None:
            k, to = kernels[c.kernel.id], c.kernel
            kernels[k.id] = replace(
                k, kernel=to.kernel, entry=to.entry, params=to.params, queue_size=to.queue_size
            )
        elif c.kind == "scale" and c.kernel is not None:
            kernels[c.kernel.id] = replace(kernels[c.kernel.id], replicas=c.kernel.replicas)
        elif c.kind == "update" and c.kernel is not None:
            k = kernels[c.kernel.id]
            kernels[k.id] = replace(k, restart=c.kernel.restart, keep_state=c.kernel.keep_state)
        elif c.kind in ("connect", "retune") and c.edge is not None:
            edges[edge_key(c.edge)] = c.edge
        elif c.kind == "move" and c.edge is not None and c.old_edge is not None:
            edges.pop(edge_key(c.old_edge), None)
            edges[edge_key(c.edge)] = c.edge
        elif c.kind == "disconnect" and c.edge is not None:
            edges.pop(edge_key(c.edge), None)
    ids = [i for i in (order or []) if i in kernels] or list(kernels)
    return replace(old, kernels=[kernels[i] for i in ids], edges=list(edges.values()))


def same_plan(a: Plan, b: Plan) -> bool:
    """Whether two plans run the same kernels and queues (launch order aside)."""
    return (
        a.engine == b.engine
        and {k.id: _kernel_key(k) for k in a.kernels} == {k.id: _kernel_key(k) for k in b.kernels}
        and {edge_key(e): e for e in a.edges} == {edge_key(e): e for e in b.edges}
    )


def _kernel_key(k: KernelPlan) -> tuple[Any, ...]:
    return (
        k.entry,
        _freeze(k.params),
        k.replicas,
        k.backend,
        k.queue_size,
        k.restart,
        _freeze(dict(k.resources)),
        k.keep_state,
        _freeze(k.persistent),
    )


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


BASE = plan(
    k("sink"),
    k("square", params={"factor": 2}, replicas=2),
    k("source"),
    edges=(EdgePlan("source", "square", capacity=64), EdgePlan("square", "sink", capacity=64)),
)


def test_nothing_changed_is_an_empty_diff() -> None:
    assert diff(BASE, BASE).empty
    assert lines(BASE, replace(BASE, file="/elsewhere.yaml")) == []


def test_params_restart_the_kernel_and_say_what_happens_to_its_state() -> None:
    new = replace(BASE, kernels=[BASE.kernels[0], k("square", params={"factor": 3},
                                                    replicas=2), BASE.kernels[2]])  # fmt: skip
    assert lines(BASE, new) == ["-/+ kernel square: params.factor 2 -> 3 (restart, ctx.state kept)"]
    square = k("square", params={"factor": 3}, replicas=2, keep_state=False)
    reset = replace(new, kernels=[BASE.kernels[0], square, BASE.kernels[2]])
    restart, update = lines(BASE, reset)
    assert "ctx.state reset (keep_state: false)" in restart
    assert update == "  ~ kernel square: keep_state True -> False (applied live)"


def test_replicas_scale_and_policies_apply_live() -> None:
    new = replace(BASE, kernels=[
        BASE.kernels[0],
        k("square", params={"factor": 2}, replicas=4, restart=RestartPolicy("always")),
        BASE.kernels[2],
    ])  # fmt: skip
    assert lines(BASE, new) == [
        "  ~ kernel square: replicas 2 -> 4",
        "  ~ kernel square: restart never (max_restarts 3, backoff 0.5s) -> always "
        "(max_restarts 3, backoff 0.5s) (applied live)",
    ]


def test_added_kernel_moved_edge_and_removed_kernel_in_dependency_order() -> None:
    new = plan(
        k("audit"),
        k("square", params={"factor": 2}, replicas=2),
        k("source"),
        edges=(EdgePlan("source", "square", capacity=64), EdgePlan("square", "audit", capacity=8)),
    )
    assert lines(BASE, new) == [
        "  + kernel audit: mod:body, 1 replica (launched, wired, then activated)",
        "  ~ queue square.out: sink -> audit (producer switched; what sink holds drains there)",
        "  - kernel sink: drained, then terminated (what it holds is counted)",
    ]


def test_queue_settings_retune_in_place_and_removed_queues_drain() -> None:
    new = replace(
        BASE, edges=[EdgePlan("source", "square", capacity=16, backpressure="drop_newest")]
    )
    assert lines(BASE, new) == [
        "  ~ queue source.out -> square: capacity 64 -> 16, backpressure block -> drop_newest "
        "(applied live)",
        "  - queue square.out -> sink: removed (its consumer drains what it holds)",
    ]


def test_what_cannot_change_live_is_refused_and_nothing_else_is_planned() -> None:
    new = plan(
        k("sink", backend="cuda"),
        k("square", params={"factor": 9}, replicas=2),
        k("source"),
        edges=tuple(BASE.edges),
        engine="ray",
    )
    d = diff(BASE, new)
    assert d.changes == ()
    assert [r.path for r in d.refused] == [("engine",), ("kernels", "sink", "backend")]
    assert "engine local -> ray cannot change while the topology runs" in d.refused[0].message


def test_a_persistent_kernels_record_types_and_rings_are_refused() -> None:
    ring = {"ring": 1024, "batch": 256, "spin": 20000, "nap_us": 50}
    old = plan(k("p", persistent=ring, entry="m:a"))
    assert [r.path for r in diff(old, plan(k("p", persistent=ring, entry="m:b"))).refused] == [
        ("kernels", "p", "entry")
    ]
    bigger = {**ring, "ring": 4096}
    assert [r.path for r in diff(old, plan(k("p", persistent=bigger, entry="m:a"))).refused] == [
        ("kernels", "p", "persistent")
    ]
    params = diff(old, plan(k("p", persistent=ring, entry="m:a", params={"x": 1})))
    assert [c.kind for c in params.changes] == ["restart"]


# -- properties ----------------------------------------------------------------------------

IDS = ["a", "b", "c", "d", "e"]

kernel_plans = st.builds(
    lambda kid, params, replicas, policy, entry, keep: k(
        kid, params=params, replicas=replicas, restart=RestartPolicy(policy), entry=entry,
        keep_state=keep,
    ),
    st.sampled_from(IDS),
    st.dictionaries(st.sampled_from(["x", "y"]), st.integers(0, 3), max_size=2),
    st.integers(1, 3),
    st.sampled_from(["never", "on-failure", "always"]),
    st.sampled_from(["m:one", "m:two"]),
    st.booleans(),
)  # fmt: skip


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    kernels = {kp.id: kp for kp in draw(st.lists(kernel_plans, max_size=5))}
    ids = list(kernels)
    edges: dict[tuple[str, str, str], EdgePlan] = {}
    if ids:
        for _ in range(draw(st.integers(0, 5))):
            e = EdgePlan(
                draw(st.sampled_from(ids)),
                draw(st.sampled_from(ids)),
                port=draw(st.sampled_from(["out", "alt"])),
                capacity=draw(st.sampled_from([8, 64])),
                backpressure=draw(st.sampled_from(["block", "drop_oldest"])),
            )
            edges[(e.producer, e.port, e.consumer)] = e
    return plan(*kernels.values(), edges=tuple(edges.values()))


@settings(max_examples=300, deadline=None)
@given(plans())
def test_a_plan_against_itself_changes_nothing(a: Plan) -> None:
    assert diff(a, a).empty


@settings(max_examples=300, deadline=None)
@given(plans(), plans())
def test_applying_the_diff_of_a_to_b_gives_b(a: Plan, b: Plan) -> None:
    d = diff(a, b)
    assert not d.refused  # same engine, backend, resources and no persistent kernels
    patched = patch(a, d.changes, order=b.order)
    assert same_plan(patched, b)
    assert patched.order == b.order
    assert diff(patched, b).empty


@settings(max_examples=200, deadline=None)
@given(plans(), plans())
def test_the_changes_come_in_the_order_they_are_carried_out(a: Plan, b: Plan) -> None:
    kinds = [c.kind for c in diff(a, b).changes]
    rank = {"add": 0, "restart": 1, "scale": 1, "update": 1, "connect": 2, "move": 2,
            "retune": 2, "disconnect": 3, "remove": 4}  # fmt: skip
    assert [rank[x] for x in kinds] == sorted(rank[x] for x in kinds)
