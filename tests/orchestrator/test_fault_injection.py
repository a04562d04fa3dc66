"""Property: whatever the topology, crash schedule, restart policy and control commands,
every accepted message is accounted for, and the exit code agrees with the accounting.

Hypothesis draws small topologies (chains, fan-in, fan-out to replicas, a feedback loop),
crash schedules, restart policies, backpressure policies and a timeline of pause /
resume / down commands, runs each through the real supervisor on the local engine, and
checks the law at the end of the run.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.testkernels import crashy, echo_back, loop_seed, tally, ticker
from ringctl.orchestrator import EdgePlan, KernelPlan, Plan, RestartPolicy, Supervisor
from ringctl.orchestrator.supervisor import RunResult

POLICIES = st.sampled_from(["block", "block", "drop_oldest", "drop_newest"])
RESTARTS = st.builds(
    RestartPolicy,
    policy=st.sampled_from(["never", "on-failure", "always"]),
    max_restarts=st.integers(0, 2),
    backoff=st.sampled_from([0.0, 0.01, 0.05]),
)


@dataclass(frozen=True)
class Step:
    at: float  # seconds after the start
    op: str  # pause | resume | down
    kernel: str | None = None
    timeout: float = 1.0


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    shape = draw(st.sampled_from(["chain", "fan_in", "fan_out", "replicas", "feedback"]))
    count = draw(st.integers(1, 120))
    fail_on = draw(st.lists(st.integers(1, count), max_size=3, unique=True))
    restart = draw(RESTARTS)
    cap = draw(st.sampled_from([2, 8, 64]))

    def src(kid: str, n: int = count) -> KernelPlan:
        return KernelPlan(kid, ticker, params={"count": n})

    def mid(kid: str, replicas: int = 1) -> KernelPlan:
        return KernelPlan(
            kid, crashy, params={"fail_on": fail_on}, replicas=replicas, restart=restart
        )

    def sink(kid: str) -> KernelPlan:
        return KernelPlan(kid, tally, params={})

    def edge(a: str, b: str, **kw: object) -> EdgePlan:
        return EdgePlan(a, b, capacity=cap, backpressure=draw(POLICIES), **kw)  # type: ignore[arg-type]

    if shape == "chain":
        n = draw(st.integers(1, 3))
        mids = [mid(f"m{i}") for i in range(n)]
        names = ["s", *[m.id for m in mids], "z"]
        kernels = [sink("z"), *reversed(mids), src("s")]
        edges = [edge(a, b) for a, b in itertools.pairwise(names)]
    elif shape == "fan_in":
        kernels = [sink("z"), mid("m"), src("s1"), src("s2", draw(st.integers(1, 60)))]
        edges = [edge("s1", "m"), edge("s2", "m"), edge("m", "z")]
    elif shape == "fan_out":
        fan = draw(st.sampled_from(["broadcast", "round_robin"]))
        kernels = [sink("z1"), sink("z2"), mid("m"), src("s")]
        edges = [edge("s", "m"), edge("m", "z1", fanout=fan), edge("m", "z2", fanout=fan)]
    elif shape == "replicas":
        kernels = [sink("z"), mid("m", replicas=draw(st.integers(2, 3))), src("s")]
        edges = [edge("s", "m"), edge("m", "z")]
    else:
        kernels = [
            sink("z"),
            KernelPlan("step", echo_back),
            KernelPlan("seed", loop_seed, params={"count": count}),
        ]
        edges = [
            EdgePlan("seed", "step"),
            EdgePlan("step", "z"),
            EdgePlan("step", "seed", port="back", feedback=True),
        ]
    return Plan(name="prop", kernels=kernels, edges=edges)


@st.composite
def timelines(draw: st.DrawFn, plan: Plan) -> list[Step]:
    steps = []
    t = 0.0
    for _ in range(draw(st.integers(0, 4))):
        t += draw(st.sampled_from([0.0, 0.005, 0.02, 0.05]))
        op = draw(st.sampled_from(["pause", "resume", "pause", "resume", "down"]))
        kernel = draw(st.none() | st.sampled_from(plan.order))
        timeout = draw(st.sampled_from([0.05, 1.0]))
        steps.append(Step(t, op, kernel, timeout))
    return steps


async def drive(plan: Plan, steps: list[Step]) -> tuple[Supervisor, RunResult]:
    sup = Supervisor(plan)
    await sup.up()
    runner = asyncio.create_task(sup.run(down_timeout=1.0))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        for step in steps:
            await asyncio.sleep(max(0.0, t0 + step.at - loop.time()))
            if sup.ended:
                break
            kernels = [step.kernel] if step.kernel else None
            try:
                if step.op == "pause":
                    await sup.pause(kernels)
                elif step.op == "resume":
                    await sup.resume(kernels)
                else:
                    await sup.down(step.timeout)
            except Exception as exc:  # a command on a topology that is no longer live
                assert "cannot" in str(exc), exc
        await asyncio.sleep(0.05)
        if sup.state in ("running", "paused"):
            await sup.resume()  # nothing stays paused forever: the run can end
        result = await asyncio.wait_for(runner, 30)
    finally:
        await sup.runtime.close()
    return sup, result


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_every_message_is_accounted_for_and_the_exit_code_agrees(data: st.DataObject) -> None:
    plan = data.draw(plans())
    steps = data.draw(timelines(plan))
    sup, result = asyncio.run(drive(plan, steps))
    acc = result.accounting
    assert acc is not None
    assert acc.holds, acc.violations
    if result.exit_code == 0:
        assert acc.clean, acc.as_dict()
        assert result.failure is None
    if not acc.clean:
        assert result.exit_code == 1, (result, acc.as_dict())
    # Nothing runs, nothing waits: every inbox was closed at the end.
    assert acc.queued == 0
    snap = sup.runtime.snapshot()
    assert all(k.state == "TERMINATED" for k in snap.kernels)
