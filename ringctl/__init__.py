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
    from ringctl.api import RunHooks as RunHooks
    from ringctl.api import RunReport as RunReport
    from ringctl.api import TopologyFile as TopologyFile
    from ringctl.api import check as check
    from ringctl.api import load as load
    from ringctl.engine.contract import KernelInfo as KernelInfo
    from ringctl.engine.contract import KernelSnapshot as KernelSnapshot
    from ringctl.engine.contract import QueueSnapshot as QueueSnapshot
    from ringctl.engine.contract import RuntimeSnapshot as RuntimeSnapshot
    from ringctl.engine.contract import TerminationReport as TerminationReport
    from ringctl.engine.lifecycle import KernelState as KernelState
    from ringctl.engine.local.engine import RingKernelRuntime as RingKernelRuntime
    from ringctl.exceptions import KernelFailedError as KernelFailedError
    from ringctl.exceptions import KernelNotFoundError as KernelNotFoundError
    from ringctl.exceptions import KernelStateError as KernelStateError
    from ringctl.exceptions import QueueFullError as QueueFullError
    from ringctl.exceptions import RingctlError as RingctlError
    from ringctl.kernel.context import KernelContext as KernelContext
    from ringctl.kernel.ring import RingKernel as RingKernel
    from ringctl.kernel.ring import ring_kernel as ring_kernel


_EXPORTS = {
    **dict.fromkeys(["KernelInfo", "KernelSnapshot", "QueueSnapshot"], "ringctl.engine.contract"),
    **dict.fromkeys(["RuntimeSnapshot", "TerminationReport"], "ringctl.engine.contract"),
    "KernelState": "ringctl.engine.lifecycle",
    "RingKernelRuntime": "ringctl.engine.local.engine",
    **dict.fromkeys(["KernelFailedError", "KernelNotFoundError"], "ringctl.exceptions"),
    **dict.fromkeys(["KernelStateError", "QueueFullError", "RingctlError"], "ringctl.exceptions"),
    "KernelContext": "ringctl.kernel.context",
    **dict.fromkeys(["RingKernel", "ring_kernel"], "ringctl.kernel.ring"),
    **dict.fromkeys(["RunHooks", "RunReport", "TopologyFile", "check", "load"], "ringctl.api"),
}

__all__ = ["__version__", *_EXPORTS]

__getattr__, __dir__ = lazy_exports("ringctl", _EXPORTS, globals(), __all__)
