"""Helpers the kernel bodies share: pacing, source loops, payload mapping, devices."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sized
from typing import TYPE_CHECKING, Any

import numpy as np

from kernels.compute.backend import to_numpy
from kernels.records import Keyed

if TYPE_CHECKING:
    from ringctl import KernelContext

__all__ = ["Pacer", "device_scope", "items_in", "jsonable", "keep_running", "map_payload"]


async def keep_running(ctx: KernelContext) -> bool:
    """For sources (no inbox to wait on): hold while paused; False once asked to stop.

    A source has no ``receive`` to park in, so without this a paused source would keep
    producing; the loop is ``while await keep_running(ctx): ... send ...``.
    """
    while not ctx.is_active and not ctx.should_terminate:
        await ctx.wait_active()
    return not ctx.should_terminate


class Pacer:
    """Spaces sends to ``rate`` units per second against a deadline, not by sleeping a
    fixed interval, so slow sends are caught up instead of accumulating drift."""

    def __init__(self, rate: float | None) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._next: float | None = None

    async def wait(self, units: int = 1) -> None:
        if not self._interval:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._next is None:
            self._next = now
        delay = self._next - now
        if delay > 0:
            await asyncio.sleep(delay)
        self._next = max(self._next, now - 1.0) + units * self._interval


def map_payload(msg: Any, fn: Callable[[Any], Any]) -> Any:
    """Apply ``fn`` to a message's payload, keeping a ``Keyed`` message's key."""
    if isinstance(msg, Keyed):
        return Keyed(msg.key, fn(msg.data))
    return fn(msg)


def items_in(msg: Any) -> int:
    """How many items a message carries: rows of an array, the length of a batch, or 1."""
    if isinstance(msg, Keyed):
        return items_in(msg.data)
    shape = getattr(msg, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else 1
    if isinstance(msg, list | tuple):
        return len(msg)
    if isinstance(msg, Sized) and dataclasses.is_dataclass(msg):
        return len(msg)
    return 1


def jsonable(msg: Any) -> Any:
    """A JSON-ready form of a message: arrays become lists, records become dicts."""
    if dataclasses.is_dataclass(msg) and not isinstance(msg, type):
        return {f.name: jsonable(getattr(msg, f.name)) for f in dataclasses.fields(msg)}
    if hasattr(msg, "shape") and hasattr(msg, "dtype"):
        return to_numpy(msg).tolist()
    if isinstance(msg, np.generic):
        return msg.item()
    if isinstance(msg, dict):
        return {str(k): jsonable(v) for k, v in msg.items()}
    if isinstance(msg, list | tuple):
        return [jsonable(v) for v in msg]
    return msg


@contextlib.contextmanager
def device_scope(ctx: KernelContext) -> Iterator[None]:
    """Make the context's GPU current for CuPy calls; nothing on the CPU."""
    if ctx.backend == "cuda" and ctx.device is not None:
        import cupy  # lazily: only cuda kernels get here

        with cupy.cuda.Device(ctx.device):
            yield
    else:
        yield
