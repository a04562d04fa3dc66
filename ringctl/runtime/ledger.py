"""What both engines decide the same way, as pure functions: launch arguments, params,
and the error for a kernel an action cannot find.

The local runtime and the Ray engine compose these, so a topology that one engine
refuses the other refuses too, with the same words (and the same exception type).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from ringctl.exceptions import (
    KernelLaunchError,
    KernelNotFoundError,
    KernelStateError,
    RingctlError,
)
from ringctl.runtime.kernel import RingKernel, registered
from ringctl.runtime.lifecycle import USER_ACTIONS, KernelState, next_state

__all__ = ["MAX_QUEUE_SIZE", "MAX_REPLICAS", "LaunchArgs", "check_launch", "check_params",
           "missing_kernel"]  # fmt: skip

#: Far above any real use; what keeps a typo from allocating gigabytes.
MAX_REPLICAS: Final = 1024
MAX_QUEUE_SIZE: Final = 10_000_000

_RUNNING: Final = (KernelState.LAUNCHED, KernelState.ACTIVE, KernelState.DEACTIVATED)


@dataclass(frozen=True, slots=True)
class LaunchArgs:
    replicas: int
    queue_size: int
    params: Any


def check_launch(
    kernel_id: str, spec: RingKernel, *, replicas: int, queue_size: int | None, params: Any
) -> LaunchArgs:
    """The checked launch arguments, or ``KernelLaunchError`` saying what is wrong."""
    if not 1 <= replicas <= MAX_REPLICAS:
        raise KernelLaunchError(
            kernel_id, f"replicas must be between 1 and {MAX_REPLICAS}, got {replicas}"
        )
    size = queue_size if queue_size is not None else spec.queue_size
    if not 1 <= size <= MAX_QUEUE_SIZE:
        raise KernelLaunchError(
            kernel_id, f"queue_size must be between 1 and {MAX_QUEUE_SIZE}, got {size}"
        )
    return LaunchArgs(replicas, size, check_params(kernel_id, spec, params))


def check_params(kernel_id: str, spec: RingKernel, params: Any) -> Any:
    """``params`` validated against the kernel's params model (a dict where it has none)."""
    model = spec.params_model
    if model is None:
        return params if params is not None else {}
    if isinstance(params, model):
        return params
    from pydantic import ValidationError

    try:
        return model.model_validate(params or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(params)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise KernelLaunchError(
            kernel_id,
            f"params do not fit {model.__name__}: {problems}",
            hint="fix the kernel's params in the topology (ringctl validate --import checks them)",
        ) from exc


def missing_kernel(kernel_id: str, action: str | None, known: Iterable[str]) -> RingctlError:
    """The error for ``action`` on a kernel this engine has not launched.

    A ``@ring_kernel`` that exists but was never launched is CREATED: the action gets
    the transition table's ``KernelStateError``; an unknown id gets ``KernelNotFoundError``.
    """
    if action is not None and registered(kernel_id) is not None:
        if action in USER_ACTIONS:
            next_state(kernel_id, KernelState.CREATED, action)  # raises with expectations
        return KernelStateError(
            kernel_id,
            action,
            KernelState.CREATED,
            _RUNNING,
            hint="launch it first: await runtime.launch(kernel_id)",
        )
    return KernelNotFoundError(kernel_id, sorted(known))
