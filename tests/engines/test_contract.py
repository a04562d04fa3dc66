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
from ringctl.engine import make_engine
from ringctl.engine.contract import Capability, Engine, require
from ringctl.exceptions import (
    KernelLaunchError,
    KernelNotFoundError,
    KernelStateError,
    UserInputError,
)

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


async def test_a_registered_kernel_never_launched_is_created_to_every_question(
    engine: Engine,
) -> None:
    assert engine.get_state("contract_registered") is S.CREATED
    info = engine.get_info("contract_registered")
    assert (info.kernel_id, info.state, info.replicas, info.restarts) == (
        "contract_registered", S.CREATED, 1, 0,
    )  # fmt: skip
    assert (info.completed, info.forced, info.error) == (False, False, None)
    assert "contract_registered" not in engine.kernel_ids
    with pytest.raises(KernelStateError) as caught:
        await engine.terminate("contract_registered")
    assert caught.value.current_state is S.CREATED
    for ask in (engine.get_state, engine.get_info):
        with pytest.raises(KernelNotFoundError, match="no_such_kernel"):
            ask("no_such_kernel")


async def test_listeners_and_waiters_see_every_move(engine: Engine) -> None:
    moves: list[tuple[str, S, S]] = []
    engine.add_listener(lambda kid, old, new: moves.append((kid, old, new)))
    await engine.launch("relay", relay)
    await engine.activate("relay")
    await engine.deactivate("relay")
    await engine.reactivate("relay")
    waiter = asyncio.ensure_future(engine.wait_finished("relay", timeout=30))
    report = await engine.terminate("relay", timeout=5.0)
    info = await waiter
    assert (report.kernel_id, report.graceful, report.forced) == ("relay", True, False)
    assert info.state is S.TERMINATED and engine.get_state("relay") is S.TERMINATED
    assert moves == [
        ("relay", S.CREATED, S.LAUNCHED),
        ("relay", S.LAUNCHED, S.ACTIVE),
        ("relay", S.ACTIVE, S.DEACTIVATED),
        ("relay", S.DEACTIVATED, S.ACTIVE),
        ("relay", S.ACTIVE, S.TERMINATING),
        ("relay", S.TERMINATING, S.TERMINATED),
    ]


CAPABILITIES: tuple[Capability, ...] = ("restart", "scale", "tap", "reconfigure", "rewire")


async def test_what_an_engine_cannot_do_is_refused_naming_the_engine(engine: Engine) -> None:
    await engine.launch("relay", relay)
    await engine.activate("relay")
    for action in CAPABILITIES:
        if action in engine.capabilities:
            require(engine, action)  # declared: nothing to refuse
            continue
        words = f"{action} is not supported with engine: {engine.name} yet"
        with pytest.raises(UserInputError, match=words):
            require(engine, action)
        with pytest.raises(UserInputError, match=words):  # the engine refuses it itself too
            if action == "restart":
                await engine.restart("relay")
            elif action == "scale":
                await engine.scale("relay", 2)
            elif action == "reconfigure":
                engine.reconfigure("relay", relay, params={}, queue_size=None)
            elif action == "rewire":
                await engine.rewire((), [("relay", "out", "relay")])
            else:
                engine.tap("relay")


async def test_declared_capabilities_work_on_a_running_kernel(engine: Engine) -> None:
    await engine.launch("relay", relay)
    await engine.activate("relay")
    if "tap" in engine.capabilities:
        tap = engine.tap("relay")
        await engine.send_batch("relay", [1, 2, 3])
        assert sorted(await engine.receive_batch("relay", 3, timeout=10)) == [1, 2, 3]
        await _until(lambda: tap.seen >= 3, 10)  # a Ray tap is read a few times a second
        assert tap.take(10) == [1, 2, 3]
        engine.untap("relay", "out", tap)
    if "scale" in engine.capabilities:
        assert await engine.scale("relay", 3) == 1
        assert engine.get_info("relay").replicas == 3
    if "restart" in engine.capabilities:
        report = await engine.restart("relay", timeout=5.0)
        assert report.kernel_id == "relay" and not report.forced
        info = engine.get_info("relay")
        assert (info.state, info.restarts) == (S.ACTIVE, 1)


async def counting_sink(ctx: Any) -> None:
    """Counts in ``ctx.state``: a restart that lost the state would count from 0 again."""
    async for _msg in ctx.messages():
        ctx.state["seen"] = ctx.state.get("seen", 0) + 1
        ctx.metrics["seen"] = ctx.state["seen"]


