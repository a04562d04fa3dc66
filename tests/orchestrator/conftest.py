"""Fixtures for the orchestrator tests: the repo's ``kernels`` package importable, a
recorder of every state change, and waits with a deadline."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.harness import Ringctl, ringctl_for
from ringctl.testing import wait_until

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # `kernels` is not installed; topologies reach it by path
    sys.path.insert(0, str(REPO))


async def holds(predicate: Callable[[], Any], *, for_s: float = 0.1) -> bool:
    """True if ``predicate()`` stays true for ``for_s`` seconds (a bounded negative check)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + for_s
    while loop.time() < deadline:
        if not predicate():
            return False
        await asyncio.sleep(0.005)
    return bool(predicate())


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


@pytest.fixture
def until() -> Callable[..., Any]:
    return wait_until
