"""ringctl: persistent ring kernels wired into message-passing pipelines.

The public runtime API (the lifecycle is described in ``docs/concepts.md``)::

    from ringctl import RingKernelRuntime, ring_kernel, KernelState, KernelContext
    from ringctl.exceptions import KernelStateError, KernelNotFoundError

Topology files from a program (``ringctl.api``)::

    report = ringctl.load("topologies/quickstart.yaml").run()    # or await .run_async()

Helpers for writing kernels live in ``ringctl.authoring``; for testing them, in
``ringctl.testing``.

Names are imported on first use (PEP 562), so that ``ringctl --help`` and
``ringctl validate`` do not pay for asyncio and the runtime they never touch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ringctl._lazy import lazy_exports
from ringctl._version import __version__

if TYPE_CHECKING:
    from ringctl.api import RunHooks, RunReport, TopologyFile, check, load
    from ringctl.engine.contract import (
        KernelInfo,
        KernelSnapshot,
        QueueSnapshot,
        RuntimeSnapshot,
        TerminationReport,
    )
    from ringctl.engine.lifecycle import KernelState
    from ringctl.engine.local.engine import RingKernelRuntime
    from ringctl.exceptions import (
        KernelFailedError,
        KernelNotFoundError,
        KernelStateError,
        QueueFullError,
        RingctlError,
    )
    from ringctl.kernel.context import KernelContext
    from ringctl.kernel.ring import RingKernel, ring_kernel


_EXPORTS = {
    "KernelContext": "ringctl.kernel.context",
    "KernelFailedError": "ringctl.exceptions",
    "KernelInfo": "ringctl.engine.contract",
    "KernelNotFoundError": "ringctl.exceptions",
    "KernelSnapshot": "ringctl.engine.contract",
    "KernelState": "ringctl.engine.lifecycle",
    "KernelStateError": "ringctl.exceptions",
    "QueueFullError": "ringctl.exceptions",
    "QueueSnapshot": "ringctl.engine.contract",
    "RingKernel": "ringctl.kernel.ring",
    "RingKernelRuntime": "ringctl.engine.local.engine",
    "RingctlError": "ringctl.exceptions",
    "RuntimeSnapshot": "ringctl.engine.contract",
    "TerminationReport": "ringctl.engine.contract",
    "ring_kernel": "ringctl.kernel.ring",
    "RunHooks": "ringctl.api",
    "RunReport": "ringctl.api",
    "TopologyFile": "ringctl.api",
    "check": "ringctl.api",
    "load": "ringctl.api",
}

__all__ = [
    "KernelContext",
    "KernelFailedError",
    "KernelInfo",
    "KernelNotFoundError",
    "KernelSnapshot",
    "KernelState",
    "KernelStateError",
    "QueueFullError",
    "QueueSnapshot",
    "RingKernel",
    "RingKernelRuntime",
    "RingctlError",
    "RunHooks",
    "RunReport",
    "RuntimeSnapshot",
    "TerminationReport",
    "TopologyFile",
    "__version__",
    "check",
    "load",
    "ring_kernel",
]


__getattr__, __dir__ = lazy_exports("ringctl", _EXPORTS, globals(), __all__)
