"""``Supervisor.apply`` in-process: live changes under load, counted by the accounting law."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.applykernels import collect, numbered
from orchestrator.testkernels import boom, relay, setup_fails, tally
from ringctl import KernelState, RingKernelRuntime
from ringctl.exceptions import RunFailedError, UserInputError
from ringctl.orchestrator import EdgePlan, KernelPlan, Plan, RestartPolicy, Supervisor
from ringctl.testing import wait_until

S = KernelState


@pytest.fixture
async def runtime() -> AsyncIterator[RingKernelRuntime]:
    rt = RingKernelRuntime(shutdown_timeout=2.0)
    yield rt
    await rt.close()


def k(kid: str, kernel: Any, params: Any = None, **extra: Any) -> KernelPlan:
    extra.setdefault("entry", f"m:{kid}")
    return KernelPlan(id=kid, kernel=kernel, params=params or {}, **extra)


def seen(rt: RingKernelRuntime, *kernel_ids: str) -> list[int]:
    out: list[int] = []
    for kid in kernel_ids:
        out += rt._kernels[kid].store.get("seen", [])
    return out


async def started(rt: RingKernelRuntime, plan: Plan) -> Supervisor:
    sup = Supervisor(plan, rt)
    await sup.up()
    return sup


SOURCE = k("source", numbered, {"rate": 2000})


async def test_a_queue_moved_under_backpressure_loses_and_repeats_nothing(
    runtime: RingKernelRuntime,
) -> None:
    # capacity 1 and a slow consumer: the producer is blocked in put() when it is switched.
    slow = k("a", collect, {"delay": 0.002})
    plan = Plan("t", [slow, SOURCE], [EdgePlan("source", "a", capacity=1)])
    sup = await started(runtime, plan)
    await wait_until(lambda: len(seen(runtime, "a")) > 20, what="a receives")
    queue = runtime._kernels["a"].inbox.queues[0]
    await wait_until(lambda: queue.producers_waiting == 1, what="the source blocked on a")
    moved = Plan("t", [k("b", collect), slow, SOURCE], [EdgePlan("source", "b", capacity=1)])
    result = await sup.apply(moved, "moved.yaml")
    assert [c["kind"] for c in result["changes"]] == ["add", "move"]
    await wait_until(lambda: len(seen(runtime, "b")) > 20, what="b receives")
    assert queue.delivered == queue.messages  # what the source put there, a took
    removed = Plan("t", [k("b", collect), SOURCE], [EdgePlan("source", "b", capacity=1)])
    result = await sup.apply(removed, "removed.yaml")
    assert result["left"] == {}
    assert runtime.get_state("a") is S.TERMINATED
    report = await sup.down(5.0)
    assert report.graceful
    sent = runtime._kernels["source"].store["sent"]
    assert sorted(seen(runtime, "a", "b")) == list(range(1, sent + 1))
    acc = runtime.accounting()
    assert acc.holds and acc.clean


async def test_a_removed_kernel_that_cannot_drain_in_time_is_counted_as_left(
    runtime: RingKernelRuntime,
) -> None:
    plan = Plan("t", [k("slow", tally, {"delay": 0.05}), k("fast", collect), SOURCE],
                [EdgePlan("source", "slow", capacity=64), EdgePlan("source", "fast")])  # fmt: skip
    sup = await started(runtime, plan)
    await wait_until(lambda: runtime.queued("slow") > 20, what="a backlog for slow")
    kept = Plan("t", [k("fast", collect), SOURCE], [EdgePlan("source", "fast")])
    result = await sup.apply(kept, "kept.yaml", timeout=0.2)
    assert result["left"]["slow"] > 0
    assert runtime.get_state("slow") is S.TERMINATED
    assert any("slow removed (" in e["text"] and "left, counted" in e["text"] for e in sup.events)
    await sup.down(5.0)
    acc = runtime.accounting()
    assert acc.holds and acc.left == result["left"]["slow"]


async def test_queue_capacity_and_backpressure_change_in_place(runtime: RingKernelRuntime) -> None:
    plan = Plan("t", [k("sink", collect), SOURCE], [EdgePlan("source", "sink", capacity=64)])
    sup = await started(runtime, plan)
    tuned = replace(
        plan, edges=[EdgePlan("source", "sink", capacity=8, backpressure="drop_oldest")]
    )
    result = await sup.apply(tuned, "tuned.yaml")
    assert [c["kind"] for c in result["changes"]] == ["retune"]
    (queue,) = sup.status(fresh=True)["queues"]
    assert (queue["capacity"], queue["backpressure"]) == (8, "drop_oldest")
    assert runtime.get_info("sink").restarts == 0  # nothing was restarted for it
    await sup.down(5.0)


async def test_a_failed_restart_is_rolled_back_with_what_came_before_it(
    runtime: RingKernelRuntime,
) -> None:
    plan = Plan("t", [k("sink", collect, {"label": "one"}), SOURCE],
                [EdgePlan("source", "sink")])  # fmt: skip
    sup = await started(runtime, plan)
    await wait_until(lambda: len(seen(runtime, "sink")) > 10, what="sink receives")
    bad = Plan("t", [k("extra", collect), k("sink", setup_fails, entry="m:broken"), SOURCE],
               [EdgePlan("source", "sink"), EdgePlan("source", "extra")])  # fmt: skip
    with pytest.raises(RunFailedError, match="rolled back") as caught:
        await sup.apply(bad, "bad.yaml")
    assert "restart of sink, rewiring" not in caught.value.message  # rewiring came later
    assert "restart of sink, launch of extra" in caught.value.message
    assert sup.plan is plan and "extra" not in runtime.kernel_ids
    assert runtime.get_state("sink") is S.ACTIVE
    assert runtime._kernels["sink"].params.label == "one"
    count = len(seen(runtime, "sink"))
    await wait_until(lambda: len(seen(runtime, "sink")) > count + 10, what="it runs again")
    await sup.down(5.0)
    sent = runtime._kernels["source"].store["sent"]
    assert sorted(seen(runtime, "sink")) == list(range(1, sent + 1))


async def test_an_engine_without_live_changes_refuses_before_anything_changes(
    runtime: RingKernelRuntime,
) -> None:
    class NoRewire:
        """The local engine, declaring everything but rewiring queues."""

        name = "x"
        capabilities = frozenset({"restart", "scale", "tap", "reconfigure"})

        def __init__(self, inner: RingKernelRuntime) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    plan = Plan("t", [k("sink", collect), SOURCE], [EdgePlan("source", "sink")], engine="x")
    sup = Supervisor(plan, NoRewire(runtime))  # type: ignore[arg-type]
    await sup.up()
    added = Plan("t", [k("sink", collect), k("b", collect), SOURCE],
                 [EdgePlan("source", "sink"), EdgePlan("source", "b")], engine="x")  # fmt: skip
    with pytest.raises(
        UserInputError, match="engine x cannot add a kernel while the topology runs"
    ):
        await sup.apply(added, "added.yaml")
    assert "b" not in runtime.kernel_ids and sup.plan is plan
    await asyncio.wait_for(sup.down(5.0), 10)


async def test_a_removed_kernel_waiting_for_its_restart_is_not_brought_back(
    runtime: RingKernelRuntime,
) -> None:
    policy = RestartPolicy("on-failure", max_restarts=5, backoff=0.3)
    plan = Plan("t", [k("bad", boom, restart=policy), k("sink", collect), SOURCE],
                [EdgePlan("source", "bad"), EdgePlan("source", "sink")])  # fmt: skip
    sup = await started(runtime, plan)
    run = asyncio.create_task(sup.run())
    await wait_until(lambda: "bad" in sup._backoff, what="bad waits for its restart")
    kept = Plan("t", [k("sink", collect), SOURCE], [EdgePlan("source", "sink")])
    result = await sup.apply(kept, "kept.yaml")
    assert [c["kind"] for c in result["changes"]] == ["disconnect", "remove"]
    restarts = runtime.get_info("bad").restarts
    await asyncio.sleep(0.6)  # past the backoff
    assert runtime.get_state("bad") is S.TERMINATED
    assert runtime.get_info("bad").restarts == restarts
    assert sup.failure is None
    sup.request_stop("done")
    outcome = await run
    acc = runtime.accounting()
    assert acc.holds and acc.as_dict()["totals"]["errors"] == 1  # the message it failed on
    # What still waited for it was counted as left by the apply: the run says so.
    assert acc.left == result["left"]["bad"] > 0
    assert outcome.exit_code == 1 and f"left {acc.left}" in (outcome.failure or "")


# -- the diff carried out on a real engine ---------------------------------------------------

IDS = ["a", "b", "c", "d"]


@st.composite
def relay_plans(draw: st.DrawFn) -> Plan:
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=4))
    kernels = [
        k(kid, relay, {"v": draw(st.integers(0, 1))}, replicas=draw(st.integers(1, 3)),
          restart=RestartPolicy(
            draw(st.sampled_from(["never", "always"]))))
        for kid in ids
    ]  # fmt: skip
    edges: dict[tuple[str, str], EdgePlan] = {}
    for _ in range(draw(st.integers(0, 4)) if ids else 0):
        e = EdgePlan(draw(st.sampled_from(ids)), draw(st.sampled_from(ids)),
                     capacity=draw(st.sampled_from([4, 16])),
                     backpressure=draw(st.sampled_from(["block", "drop_oldest"])))  # fmt: skip
        edges[(e.producer, e.consumer)] = e
    return Plan("t", kernels, list(edges.values()))


def running_shape(sup: Supervisor) -> tuple[dict[str, int], set[tuple[str, str, int, str]]]:
    doc = sup.status(fresh=True)
    kernels = {d["id"]: d["replicas"] for d in doc["kernels"] if d["state"] == "ACTIVE"}
    for kid in kernels:  # each runs with the params of the plan it runs
        assert sup.runtime._kernels[kid].params == sup.plan.kernel(kid).params  # type: ignore[attr-defined]
    queues = {(q["from"], q["to"], q["capacity"], q["backpressure"]) for q in doc["queues"]}
    return kernels, queues


def planned_shape(plan: Plan) -> tuple[dict[str, int], set[tuple[str, str, int, str]]]:
    kernels = {kp.id: kp.replicas for kp in plan.kernels}
    queues = {(f"{e.producer}.out", e.consumer, e.capacity or 0, e.backpressure)
              for e in plan.edges}  # fmt: skip
    return kernels, queues


@settings(max_examples=60, deadline=None)
@given(relay_plans(), relay_plans())
def test_the_engine_runs_the_edited_plan_after_an_apply(a: Plan, b: Plan) -> None:
    async def scenario() -> None:
        async with RingKernelRuntime(shutdown_timeout=1.0) as rt:
            sup = await started(rt, a)
            assert running_shape(sup) == planned_shape(a)
            await sup.apply(b, "b.yaml", timeout=1.0)
            assert running_shape(sup) == planned_shape(b)
            assert (await sup.apply(b, "b.yaml"))["changed"] is False
            await sup.down(2.0)

    asyncio.run(scenario())


async def test_an_id_whose_removed_kernel_left_messages_is_not_reused(
    runtime: RingKernelRuntime,
) -> None:
    plan = Plan("t", [k("slow", tally, {"delay": 0.05}), SOURCE], [EdgePlan("source", "slow")])
    sup = await started(runtime, plan)
    await wait_until(lambda: runtime.queued("slow") > 5, what="a backlog for slow")
    without = Plan("t", [k("sink", collect), SOURCE], [EdgePlan("source", "sink")])
    left = (await sup.apply(without, "without.yaml", timeout=0.1))["left"]["slow"]
    again = Plan("t", [k("slow", collect), k("sink", collect), SOURCE],
                 [EdgePlan("source", "sink"), EdgePlan("source", "slow")])  # fmt: skip
    with pytest.raises(UserInputError, match="removed earlier in this run with"):
        await sup.apply(again, "again.yaml")
    assert sup.plan.order == ["sink", "source"]
    await sup.down(5.0)
    assert runtime.accounting().left == left  # still counted at the end of the run
