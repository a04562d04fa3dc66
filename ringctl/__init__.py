"""ringctl: persistent ring kernels wired into message-passing pipelines.

The public runtime API (``shared/spec/ring-kernel-lifecycle.md``)::

    from ringctl import RingKernelRuntime, ring_kernel, KernelState, KernelContext
    from ringctl.exceptions import KernelStateError, KernelNotFoundError
"""

from ringctl.exceptions import (
    KernelFailedError,
    KernelNotFoundError,
    KernelStateError,
    QueueFullError,
    RingctlError,
)
from ringctl.runtime.context import KernelContext
from ringctl.runtime.kernel import RingKernel, ring_kernel
from ringctl.runtime.lifecycle import KernelState
from ringctl.runtime.runtime import KernelInfo, RingKernelRuntime, TerminationReport
from ringctl.runtime.telemetry import KernelSnapshot, QueueSnapshot, RuntimeSnapshot

__version__ = "0.1.0"

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
    "RuntimeSnapshot",
    "TerminationReport",
    "__version__",
    "ring_kernel",
]
