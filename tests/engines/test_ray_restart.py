"""An actor whose process dies is replaced by the restart policy; nothing is lost silently."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ringctl.engine.lifecycle import KernelState
from ringctl.engine.ray.engine import RayRuntime
from ringctl.orchestrator.loading import plan_from_file
from ringctl.orchestrator.supervisor import Supervisor

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]

HERE = Path(__file__).resolve().parent
COUNT, BATCH = 60000, 100  # ray-restart.yaml's source: 600 messages of 100 integers


async def until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Wait for ``condition`` with a deadline (no sleeping for luck)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := condition()):
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout:g}s: {what}")
        await asyncio.sleep(0.02)
    return value


def kernel(sup: Supervisor, kid: str) -> dict[str, Any]:
    return next(k for k in sup.status(fresh=True)["kernels"] if k["id"] == kid)


async def test_a_killed_actor_is_restarted_and_its_losses_are_counted(ray_session: str) -> None:
    plan = plan_from_file(HERE / "topologies" / "ray-restart.yaml", engine="ray")
    runtime = RayRuntime()
    sup = Supervisor(plan, runtime)
    await sup.up()
    run = asyncio.create_task(sup.run(down_timeout=20.0))
    try:
        await until(lambda: kernel(sup, "total")["messages_in"] >= 20, what="traffic")
        # Hold `square` until messages queue in its inbox, then hold the source too, so
        # what the actor holds when it dies is known exactly.
        await sup.pause(["square"])
        await until(lambda: kernel(sup, "square")["inbox_depth"] >= 10, what="a queue")
        await sup.pause(["source"])
        held = await _settled(sup)
        [host] = runtime.actor_info("square")
        os.kill(host["pid"], signal.SIGKILL)

        # The source goes on while `square` is down: its outbox keeps what it sends.
        await until(lambda: runtime.get_state("square") is KernelState.TERMINATED, what="death")
        await sup.resume(["source"])
        # The replacement starts paused, as the kernel it replaces was.
        await until(
            lambda: (
                kernel(sup, "square")["restarts"] == 1
                and runtime.get_state("square") is KernelState.DEACTIVATED
            ),
            what="the restart",
        )
        await sup.resume(["square"])
        assert runtime.actor_info("square")[0]["pid"] != host["pid"]
        result = await asyncio.wait_for(run, 60)
    finally:
        if not run.done():
            sup.request_stop("test over")
            await run
        await runtime.close()

    # Messages died with the actor: the run lost work, so it does not exit 0.
    assert result.outcome == "failed" and result.exit_code == 1, result
    assert "were not processed" in (result.failure or "")
    status = sup.status(fresh=True)
    kernels = {k["id"]: k for k in status["kernels"]}
    lost = held["inbox_depth"]
    assert lost >= 10
    assert kernels["square"]["restarts"] == 1
    assert kernels["square"]["lost"] == lost, "what died in the inbox is counted"
    assert kernels["square"]["drops"] == 0, "no backpressure policy dropped anything"
    acc = result.accounting
    assert acc is not None and acc.holds, acc and acc.violations
    assert acc.lost == lost
    assert kernels["source"]["metrics"]["sent"] == COUNT
    # Everything else arrived: nothing in the source's outbox was lost during the outage.
    assert kernels["total"]["metrics"]["items"] == COUNT - lost * BATCH
    assert kernels["total"]["drops"] == 0
    restarts = [e["text"] for e in status["events"] if e["kind"] == "restart"]
    assert restarts and f"{lost} queued messages lost" in restarts[0]


async def _settled(sup: Supervisor) -> dict[str, Any]:
    """``square``'s row once every count has stayed put across several probes."""

    def signature() -> tuple[Any, ...]:
        rows = sup.status(fresh=True)["kernels"]
        return tuple((k["id"], k["messages_in"], k["messages_out"], k["inbox_depth"]) for k in rows)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30.0
    last = signature()
    while loop.time() < deadline:
        await asyncio.sleep(0.3)  # six probe intervals: a change would show
        now = signature()
        if now == last:
            return kernel(sup, "square")
        last = now
    raise AssertionError("counts did not settle while paused")
