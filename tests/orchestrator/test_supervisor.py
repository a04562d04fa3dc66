"""The supervisor in-process, driven by hand-built plans: ordering, rollback, restarts,
completion and the drain."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kernels.sinks import summing
from kernels.sources import counter
from orchestrator.conftest import holds
from orchestrator.testkernels import boom, flaky, relay, setup_fails, tally, ticker
from ringctl import KernelState, RingKernelRuntime, ring_kernel
from ringctl.exceptions import ControlPlaneError
from ringctl.orchestrator import (
    EdgePlan,
    KernelPlan,
    LaunchFailed,
    Plan,
    RestartPolicy,
    Supervisor,
)
from ringctl.testing import wait_until

S = KernelState


class Recorder:
    """Every state change the runtime makes, in order."""

    def __init__(self, runtime: RingKernelRuntime) -> None:
        self.moves: list[tuple[str, KernelState]] = []
        runtime.add_listener(lambda kid, _old, new: self.moves.append((kid, new)))

    def reached(self, state: KernelState) -> list[str]:
        return [kid for kid, new in self.moves if new is state]


@pytest.fixture
async def runtime() -> AsyncIterator[RingKernelRuntime]:
    rt = RingKernelRuntime(shutdown_timeout=2.0)
    yield rt
    await rt.close()
    left = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    assert not left, f"tasks left behind: {left}"


def pipeline(
    source: KernelPlan, *rest: KernelPlan, name: str = "t", capacity: int | None = None
) -> Plan:
    """``source -> rest[0] -> rest[1] ...``, launched consumers first (as plan_from_file does)."""
    chain = [source, *rest]
    edges = [EdgePlan(a.id, b.id, capacity=capacity) for a, b in itertools.pairwise(chain)]
    return Plan(name=name, kernels=list(reversed(chain)), edges=edges)


def k(kernel_id: str, kernel: Any, params: Any = None, **extra: Any) -> KernelPlan:
    return KernelPlan(id=kernel_id, kernel=kernel, params=params, **extra)


def metric(sup: Supervisor, kernel_id: str, name: str) -> Any:
    kernel = next(x for x in sup.status(fresh=True)["kernels"] if x["id"] == kernel_id)
    return kernel["metrics"].get(name)


# -- up: two phases, in order, with rollback -----------------------------------------------


async def test_launches_every_kernel_then_activates_them_in_the_same_order(
    runtime: RingKernelRuntime,
) -> None:
    plan = pipeline(
        k("source", ticker, {"count": 100}), k("relay", relay), k("sink", tally), name="order"
    )
    assert plan.order == ["sink", "relay", "source"]
    moves = Recorder(runtime)
    sup = Supervisor(plan, runtime)
    phases: list[dict[str, Any]] = []
    await sup.up(phases.append)
    launched, active = moves.reached(S.LAUNCHED), moves.reached(S.ACTIVE)
    assert launched == active == ["sink", "relay", "source"]
    first_activation = moves.moves.index(("sink", S.ACTIVE))
    assert all(new is S.LAUNCHED for _, new in moves.moves[:first_activation])
    assert [(p["name"], p["done"]) for p in phases] == [
        ("launch", 0), ("launch", 1), ("launch", 2), ("launch", 3),
        ("activate", 0), ("activate", 1), ("activate", 2), ("activate", 3),
    ]  # fmt: skip
    assert sup.state == "running"
    assert set(sup.timings) == {"launch_s", "activate_s"}
    result = await sup.run()
    assert (result.outcome, result.exit_code) == ("completed", 0)
    assert metric(sup, "sink", "received") == 100


@pytest.mark.parametrize(
    ("bad", "cause"),
    [
        (k("bad", counter, {"count": -1}), "params do not fit CounterParams: count"),
        (k("bad", setup_fails), "its set-up hook raised OSError: no such device: /dev/ring0"),
        (k("bad", tally, backend="cuda"), "backend: cuda needs a usable NVIDIA GPU"),
    ],
    ids=["params", "setup-hook", "cuda-without-gpu"],
)
async def test_a_launch_failure_rolls_back_and_activates_nothing(
    runtime: RingKernelRuntime, bad: KernelPlan, cause: str
) -> None:
    plan = Plan(
        name="rollback",
        kernels=[k("sink", tally), k("relay", relay), bad, k("source", ticker)],
        edges=[EdgePlan("source", "relay"), EdgePlan("relay", "sink")],
    )
    moves = Recorder(runtime)
    sup = Supervisor(plan, runtime)
    with pytest.raises(LaunchFailed) as caught:
        await sup.up()
    error = caught.value
    assert error.kernel_id == "bad"
    assert error.rolled_back == ["sink", "relay"]
    assert cause in error.message
    assert "rolled back (sink, relay), nothing was activated" in error.message
    assert error.exit_code == 1
    assert moves.reached(S.ACTIVE) == []
    assert moves.reached(S.LAUNCHED) == ["sink", "relay"]
    assert {kid: runtime.get_state(kid) for kid in ("sink", "relay")} == {
        "sink": S.TERMINATED,
        "relay": S.TERMINATED,
    }
    assert "source" not in runtime.kernel_ids  # never reached
    assert sup.state == "failed" and sup.ended
    assert sup.failure is not None and "'bad'" in sup.failure


async def test_the_first_kernel_failing_to_launch_leaves_nothing(
    runtime: RingKernelRuntime,
) -> None:
    sup = Supervisor(Plan(name="one", kernels=[k("only", setup_fails)]), runtime)
    with pytest.raises(LaunchFailed, match="nothing else was launched") as caught:
        await sup.up()
    assert caught.value.rolled_back == []
    assert runtime.kernel_ids == []


# -- running: completion, failures, restarts -----------------------------------------------


async def test_completes_when_the_sources_finish_and_everything_drained(
    runtime: RingKernelRuntime,
) -> None:
    plan = pipeline(
        k("source", counter, {"count": 2000, "batch": 1}),
        k("relay", relay, replicas=3),
        k("total", summing),
        capacity=16,
    )
    sup = Supervisor(plan, runtime)
    await sup.up()
    result = await asyncio.wait_for(sup.run(), 20)
    assert (result.outcome, result.exit_code, result.reason) == ("completed", 0, "completed")
    assert result.down is not None and result.down.graceful
    assert result.down.messages_left == 0
    assert metric(sup, "total", "total") == sum(range(2000))
    assert sup.state == "completed"
    assert all(runtime.get_state(kid) is S.TERMINATED for kid in plan.order)


async def test_on_failure_restart_keeps_the_queued_messages_and_counts_restarts(
    runtime: RingKernelRuntime,
) -> None:
    # 300 messages fit in the sink's queue, so most are queued when it fails on 50.
    plan = pipeline(
        k("source", ticker, {"count": 300}),
        k(
            "sink",
            flaky,
            {"fail_on": 50, "times": 1},
            restart=RestartPolicy("on-failure", max_restarts=2, backoff=0.05),
        ),
        capacity=400,
    )
    sup = Supervisor(plan, runtime)
    await sup.up()
    result = await asyncio.wait_for(sup.run(), 20)
    assert (result.outcome, result.exit_code) == ("completed", 0)
    store = runtime._kernels["sink"].store
    assert store["seen"] == list(range(1, 301))  # nothing lost, nothing twice, in order
    sink = next(x for x in sup.status(fresh=True)["kernels"] if x["id"] == "sink")
    assert sink["restarts"] == 1
    assert sink["errors"] == 1
    assert sink["messages_in"] == 300
    assert any(
        e["kind"] == "restart" and "sink failed (RuntimeError: flaky: cannot take 50)" in e["text"]
        for e in sup.events
    )


async def test_past_max_restarts_the_run_fails_with_the_kernels_error(
    runtime: RingKernelRuntime,
) -> None:
    plan = pipeline(
        k("source", ticker, {"count": 100}),
        k("sink", boom, restart=RestartPolicy("on-failure", max_restarts=2, backoff=0.01)),
    )
    sup = Supervisor(plan, runtime)
    await sup.up()
    result = await asyncio.wait_for(sup.run(), 20)
    assert (result.outcome, result.exit_code) == ("failed", 1)
    assert result.failure == (
        "kernel 'sink' failed: ValueError: boom on 3 (after 2 restarts, max_restarts is 2)"
    )
    assert sup.state == "failed"
    assert runtime.get_info("sink").restarts == 2
    assert all(runtime.get_state(kid) is S.TERMINATED for kid in plan.order)
    assert sup.status(fresh=True)["failure"] == result.failure


async def test_a_failure_with_policy_never_fails_fast(runtime: RingKernelRuntime) -> None:
    plan = pipeline(k("source", ticker, {"rate": 1000}), k("sink", boom))
    sup = Supervisor(plan, runtime)
    await sup.up()
    result = await asyncio.wait_for(sup.run(), 20)
    assert (result.outcome, result.exit_code) == ("failed", 1)
    assert result.failure == "kernel 'sink' failed: ValueError: boom on 1"
    assert runtime.get_info("sink").restarts == 0


async def test_policy_always_restarts_a_source_that_returned(runtime: RingKernelRuntime) -> None:
    plan = pipeline(
        k("source", ticker, {"count": 5}, restart=RestartPolicy("always", 2, 0.01)),
        k("sink", tally),
    )
    sup = Supervisor(plan, runtime)
    await sup.up()
    result = await asyncio.wait_for(sup.run(), 20)
    assert (result.outcome, result.exit_code) == ("completed", 0)
    assert runtime.get_info("source").restarts == 2
    assert metric(sup, "sink", "received") == 15  # three instances, five messages each


# -- down: drain, timeout, control commands ------------------------------------------------


async def test_down_drains_so_the_sink_gets_exactly_what_the_source_sent(
    runtime: RingKernelRuntime,
) -> None:
    plan = pipeline(
        k("source", ticker), k("relay", relay), k("sink", tally, {"delay": 0.0005}), capacity=64
    )
    sup = Supervisor(plan, runtime)
    await sup.up()
    run = asyncio.create_task(sup.run())
    await wait_until(lambda: runtime.queued("sink") > 30, what="a backlog at the sink")
    report = await sup.down(timeout=10)
    result = await run
    assert report.graceful and report.left == {} and report.forced == ()
    assert (result.outcome, result.exit_code, result.reason) == ("stopped", 0, "down requested")
    sent, received = metric(sup, "source", "sent"), metric(sup, "sink", "received")
    assert sent > 30
    assert received == sent
    assert metric(sup, "sink", "sum") == metric(sup, "source", "sum") == sent * (sent + 1) // 2
    assert sup.state == "stopped"


async def test_down_resumes_paused_kernels_so_they_can_drain(runtime: RingKernelRuntime) -> None:
    plan = pipeline(k("source", ticker, {"rate": 2000}), k("sink", tally), capacity=1000)
    sup = Supervisor(plan, runtime)
    await sup.up()
    run = asyncio.create_task(sup.run())
    assert await sup.pause(["sink"]) == ["sink"]
    await wait_until(lambda: runtime.queued("sink") >= 20, what="messages queue while paused")
    assert metric(sup, "sink", "received") in (None, 0)
    report = await sup.down(timeout=10)
    await run
    assert report.graceful
    assert metric(sup, "sink", "received") == metric(sup, "source", "sent") >= 20


async def test_down_past_its_timeout_force_stops_and_reports_what_was_left(
    runtime: RingKernelRuntime,
) -> None:
    plan = pipeline(k("source", ticker), k("sink", tally, {"delay": 0.01}), capacity=100)
    sup = Supervisor(plan, runtime)
    await sup.up()
    run = asyncio.create_task(sup.run())
    await wait_until(lambda: runtime.queued("sink") >= 100, what="the sink's queue full")
    progress: list[dict[str, Any]] = []
    report = await sup.down(timeout=0.3, progress=progress.append)
    result = await run
    assert not report.graceful
    assert set(report.left) == {"sink"} and report.left["sink"] > 50
    # The sink is stopped at once; whether it is cancelled mid-message or ends at a
    # message boundary is timing: either way what was queued is counted, not dropped.
    assert set(report.forced) <= {"sink"}
    assert report.messages_left == report.left["sink"]
    assert (result.outcome, result.exit_code) == ("stopped", 1)
    assert result.failure == "the drain timed out"
    waiting = [w for p in progress for w in p["waiting_on"]]
    assert waiting and waiting[0]["kernel"] == "sink" and waiting[0]["queued"] > 0
    received = metric(sup, "sink", "received")
    assert received + report.left["sink"] <= metric(sup, "source", "sent")
    assert sup.status(fresh=True)["down"]["messages_left"] == report.messages_left


async def test_a_forced_stop_skips_the_drain(runtime: RingKernelRuntime) -> None:
    plan = pipeline(k("source", ticker), k("sink", tally, {"delay": 0.01}), capacity=100)
    sup = Supervisor(plan, runtime)
    await sup.up()
    run = asyncio.create_task(sup.run(down_timeout=30))
    await wait_until(lambda: runtime.queued("sink") >= 100)
    sup.request_stop("interrupted")
    sup.request_stop("interrupted", force=True)  # the second Ctrl-C
    result = await asyncio.wait_for(run, 10)  # not the 30 s the drain would get
    assert result.down is not None and not result.down.graceful
    assert result.down.left["sink"] > 0


async def test_duration_stops_an_endless_topology_gracefully(runtime: RingKernelRuntime) -> None:
    plan = pipeline(k("source", ticker, {"rate": 1000}), k("sink", tally))
    sup = Supervisor(plan, runtime)
    await sup.up()
    result = await asyncio.wait_for(sup.run(duration=0.2), 10)
    assert (result.outcome, result.exit_code, result.reason) == (
        "stopped",
        0,
        "--duration 0.2s elapsed",
    )
    assert metric(sup, "sink", "received") == metric(sup, "source", "sent") > 0


async def test_pause_freezes_the_counts_and_resume_moves_them(runtime: RingKernelRuntime) -> None:
    plan = pipeline(k("source", ticker, {"rate": 2000}), k("sink", tally))
    sup = Supervisor(plan, runtime)
    await sup.up()
    run = asyncio.create_task(sup.run())
    await wait_until(lambda: (metric(sup, "sink", "received") or 0) > 5)
    assert await sup.pause() == ["sink", "source"]
    assert sup.state == "paused"
    assert all(runtime.get_state(kid) is S.DEACTIVATED for kid in plan.order)
    frozen = metric(sup, "sink", "received")
    assert await holds(lambda: metric(sup, "sink", "received") == frozen, for_s=0.1)
    assert await sup.pause() == []  # already paused: nothing to do
    assert await sup.resume() == ["sink", "source"]
    assert sup.state == "running"
    await wait_until(lambda: metric(sup, "sink", "received") > frozen, what="counts move")
    await sup.down()
    await run


async def test_control_commands_name_unknown_kernels_and_refuse_after_down(
    runtime: RingKernelRuntime,
) -> None:
    from ringctl.exceptions import ControlPlaneError, UserInputError

    plan = pipeline(k("source", ticker, {"rate": 100}), k("sink", tally))
    sup = Supervisor(plan, runtime)
    await sup.up()
    with pytest.raises(UserInputError, match="has no kernel 'nope'") as caught:
        await sup.pause(["nope"])
    assert caught.value.hint == "its kernels are: sink, source"
    assert caught.value.exit_code == 2  # a typo on the command line is bad input
    with pytest.raises(UserInputError, match="has no kernel 'snik'") as caught:
        await sup.resume(["snik"])
    assert caught.value.hint == "did you mean 'sink'?; its kernels are: sink, source"
    await sup.down()
    with pytest.raises(ControlPlaneError, match="cannot pause topology 't': it is stopped"):
        await sup.pause()
    assert await sup.down() is sup.down_report  # a second down reports the first


async def test_pause_racing_down_is_served_one_at_a_time(runtime: RingKernelRuntime) -> None:
    from ringctl.exceptions import ControlPlaneError

    plan = pipeline(k("source", ticker, {"rate": 2000}), k("sink", tally))
    sup = Supervisor(plan, runtime)
    await sup.up()
    run = asyncio.create_task(sup.run())
    down = asyncio.create_task(sup.down())
    pause = asyncio.create_task(sup.pause())
    results = await asyncio.gather(down, pause, return_exceptions=True)
    await run
    assert results[0].graceful  # type: ignore[union-attr]
    assert isinstance(results[1], ControlPlaneError)
    # The down took the topology first: the pause is refused at once, mid-drain.
    assert "it is draining (a down is under way)" in str(results[1])
    assert metric(sup, "sink", "received") == metric(sup, "source", "sent")


async def test_status_has_the_documented_shape(runtime: RingKernelRuntime) -> None:
    plan = pipeline(k("source", ticker, {"rate": 500}), k("sink", tally, replicas=2), name="shape")
    sup = Supervisor(plan, runtime)
    await sup.up()
    doc = sup.status(fresh=True)
    assert {"name", "uptime_s", "state", "kernels", "queues"} <= set(doc)
    assert (doc["name"], doc["state"]) == ("shape", "running")
    sink = next(x for x in doc["kernels"] if x["id"] == "sink")
    assert {
        "id", "state", "backend", "replicas", "messages_in", "messages_out", "rate_in",
        "inbox_depth", "inbox_capacity", "drops", "errors", "restarts", "latency_p50_us",
        "latency_p99_us",
    } <= set(sink)  # fmt: skip
    assert (sink["state"], sink["backend"], sink["replicas"]) == ("ACTIVE", "cpu", 2)
    (queue,) = doc["queues"]
    assert {"from", "to", "depth", "capacity", "backpressure", "drops"} <= set(queue)
    assert (queue["from"], queue["to"], queue["backpressure"]) == ("source.out", "sink", "block")
    await sup.down()


async def _waits_in_set_up(ctx: Any) -> None:
    await asyncio.sleep(30)  # an async set-up hook: a stop reaches it at once


@ring_kernel(kernel_id="late", setup=_waits_in_set_up, ports=())
async def late(ctx: Any) -> None:
    async for _ in ctx.messages():
        pass


async def test_a_down_during_the_launch_stops_it_and_rolls_back(runtime: RingKernelRuntime) -> None:
    plan = pipeline(k("source", ticker), k("sink", tally), k("late", late), name="slow")
    sup = Supervisor(plan, runtime)
    launch = asyncio.create_task(sup.up())
    await wait_until(
        lambda: sup._launch is not None and sup._launch.get_name() == "ringctl:late[0] set-up",
        what="late in its set-up hook",
    )
    assert sup.state == "starting"
    with pytest.raises(ControlPlaneError, match="it is starting"):
        sup.tap("sink")  # a kernel name that is valid, only not launched yet
    report = await asyncio.wait_for(sup.down(), 10)
    await asyncio.wait_for(launch, 10)
    assert report.graceful
    assert sup.state == "stopped"
    assert runtime.get_state("late") is not S.ACTIVE
    result = await sup.run()
    assert (result.outcome, result.exit_code) == ("stopped", 0)
    assert result.reason == "down requested (stopped during launch)"
    assert result.launch_stopped
    assert result.accounting is not None and result.accounting.clean
