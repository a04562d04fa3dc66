"""The kernel ledger: what every engine keeps and decides the same way, pure and
synchronous.

``KernelBook`` is one kernel's bookkeeping (its lifecycle state and every move through
the transition table, restarts, how it ended, its rate windows and progress clock); the
local runtime's and the Ray engine's kernel records are built on it. The functions decide
launch arguments, params and the error for a kernel an action cannot find. So a topology
one engine refuses the other refuses too, with the same words and exception type, and a
state change is announced to listeners the same way everywhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ringctl.checks import did_you_mean
from ringctl.engine.lifecycle import RUNNING, USER_ACTIONS, Action, KernelState, next_state
from ringctl.engine.telemetry import RateWindow
from ringctl.exceptions import (
    KernelLaunchError,
    KernelNotFoundError,
    KernelStateError,
    RingctlError,
    UserInputError,
)
from ringctl.kernel.ring import RingKernel, registered

if TYPE_CHECKING:
    from ringctl.engine.contract import StateListener

__all__ = ["MAX_QUEUE_SIZE", "MAX_REPLICAS", "KernelBook", "LaunchArgs", "check_launch",
           "check_params", "check_tap", "missing_kernel"]  # fmt: skip

log = logging.getLogger("ringctl.runtime")

#: Far above any real use; what keeps a typo from allocating gigabytes.
MAX_REPLICAS: Final = 1024
MAX_QUEUE_SIZE: Final = 10_000_000


@dataclass(eq=False, kw_only=True)
class KernelBook:
    """One kernel's bookkeeping, the same on every engine (no I/O, no event loop)."""

    id: str
    state: KernelState = KernelState.LAUNCHED
    replicas: int = 1
    restarts: int = 0
    completed: bool = False  # the body returned on its own
    forced: bool = False  # a terminate timed out and the body was cancelled
    terminating: bool = False  # a terminate was asked for
    rate_in: RateWindow = field(default_factory=RateWindow)
    rate_out: RateWindow = field(default_factory=RateWindow)
    progress_total: int = -1
    progress_at: float = field(default_factory=time.monotonic)
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # set while TERMINATED

    def move(self, action: Action, listeners: Iterable[StateListener] = ()) -> None:
        """Take ``action`` through the transition table (raises ``KernelStateError``) and
        tell every listener; a listener that raises is logged, never propagated."""
        old = self.state
        self.state = next_state(self.id, old, action)
        if action == "relaunch":
            self.finished = asyncio.Event()  # a new instance: waiters wait for its end
        for listener in listeners:
            try:
                listener(self.id, old, self.state)
            except Exception:
                log.exception("state listener failed for %s", self.id)
        if self.state is KernelState.TERMINATED:
            self.finished.set()

    def restarted(self) -> None:
        """A new instance replaces the one that ended: it starts with a clean slate."""
        self.restarts += 1
        self.completed = self.forced = self.terminating = False

    def sample(self, messages_in: int, messages_out: int, now: float) -> None:
        """Feed the rate windows and the progress clock (the engine's timer calls this)."""
        self.rate_in.observe(messages_in, now)
        self.rate_out.observe(messages_out, now)
        if messages_in + messages_out != self.progress_total:
            self.progress_total = messages_in + messages_out
            self.progress_at = now


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
    from ringctl._substituted import typed

    model = spec.params_model
    if model is None:
        # No model to say what a value from ``${VAR}`` is: read it as YAML would.
        return typed(params) if params is not None else {}
    if isinstance(params, model):
        return params
    from pydantic import ValidationError

    try:
        return model.model_validate(typed(params or {}, all_scalars=False))
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


def check_tap(
    kernel_id: str, spec: RingKernel, port: str, ports: Collection[str], *,
    known: Collection[str],
) -> None:  # fmt: skip
    """Refuse a tap on ``port`` where its messages never pass through Python (the kernel's
    control says why) or it is not one of the kernel's ``ports`` (the error names ``known``)."""
    refused = None if spec.control is None else spec.control.untappable(port)
    if refused is not None:
        raise UserInputError(refused[0], hint=refused[1])
    if port not in ports:
        names = sorted(known)
        guess = did_you_mean(port, names) if names else None
        raise UserInputError(
            f"kernel {kernel_id!r} has no output port {port!r}"
            + (f" (its ports: {', '.join(names)})" if names else " (it sends nothing)"),
            hint=f"did you mean {kernel_id}.{guess}?" if guess else None,
        )


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
            RUNNING,
            hint="launch it first: await runtime.launch(kernel_id)",
        )
    return KernelNotFoundError(kernel_id, sorted(known))