async def _until(check: Any, timeout: float = 30.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


async def test_a_restart_keeps_what_is_queued_and_the_state(engine: Engine) -> None:
    if "restart" not in engine.capabilities:
        pytest.skip(f"engine {engine.name} does not restart")
    await engine.launch("sink", counting_sink)
    await engine.launch("relay", relay)
    engine.connect("relay", "sink", capacity=100)
    await engine.activate("sink")
    await engine.activate("relay")
    await engine.send_batch("relay", list(range(20)))
    await _until(lambda: engine.snapshot().kernel("sink").metrics.get("seen") == 20)
    await engine.deactivate("sink")
    await engine.send_batch("relay", list(range(50)))
    await _until(lambda: engine.queued("sink") == 50)
    report = await engine.restart("sink", timeout=5.0)
    assert (report.forced, report.left_in_inbox) == (False, 0)
    info = engine.get_info("sink")
    assert (info.state, info.restarts) == (S.DEACTIVATED, 1)  # paused, as it was
    await _until(lambda: engine.queued("sink") == 50)  # nothing queued was dropped
    await engine.reactivate("sink")
    await _until(lambda: engine.snapshot().kernel("sink").metrics.get("seen") == 70)
    await engine.terminate_all(timeout=5.0)
    acc = engine.accounting()
    assert acc.holds, acc.violations
    edge = next(q for q in acc.queues if q.producer == "relay")
    assert (edge.accepted, edge.delivered, edge.lost, edge.left, edge.in_doubt) == (
        70, 70, 0, 0, 0,
    )  # fmt: skip


async def test_scaling_down_hands_what_is_queued_to_the_replicas_that_stay(
    engine: Engine,
) -> None:
    if "scale" not in engine.capabilities:
        pytest.skip(f"engine {engine.name} does not scale")
    await engine.launch("sink", counting_sink, replicas=3)
    await engine.launch("relay", relay)
    engine.connect("relay", "sink", capacity=200)
    await engine.activate("sink")
    await engine.activate("relay")
    await engine.deactivate("sink")
    await engine.send_batch("relay", list(range(90)))
    await _until(lambda: engine.queued("sink") == 90)
    assert await engine.scale("sink", 1) == 3
    assert engine.get_info("sink").replicas == 1
    await engine.reactivate("sink")
    await _until(lambda: engine.snapshot().kernel("sink").messages_in == 90)
    assert await engine.scale("sink", 2) == 1  # and up again, while messages flow
    tap = engine.tap("relay")
    await engine.send_batch("relay", list(range(30)))
    await _until(lambda: engine.snapshot().kernel("sink").messages_in == 120)
    await _until(lambda: tap.seen == 30)
    assert sorted(tap.take(100)) == list(range(30))
    engine.untap("relay", "out", tap)
    await engine.terminate_all(timeout=5.0)
    acc = engine.accounting()
    assert acc.holds, acc.violations
    edge = next(q for q in acc.queues if q.producer == "relay")
    assert (edge.accepted, edge.delivered, edge.lost, edge.left, edge.in_doubt) == (
        120, 120, 0, 0, 0,
    )  # fmt: skip


async def doubling(ctx: Any) -> None:
    async for msg in ctx.messages():
        await ctx.send(msg * 2)


async def test_reconfigure_gives_the_next_restart_new_code_and_a_fresh_state(
    engine: Engine,
) -> None:
    if "reconfigure" not in engine.capabilities:
        pytest.skip(f"engine {engine.name} does not reconfigure")
    await engine.launch("sink", counting_sink)
    await engine.launch("relay", relay)
    engine.connect("relay", "sink", capacity=100)
    await engine.activate("sink")
    await engine.activate("relay")
    await engine.send_batch("relay", list(range(10)))
    await _until(lambda: engine.snapshot().kernel("sink").metrics.get("seen") == 10)
    engine.reconfigure("sink", counting_sink, params=None, queue_size=None, keep_state=False)
    await engine.restart("sink", timeout=5.0)
    await engine.send_batch("relay", list(range(5)))
    await _until(lambda: engine.snapshot().kernel("sink").metrics.get("seen") == 5)  # afresh

    await engine.launch("solo", relay)
    await engine.activate("solo")
    await engine.send_batch("solo", [1])
    assert await engine.receive_batch("solo", 1, timeout=10) == [1]
    engine.reconfigure("solo", doubling, params=None, queue_size=None)
    await engine.send_batch("solo", [2])  # the running instance keeps its code
    assert await engine.receive_batch("solo", 1, timeout=10) == [2]
    await engine.restart("solo", timeout=5.0)
    await engine.send_batch("solo", [3])
    assert await engine.receive_batch("solo", 1, timeout=10) == [6]
    await engine.terminate_all(timeout=5.0)
    acc = engine.accounting()
    assert acc.holds, acc.violations
    edge = next(q for q in acc.queues if q.producer == "relay")
    assert (edge.accepted, edge.delivered, edge.lost, edge.left) == (15, 15, 0, 0)


async def test_a_tap_on_a_port_the_kernel_does_not_have_is_refused(engine: Engine) -> None:
    if "tap" not in engine.capabilities:
        pytest.skip(f"engine {engine.name} does not tap")
    await engine.launch("sink", sink)
    await engine.launch("relay", relay)
    engine.connect("relay", "sink")
    await engine.activate("sink")
    await engine.activate("relay")
    with pytest.raises(UserInputError, match="kernel 'relay' has no output port 'outt'") as e:
        engine.tap("relay", "outt")
    assert e.value.hint == "did you mean relay.out?"


async def numbers_sink(ctx: Any) -> None:
    """Counts what it took and adds it up: a message lost or taken twice shows in both."""
    async for msg in ctx.messages():
        ctx.metrics["seen"] = ctx.metrics.get("seen", 0) + 1
        ctx.metrics["sum"] = ctx.metrics.get("sum", 0) + msg


async def test_rewire_moves_a_queue_while_the_producer_sends_and_retune_changes_it(
    engine: Engine,
) -> None:
    await engine.launch("old", numbers_sink)
    await engine.launch("new", numbers_sink)
    await engine.launch("relay", relay)
    engine.connect("relay", "old", capacity=8)
    for kid in ("old", "new", "relay"):
        await engine.activate(kid)

    async def feed() -> None:
        for start in range(0, 400, 20):
            await engine.send_batch("relay", list(range(start, start + 20)))
            await asyncio.sleep(0.005)

    sending = asyncio.ensure_future(feed())
    await _until(lambda: engine.snapshot().kernel("old").metrics.get("seen", 0) > 0)
    await engine.rewire([("relay", "out", "new", 4, "block", None)], [("relay", "out", "old")])
    await engine.retune("relay", "out", "new", capacity=32, backpressure="block", fanout=None)
    await sending
    seen = lambda kid: engine.snapshot().kernel(kid).metrics.get("seen", 0)  # noqa: E731
    await _until(lambda: seen("old") + seen("new") == 400)
    await _until(lambda: engine.inflight("old") == 0 and engine.is_idle("old"))
    assert seen("new") > 0  # the producer was switched while it sent
    (queue,) = (q for q in engine.snapshot().queues if q.producer == "relay")
    assert (queue.consumer, queue.capacity) == ("new", 32)  # the old queue is no longer listed
    total = sum(engine.snapshot().kernel(k).metrics.get("sum", 0) for k in ("old", "new"))
    assert total == sum(range(400))  # each number once

    # Back and forth (as an apply that rolls back does): a queue wired again goes on
    # counting where it stopped.
    await engine.rewire([("relay", "out", "old", 8, "block", None)], [("relay", "out", "new")])
    await engine.send_batch("relay", list(range(400, 440)))
    await _until(lambda: seen("old") + seen("new") == 440)
    await engine.rewire([("relay", "out", "new", 32, "block", None)], [("relay", "out", "old")])
    await _until(lambda: engine.inflight("old") == 0 and engine.is_idle("old"))
    total = sum(engine.snapshot().kernel(k).metrics.get("sum", 0) for k in ("old", "new"))
    assert total == sum(range(440))

    # A kernel taken out with everything processed: its id can be launched anew.
    await engine.terminate("old", timeout=5.0)
    assert engine.close_inbox("old", "left") == 0
    engine.remove("old")
    await engine.launch("old", numbers_sink)
    await engine.rewire([("relay", "out", "old", None, "block", "round_robin")])
    await engine.activate("old")
    before = seen("new")
    await engine.send_batch("relay", list(range(100)))
    await _until(lambda: seen("old") == 50 and seen("new") == before + 50)
    await engine.terminate_all(timeout=5.0)
    acc = engine.accounting()
    assert acc.holds, acc.violations
    for kid, n in (("new", before + 50), ("old", 50)):  # a queue wired again may be a new row
        rows = [q for q in acc.queues if (q.producer, q.consumer) == ("relay", kid)]
        assert [sum(getattr(q, term) for q in rows) for term in ("accepted", "delivered")] == [
            n, n,
        ]  # fmt: skip
        assert not any(q.lost or q.left or q.in_doubt for q in rows)


async def test_a_stage_inserted_while_messages_flow_sees_each_message_once(
    engine: Engine,
) -> None:
    await engine.launch("sink", numbers_sink)
    await engine.launch("relay", relay)
    engine.connect("relay", "sink", capacity=8)
    await engine.activate("sink")
    await engine.activate("relay")
    await engine.send_batch("relay", list(range(100)))
    # As apply adds a kernel: launched, wired (the producer switched to it), activated.
    await engine.launch("double", doubling)
    await engine.rewire(
        [("double", "out", "sink", None, "block", None), ("relay", "out", "double", 8, "block",
                                                          None)],
        [("relay", "out", "sink")],
    )  # fmt: skip
    await engine.activate("double")
    await engine.send_batch("relay", list(range(100, 200)))
    seen = lambda: engine.snapshot().kernel("sink").metrics  # noqa: E731
    await _until(lambda: seen().get("seen") == 200)
    through = engine.snapshot().kernel("double").messages_in
    assert 100 <= through <= 200  # at least all those sent after the switch
    # Each number once: the ones that went through the new stage came doubled.
    doubled = set(range(200 - through, 200))
    assert seen()["sum"] == sum(n * 2 if n in doubled else n for n in range(200))
    await engine.terminate_all(timeout=5.0)
    acc = engine.accounting()
    assert acc.holds, acc.violations
    assert not any(q.lost or q.left or q.in_doubt for q in acc.queues)
