"""Helpers the runtime tests share: wait on a condition with a deadline (the one
``ringctl.testing.wait_until``), never for luck."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ringctl import KernelContext, KernelState
from ringctl.testing import wait_until

__all__ = ["holds", "wait_until"]


async def holds(predicate: Callable[[], Any], *, for_s: float = 0.05) -> bool:
    """True if ``predicate()`` stays true for ``for_s`` seconds (a bounded negative check)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + for_s
    while loop.time() < deadline:
        if not predicate():
            return False
        await asyncio.sleep(0.001)
    return bool(predicate())


def other_tasks() -> set[asyncio.Task[Any]]:
    """Every task of this loop except the test's own."""
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


def kernel_tasks() -> set[asyncio.Task[Any]]:
    """The kernel body tasks the runtime started (it names them ``ringctl:<id>[<replica>]``)."""
    return {t for t in other_tasks() if t.get_name().startswith("ringctl:")}


# -- tiny kernels, the building blocks of each test's topology ----------------------------


async def echo(ctx: KernelContext) -> None:
    """Send every message on, unchanged (the same object)."""
    async for msg in ctx.messages():
        await ctx.send(msg)


def collector(into: list[Any]) -> Callable[[KernelContext], Any]:
    """A sink that appends every message it receives to ``into``."""

    async def sink(ctx: KernelContext) -> None:
        async for msg in ctx.messages():
            into.append(msg)

    return sink


def source(items: list[Any]) -> Callable[[KernelContext], Any]:
    """A finite source: sends ``items`` on ``out`` and returns (the kernel completes)."""

    async def emit(ctx: KernelContext) -> None:
        for item in items:
            await ctx.send(item)

    return emit


# -- the spec's transition table, written out by hand (never imported from the code) -------

_S = KernelState

#: The spec's "Valid Transitions" table and state diagram, plus one addition: ``terminate`` is
#: valid from LAUNCHED, ACTIVE and DEACTIVATED.
SPEC_MOVES: dict[tuple[KernelState, str], KernelState] = {
    (_S.CREATED, "launch"): _S.LAUNCHED,
    (_S.LAUNCHED, "activate"): _S.ACTIVE,
    (_S.ACTIVE, "deactivate"): _S.DEACTIVATED,
    (_S.DEACTIVATED, "reactivate"): _S.ACTIVE,
    (_S.LAUNCHED, "terminate"): _S.TERMINATING,
    (_S.ACTIVE, "terminate"): _S.TERMINATING,
    (_S.DEACTIVATED, "terminate"): _S.TERMINATING,
}
ACTIONS = ("launch", "activate", "deactivate", "reactivate", "terminate")


def spec_expected(action: str) -> tuple[KernelState, ...]:
    """The states from which ``action`` is valid, in lifecycle order."""
    return tuple(s for s in KernelState if (s, action) in SPEC_MOVES)
