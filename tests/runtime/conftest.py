"""Fixtures for the runtime tests: a runtime that must leave no task behind.

``RINGCTL_TEST_LOOP=uvloop`` runs these tests on uvloop instead of asyncio's own loop
(the runtime uses uvloop where it is installed; the storms in ``test_pause`` always try both).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable

import pytest

from ringctl import RingKernelRuntime

from .support import other_tasks


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    if os.environ.get("RINGCTL_TEST_LOOP") == "uvloop":
        import uvloop

        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture
async def runtime() -> AsyncIterator[RingKernelRuntime]:
    """A runtime used as the spec recommends (``async with``); checks nothing outlives it."""
    async with RingKernelRuntime(shutdown_timeout=2.0) as rt:
        yield rt
    assert not other_tasks(), f"tasks left behind: {other_tasks()}"
