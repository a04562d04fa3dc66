"""What a kernel author needs besides the context: source loops, pacing, batching, records.

::

    from ringctl import KernelContext, ring_kernel
    from ringctl.authoring import Pacer, SendBuffer, keep_running

    @ring_kernel(kernel_id="ticks", ports=("out",))
    async def ticks(ctx: KernelContext) -> None:
        pacer = Pacer(rate=100.0)                  # 100 messages per second
        n = 0
        while await keep_running(ctx):             # holds while paused, False once stopping
            if n == 1000:
                return                             # a finished source completes the kernel
            await pacer.wait()
            await ctx.send(n)
            n += 1

A source has no inbox to wait on, so it loops on :func:`keep_running`; a transform uses
``ctx.messages()`` or ``ctx.batches(n)`` and needs none of this. :class:`SendBuffer`
sends small messages in batches (one queue operation per batch instead of per message);
:func:`items_in` and :func:`map_payload` let one kernel body take arrays, lists and
:class:`Keyed` messages alike. Nothing here imports NumPy or CuPy until it is handed one
of their arrays.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ringctl.kernel.context import KernelContext

__all__ = [
    "Keyed",
    "Pacer",
    "SendBuffer",
    "device_scope",
    "items_in",
    "jsonable",
    "keep_running",
    "map_payload",
    "to_host",
]


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
    fixed interval, so slow sends are caught up instead of accumulating drift.

    ``rate=None`` (or 0) never waits. ``await pacer.wait(units)`` before sending a message
    that carries ``units`` items paces items rather than messages.
    """

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
        # A source that fell more than a second behind does not burst to catch up.
        self._next = max(self._next, now - 1.0) + units * self._interval


class SendBuffer:
    """Collects messages and sends them ``size`` at a time with ``ctx.send_batch``.

    One queue operation per batch instead of one per message: what makes a source of
    small messages (numbers, short records) fast. Use it as an async context manager so
    that what is buffered is sent when the loop ends normally::

        async with SendBuffer(ctx, size=256) as out:
            while await keep_running(ctx):
                await out.send(next_value())

    Order is kept. Nothing is sent when the body raises (the kernel failed: a restart
    resumes from ``ctx.state``, not from a half-sent buffer).
    """

    def __init__(self, ctx: KernelContext, size: int = 256, port: str = "out") -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1; got {size}")
        self._ctx = ctx
        self._size = size
        self._port = port
        self._pending: list[Any] = []

    def __len__(self) -> int:
        """Messages buffered and not yet sent."""
        return len(self._pending)

    async def send(self, msg: Any) -> None:
        """Buffer ``msg``; send the buffer once it holds ``size`` messages."""
        if self._size == 1:
            await self._ctx.send(msg, port=self._port)  # the context's own fast path
            return
        self._pending.append(msg)
        if len(self._pending) >= self._size:
            await self.flush()

    async def flush(self) -> None:
        """Send whatever is buffered now (waits for room in the queue, as a send does)."""
        if self._pending:
            batch, self._pending = self._pending, []
            await self._ctx.send_batch(batch, port=self._port)

    async def __aenter__(self) -> SendBuffer:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            await self.flush()


@dataclass(frozen=True, slots=True)
class Keyed:
    """A payload with a key, so branches of a fan-out can be joined again downstream.

    Map-style kernels transform ``data`` and keep ``key`` (see :func:`map_payload`).
    """

    key: Any
    data: Any


def map_payload(msg: Any, fn: Callable[[Any], Any]) -> Any:
    """Apply ``fn`` to a message's payload, keeping a :class:`Keyed` message's key."""
    if isinstance(msg, Keyed):
        return Keyed(msg.key, fn(msg.data))
    return fn(msg)


def items_in(msg: Any) -> int:
    """How many items a message carries: rows of an array, the length of a batch, or 1.

    For counters and pacing that should count samples, not messages. A record (a
    dataclass) with ``__len__`` counts as its length.
    """
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
        return to_host(msg).tolist()
    if hasattr(msg, "item") and hasattr(msg, "dtype"):  # a NumPy scalar
        return msg.item()
    if isinstance(msg, dict):
        return {str(k): jsonable(v) for k, v in msg.items()}
    if isinstance(msg, list | tuple):
        return [jsonable(v) for v in msg]
    return msg


def to_host(array: Any) -> Any:
    """A NumPy view of ``array``; one copy when it lives on a GPU (CuPy's ``get``).

    Send small results to the host so any sink can read them; plain ``numpy.asarray``
    refuses a CuPy array on purpose.
    """
    get = getattr(array, "get", None)
    if get is not None and type(array).__module__.startswith("cupy"):
        return get()
    import numpy as np

    return np.asarray(array)


@contextlib.contextmanager
def device_scope(ctx: KernelContext) -> Iterator[None]:
    """Make the context's GPU current for CuPy calls; nothing on the CPU."""
    if ctx.backend == "cuda" and ctx.device is not None:
        import cupy  # only cuda kernels get here

        with cupy.cuda.Device(ctx.device):
            yield
    else:
        yield
