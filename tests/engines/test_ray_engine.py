"""``engine: ray`` gives the same results as the local engine (in-process, shared head)."""

from __future__ import annotations

from typing import Any

import pytest

from ringctl.orchestrator.loading import plan_from_file
from ringctl.orchestrator.supervisor import Supervisor
from tests.engines.conftest import TOPOLOGIES

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]


async def _run(file: str, engine: str, address: str | None = None) -> dict[str, Any]:
    """Run a topology file to completion; its final ``ps --json`` document."""
    plan = plan_from_file(TOPOLOGIES / file, engine=engine)
    runtime = None
    if engine == "ray":
        from ringctl.engine.ray.engine import RayRuntime

        runtime = RayRuntime(address=address)
    sup = Supervisor(plan, runtime)
    try:
        await sup.up()
        result = await sup.run(down_timeout=20.0)
    finally:
        await sup.runtime.close()
    assert result.outcome == "completed", result
    return sup.status(fresh=True)


def _results(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        k["id"]: {
            "metrics": k["metrics"],
            "in": k["messages_in"],
            "out": k["messages_out"],
            "errors": k["errors"],
            "drops": k["drops"],
        }
        for k in status["kernels"]
    }


@pytest.mark.parametrize(
    ("file", "sinks"),
    [
        ("quickstart.yaml", {"total": 333328333350000}),
        ("fan-in-out.yaml", {"total_a": None, "total_b": None}),
    ],
)
async def test_sinks_get_what_the_local_engine_gives(
    ray_session: str, file: str, sinks: dict[str, int | None]
) -> None:
    local = _results(await _run(file, "local"))
    ray = await _run(file, "ray")
    assert ray["engine"] == "ray"
    assert all(k["node"] for k in ray["kernels"]), "every kernel row names its node"
    remote = _results(ray)
    # Sinks fed round-robin after a join get the batches in the order keys complete,
    # which depends on how replicas interleave, on either engine: each sink's share may
    # differ, what they get together may not.
    split = [sink for sink, total in sinks.items() if total is None]
    shares = {engine: sum(r[s]["metrics"].pop("total") for s in split) for engine, r in
              (("local", local), ("ray", remote))}  # fmt: skip
    assert shares["local"] == shares["ray"]
    assert remote == local
    for sink, total in sinks.items():
        if total is not None:
            assert local[sink]["metrics"]["total"] == total


async def test_a_kernel_no_node_can_place_fails_its_launch_clearly(ray_session: str) -> None:
    from ringctl.engine.ray.engine import RayRuntime
    from ringctl.exceptions import KernelLaunchError

    async def idle(ctx: Any) -> None:
        await ctx.receive()

    async with RayRuntime(placement_timeout=2.0) as rt:
        with pytest.raises(KernelLaunchError) as caught:
            await rt.launch("huge", idle, resources={"num_cpus": 64})
    message = str(caught.value)
    assert "not placed within 2 s" in message
    assert "each replica asks for num_cpus=64" in message
    assert "free in the cluster now: CPU " in message
    assert caught.value.hint and "add a node" in caught.value.hint


async def test_a_message_that_cannot_cross_a_process_fails_the_producer_clearly(
    ray_session: str,
) -> None:
    """Retrying cannot deliver an unpicklable message: the producer fails, with the reason."""
    import threading

    from ringctl.engine.lifecycle import KernelState
    from ringctl.engine.ray.engine import RayRuntime

    async def sends_a_lock(ctx: Any) -> None:
        await ctx.send(threading.Lock())  # a lock cannot be pickled
        while not ctx.should_terminate:
            await ctx.wait_active()
            try:
                await ctx.receive(timeout=0.1)
            except TimeoutError:
                continue

    async def sink(ctx: Any) -> None:
        async for _ in ctx.messages():
            pass

    async with RayRuntime() as rt:
        await rt.launch("sink", sink)
        await rt.launch("bad", sends_a_lock)
        rt.connect("bad", "sink")
        await rt.activate("sink")
        await rt.activate("bad")
        info = await rt.wait_finished("bad", timeout=30)
        assert info.state is KernelState.TERMINATED
        assert info.error is not None
        assert "cannot deliver to bad.out -> sink" in info.error
        assert "lock" in info.error.lower()
        # Not dropped (no backpressure policy discarded it): lost on its queue, counted.
        assert rt.snapshot().kernel("bad").drops == 0
        (edge,) = [q for q in rt.accounting().queues if q.producer == "bad"]
        assert (edge.accepted, edge.lost) == (1, 1), edge
