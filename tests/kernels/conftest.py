"""Fixtures for the kernel tests: the repo root on ``sys.path``, a GPU switch, pipelines.

``kernels`` is not installed (PyPI's ``kernels`` is another project), so the tests put
the repository root first on the import path, as a topology's ``python_path`` does.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def cp() -> ModuleType:
    """CuPy on a usable GPU, or skip (``cupy.is_available()`` never raises)."""
    cupy = pytest.importorskip("cupy")
    if not cupy.is_available():
        pytest.skip("no usable CUDA device")
    return cupy


@dataclass
class Run:
    """What came out of a one-kernel pipeline: its sent messages and its metrics."""

    outputs: list[Any]
    metrics: dict[str, Any]
    errors: int


async def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition with a deadline: no sleeping for luck."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.002)


async def run_kernel(
    kernel: Any,
    messages: list[Any] | None = None,
    *,
    params: dict[str, Any] | None = None,
    replicas: int = 1,
    backend: str = "cpu",
    timeout: float = 20.0,
) -> Run:
    """List source -> ``kernel`` -> collecting sink, as a test reads it.

    A source (no messages given) runs until it returns; a transform or sink runs until
    it has taken everything and waits for more. Outputs are read from the kernel's
    unwired ``out`` port, where the runtime keeps them.
    """
    from ringctl import KernelStateError, RingKernelRuntime

    async with RingKernelRuntime() as rt:
        await rt.launch("k", kernel, params=params, replicas=replicas, backend=backend)
        await rt.activate("k")
        if messages is None:
            await rt.wait_finished("k", timeout=timeout)
        else:
            await rt.send_batch("k", messages)
            await _wait_until(lambda: rt.is_idle("k"), timeout)
        snap = next(k for k in rt.snapshot().kernels if k.id == "k")
        outputs: list[Any] = []
        ports = getattr(kernel, "ports", None)
        if ports is None or "out" in ports:
            while True:
                try:
                    outputs.extend(await rt.receive_batch("k", 4096, timeout=0))
                except (TimeoutError, KernelStateError):  # nothing left to read
                    break
        return Run(outputs, dict(snap.metrics), snap.errors)


Runner = Callable[..., Awaitable[Run]]


@pytest.fixture
def run() -> Runner:
    """``await run(kernel, messages, params=...)``: see ``run_kernel``."""
    return run_kernel


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[None]]:
    """``await wait_until(condition, timeout)``: poll with a deadline."""
    return _wait_until
