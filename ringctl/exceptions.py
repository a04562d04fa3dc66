"""One error tree for the whole of ringctl.

Every error carries a ``message`` (what is wrong), an optional ``hint`` (what to do
about it) and the ``exit_code`` the CLI maps it to (the exit codes of ``docs/cli.md``).
The library raises these and never prints or exits; only ``ringctl.cli`` renders them.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

__all__ = [
    "ControlPlaneError",
    "KernelFailedError",
    "KernelLaunchError",
    "KernelNotFoundError",
    "KernelStateError",
    "QueueFullError",
    "RingctlError",
    "RunFailedError",
    "TopologyNotRunningError",
    "UserInputError",
]


class RingctlError(Exception):
    """Base of every error ringctl raises on purpose.

    ``exit_code`` follows cli.md: 1 the run failed, 2 bad input, 3 nothing running.
    """

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class UserInputError(RingctlError):
    """Bad input from the user: an invalid file, a bad argument (exit code 2)."""

    exit_code = 2


class RunFailedError(RingctlError):
    """The run failed: a kernel failed past its restart policy, an expectation was not met."""


class KernelStateError(RingctlError):
    """An action that the lifecycle's transition table does not allow from the current state.

    ``current_state`` is where the kernel is; ``expected_states`` are the states from
    which the action would have been valid (the spec's fields, to the letter).
    """

    def __init__(
        self,
        kernel_id: str,
        action: str,
        current_state: Enum,
        expected_states: Iterable[Enum],
        *,
        hint: str | None = None,
    ) -> None:
        self.kernel_id = kernel_id
        self.action = action
        self.current_state = current_state
        self.expected_states: tuple[Enum, ...] = tuple(expected_states)
        need = " or ".join(s.name for s in self.expected_states) or "no state (it is final)"
        super().__init__(
            f"cannot {action}() kernel {kernel_id!r}: it is {current_state.name}, "
            f"{action}() needs {need}",
            hint=hint,
        )


class KernelNotFoundError(RingctlError, KeyError):
    """No kernel with that id is known to the runtime (registered or launched)."""

    exit_code = 2

    def __init__(self, kernel_id: str, known_ids: Iterable[str]) -> None:
        self.kernel_id = kernel_id
        self.known_ids = tuple(sorted(known_ids))
        known = ", ".join(self.known_ids) if self.known_ids else "none"
        RingctlError.__init__(
            self,
            f"no kernel {kernel_id!r} (known kernels: {known})",
            hint="launch it first, or decorate its function with @ring_kernel(kernel_id=...)",
        )

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return RingctlError.__str__(self)


class KernelFailedError(RingctlError):
    """A kernel's body raised; carries the original exception as ``cause``."""

    def __init__(self, kernel_id: str, cause: BaseException) -> None:
        self.kernel_id = kernel_id
        self.cause = cause
        super().__init__(
            f"kernel {kernel_id!r} failed: {type(cause).__name__}: {cause}",
            hint="see the traceback in the log; a restart policy can replace a failed kernel",
        )


class KernelLaunchError(RingctlError):
    """A kernel could not be launched (phase 1): nothing was activated."""

    def __init__(self, kernel_id: str, reason: str, *, hint: str | None = None) -> None:
        self.kernel_id = kernel_id
        self.reason = reason
        super().__init__(f"kernel {kernel_id!r} could not be launched: {reason}", hint=hint)


class QueueFullError(RingctlError):
    """A send on a queue whose backpressure policy is ``reject`` found it full."""

    def __init__(self, queue_name: str, capacity: int) -> None:
        self.queue_name = queue_name
        self.capacity = capacity
        super().__init__(
            f"queue {queue_name} is full ({capacity} messages) and its policy is 'reject'",
            hint="raise its capacity, or use backpressure: block | drop_oldest | drop_newest",
        )


class TopologyNotRunningError(RingctlError):
    """No running topology of that name, or its supervisor does not answer (exit code 3)."""

    exit_code = 3


class ControlPlaneError(RingctlError):
    """The supervisor refused or failed a control request."""
