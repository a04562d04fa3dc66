"""Unit-testing kernels without the CLI: one kernel between a list source and a collector.

::

    from ringctl.testing import run_kernel

    async def test_double() -> None:                 # pytest-asyncio, or asyncio.run
        run = await run_kernel(double, [1, 2, 3])
        assert run.outputs == [2, 4, 6]
        assert run.errors == 0

A transform gets the messages given and runs until it has taken them all and waits for
more; a source (no messages given) runs until it returns. What the kernel sent on its
``out`` port comes back in ``outputs``, what it sent on each port in ``ports``, its
``ctx.metrics`` in ``metrics``. To test a whole topology file, load and run it:
``ringctl.load(path).run()`` (``ringctl.api``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KernelRun", "run_kernel", "run_kernel_sync", "wait_until"]


@dataclass(frozen=True, slots=True)
class KernelRun:
    """What came out of one kernel: the messages it sent, its metrics, its error count."""

    outputs: list[Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    errors: int = 0
    #: The kernel's last error message, if it recorded or raised one.
    last_error: str | None = None
    #: What it sent on each port it sent on, by port name (``outputs`` is ``ports["out"]``).
    ports: dict[str, list[Any]] = field(default_factory=dict)


async def wait_until(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    *,
    what: str = "",
    interval: float = 0.002,
) -> None:
    """Poll ``condition`` until it holds; ``TimeoutError`` after ``timeout`` seconds,
    saying ``what`` was awaited.

    For tests that wait on something asynchronous: a deadline, never a sleep for luck.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError(f"not true within {timeout:g} s: {what or condition}")
        await asyncio.sleep(interval)


async def run_kernel(
    kernel: Any,
    messages: list[Any] | None = None,
    *,
    params: dict[str, Any] | None = None,
    replicas: int = 1,
    backend: str = "cpu",
    timeout: float = 20.0,
) -> KernelRun:
    """Run ``kernel`` (a ``@ring_kernel`` or ``async def body(ctx)``) on ``messages``.

    ``params`` are validated against the kernel's params model, as in a topology.
    ``messages=None`` runs a source until it returns. A kernel that raises does not
    make this raise: ``errors`` and ``last_error`` say so, ``outputs`` hold what it sent
    before. Raises ``TimeoutError`` when the kernel has not taken every message (or a
    source has not returned) within ``timeout``.
    """
    from ringctl.engine.lifecycle import KernelState
    from ringctl.engine.local.engine import RingKernelRuntime
    from ringctl.exceptions import KernelFailedError, KernelStateError

    async with RingKernelRuntime() as rt:
        await rt.launch("k", kernel, params=params, replicas=replicas, backend=backend)
        await rt.activate("k")
        if messages is None:
            try:
                await rt.wait_finished("k", timeout=timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"the source did not return within {timeout:g} s "
                    "(give messages to test a transform, or a larger timeout)"
                ) from None
        else:
            await rt.send_batch("k", messages)

            def settled() -> bool:
                # A kernel that failed leaves what it had not taken in its inbox.
                return rt.is_idle("k") or rt.get_state("k") is KernelState.TERMINATED

            try:
                await wait_until(settled, timeout)
            except TimeoutError:
                left = next(k for k in rt.snapshot().kernels if k.id == "k").inbox_depth
                raise TimeoutError(
                    f"the kernel had not taken every message within {timeout:g} s "
                    f"({left} still queued)"
                ) from None
        snap = next(k for k in rt.snapshot().kernels if k.id == "k")
        # Every port is unwired here, and keeps what was sent on it for tests to read.
        sent: dict[str, list[Any]] = {}
        for port in rt.unwired_ports("k"):
            got = sent.setdefault(port, [])
            while True:
                try:
                    got.extend(await rt.receive_batch("k", 4096, timeout=0, port=port))
                except (TimeoutError, KernelStateError, KernelFailedError):
                    break  # nothing left to read (a failed kernel's count is in ``errors``)
        return KernelRun(
            sent.get("out", []), dict(snap.metrics), snap.errors, snap.last_error, ports=sent
        )


def run_kernel_sync(kernel: Any, messages: list[Any] | None = None, **kwargs: Any) -> KernelRun:
    """``run_kernel`` on a fresh event loop, for tests that are not ``async``."""
    return asyncio.run(run_kernel(kernel, messages, **kwargs))
