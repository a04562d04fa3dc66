"""``ringctl.authoring`` and ``ringctl.testing``, used the way a kernel author uses them."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from ringctl import KernelContext, ring_kernel
from ringctl.authoring import (
    Keyed,
    Pacer,
    SendBuffer,
    items_in,
    jsonable,
    keep_running,
    map_payload,
    to_host,
)
from ringctl.testing import run_kernel, run_kernel_sync, wait_until


@ring_kernel(kernel_id="buffered_source", ports=("out",))
async def buffered_source(ctx: KernelContext) -> None:
    async with SendBuffer(ctx, size=4) as out:
        for n in range(10):
            if not await keep_running(ctx):
                return
            await out.send(n)
            ctx.metrics["pending_after_send"] = len(out)


async def test_send_buffer_sends_in_order_and_flushes_the_rest() -> None:
    run = await run_kernel(buffered_source)
    assert run.outputs == list(range(10))
    assert run.metrics["pending_after_send"] == 2  # 10 = 4 + 4 + 2, the 2 sent on exit
    assert run.errors == 0


@ring_kernel(kernel_id="failing_source", ports=("out",))
async def failing_source(ctx: KernelContext) -> None:
    async with SendBuffer(ctx, size=100) as out:
        await out.send("half-done")
        raise RuntimeError("boom")


def test_send_buffer_sends_nothing_when_the_body_fails() -> None:
    run = run_kernel_sync(failing_source)
    assert run.outputs == []
    assert run.errors == 1
    assert run.last_error is not None and "boom" in run.last_error


def test_send_buffer_refuses_a_size_below_one() -> None:
    with pytest.raises(ValueError, match="size must be >= 1"):
        SendBuffer(None, size=0)  # type: ignore[arg-type]


async def test_pacer_spaces_sends_against_a_deadline() -> None:
    loop = asyncio.get_running_loop()
    pacer = Pacer(rate=200.0)  # 5 ms per unit
    start = loop.time()
    for _ in range(11):
        await pacer.wait()
    assert loop.time() - start >= 0.05 - 1e-3  # ten intervals after the first send
    free = Pacer(rate=None)
    start = loop.time()
    for _ in range(1000):
        await free.wait()
    assert loop.time() - start < 0.05


def test_items_map_payload_and_jsonable() -> None:
    keyed = Keyed(7, np.arange(6).reshape(3, 2))
    assert items_in(keyed) == 3
    assert items_in([1, 2]) == 2 and items_in(5) == 1 and items_in(np.float32(1)) == 1
    doubled = map_payload(keyed, lambda a: a * 2)
    assert isinstance(doubled, Keyed) and doubled.key == 7
    assert map_payload(3, lambda x: x + 1) == 4

    @dataclasses.dataclass
    class Record:
        name: str
        values: object

    assert jsonable(Record("r", np.array([1.5, 2.5]))) == {"name": "r", "values": [1.5, 2.5]}
    assert jsonable({1: np.int64(3), "k": (Keyed("a", 1),)}) == {
        "1": 3,
        "k": [{"key": "a", "data": 1}],
    }
    assert to_host([1, 2]).tolist() == [1, 2]


async def test_wait_until_has_a_deadline() -> None:
    with pytest.raises(TimeoutError, match=r"within 0\.05 s"):
        await wait_until(lambda: False, timeout=0.05)
    flag: list[int] = []
    asyncio.get_running_loop().call_later(0.01, flag.append, 1)
    await wait_until(lambda: bool(flag), timeout=5)


def test_keyed_is_the_one_the_kernels_exchange() -> None:
    from kernels.records import Keyed as KernelsKeyed

    assert KernelsKeyed is Keyed


async def fails_before_reading(ctx: KernelContext) -> None:
    raise ValueError("bad config")


async def never_returns(ctx: KernelContext) -> None:
    while await keep_running(ctx):
        await asyncio.sleep(0.01)


def test_run_kernel_reports_a_transform_that_fails_before_taking_its_messages() -> None:
    # The messages stay queued in the failed kernel's inbox; that is an answer, not a hang.
    loop = asyncio.new_event_loop()
    try:
        start = loop.time()
        run = loop.run_until_complete(run_kernel(fails_before_reading, [1, 2, 3], timeout=10))
        took = loop.time() - start
    finally:
        loop.close()
    assert run.errors == 1
    assert run.last_error is not None and "bad config" in run.last_error
    assert run.outputs == []
    assert took < 5


def test_run_kernel_timeout_says_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match=r"the source did not return within 0\.2 s"):
        run_kernel_sync(never_returns, timeout=0.2)
    with pytest.raises(TimeoutError, match=r"had not taken every message within 0\.2 s \(3 "):
        run_kernel_sync(never_returns, [1, 2, 3], timeout=0.2)


def test_run_kernel_returns_what_each_port_got() -> None:
    from ringctl import ring_kernel

    @ring_kernel(kernel_id="splitter-under-test", ports=["evens", "odds"])
    async def split(ctx: KernelContext) -> None:
        async for msg in ctx.messages():
            await ctx.send(msg, port="evens" if msg % 2 == 0 else "odds")

    run = run_kernel_sync(split, [1, 2, 3, 4, 5])
    assert run.ports == {"evens": [2, 4], "odds": [1, 3, 5]}
    assert run.outputs == [] and run.errors == 0
