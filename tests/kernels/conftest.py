"""Fixtures for the kernel tests: the repo root on ``sys.path``, a GPU switch, pipelines.

``kernels`` is not installed (PyPI's ``kernels`` is another project), so the tests put
the repository root first on the import path, as a topology's ``python_path`` does.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType

import pytest

from ringctl.testing import KernelRun, run_kernel
from ringctl.testing import wait_until as testing_wait_until

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


# The fixtures hand out ringctl.testing's public helpers, so every kernel test uses them.
Runner = Callable[..., Awaitable[KernelRun]]


@pytest.fixture
def run() -> Runner:
    """``await run(kernel, messages, params=...)``: ``ringctl.testing.run_kernel``."""
    return run_kernel


@pytest.fixture
def wait_until() -> Callable[..., Awaitable[None]]:
    """``await wait_until(condition, timeout)``: ``ringctl.testing.wait_until``."""
    return testing_wait_until
