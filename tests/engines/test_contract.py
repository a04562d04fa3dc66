"""One behavioural contract, run against every engine (``ringctl.engine.contract``).

The local runtime and the Ray engine must refuse the same launches with the same words,
raise the same exception types, return the same shapes and keep the same accounting, so
that the supervisor cannot tell them apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ringctl import KernelState, ring_kernel
from ringctl.engine.contract import Engine, make_engine
from ringctl.exceptions import KernelLaunchError, KernelNotFoundError, KernelStateError

S = KernelState


@ring_kernel(kernel_id="contract_registered")
async def registered_but_never_launched(ctx: Any) -> None:
    async for _ in ctx.messages():
        pass


async def relay(ctx: Any) -> None:
    async for msg in ctx.messages():
        await ctx.send(msg)


async def sink(ctx: Any) -> None:
    async for _msg in ctx.messages():
        ctx.metrics["seen"] = ctx.metrics.get("seen", 0) + 1


@pytest.fixture(params=["local", pytest.param("ray", marks=[pytest.mark.ray])])
async def engine(request: pytest.FixtureRequest) -> AsyncIterator[Engine]:
    if request.param == "ray":
        request.getfixturevalue("ray_session")
    eng = make_engine(request.param)
    try:
        yield eng
    finally:
        await eng.close()


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"replicas": 0}, "replicas must be between 1 and 1024, got 0"),
        ({"replicas": 10_000_000}, "replicas must be between 1 and 1024, got 10000000"),
        ({"queue_size": 0}, "queue_size must be between 1 and 10000000, got 0"),
    ],
)
async def test_bad_launch_arguments_are_refused_alike(
    engine: Engine, kwargs: dict[str, int], reason: str
) -> None:
    with pytest.raises(KernelLaunchError, match=reason):
        await engine.launch("k", relay, **kwargs)  # type: ignore[arg-type]
    assert "k" not in engine.kernel_ids


async def test_actions_on_kernels_that_were_never_launched(engine: Engine) -> None:
    with pytest.raises(KernelStateError) as caught:
        await engine.activate("contract_registered")
    assert caught.value.current_state is S.CREATED
    assert engine.get_state("contract_registered") is S.CREATED
    with pytest.raises(KernelNotFoundError):
        await engine.activate("no_such_kernel")


async def test_a_pipeline_accounts_for_every_message(engine: Engine) -> None:
    await engine.launch("sink", sink)
    await engine.launch("relay", relay)
    assert engine.connect("relay", "sink", capacity=16) is None
    await engine.activate("sink")
    await engine.activate("relay")
    await engine.send_batch("relay", list(range(200)))

    async def seen() -> int:
        while engine.snapshot().kernel("sink").metrics.get("seen", 0) < 200:
            await asyncio.sleep(0.02)
        return 200

    await asyncio.wait_for(seen(), 30)
    await engine.terminate_all(timeout=5.0)
    acc = engine.accounting()
    assert acc.holds, acc.violations
    edge = next(q for q in acc.queues if q.producer == "relay")
    assert (edge.accepted, edge.delivered, edge.lost, edge.left) == (200, 200, 0, 0)
    assert engine.refused == []


async def test_snapshots_are_pure_reads(engine: Engine) -> None:
    await engine.launch("relay", relay)
    await engine.activate("relay")
    await engine.send_batch("relay", list(range(10)))
    # No await in between: the engine's own timer cannot run, so nothing may change the
    # figures but the readers themselves, however many ask.
    first = engine.snapshot().kernel("relay")
    for _ in range(50):
        engine.snapshot()
    again = engine.snapshot().kernel("relay")
    assert (first.rate_in, first.rate_out) == (again.rate_in, again.rate_out)
