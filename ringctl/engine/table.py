"""The kernel table every engine builds on: records, lookups, listeners and waiting.

An engine keeps one ``KernelBook`` per kernel (its own subclass, with what it needs to
run it) in a ``KernelTable``; the table answers the questions every engine answers the
same way: which kernels there are, their state and info (a ``@ring_kernel`` registered
but never launched here is CREATED, to both), who to tell about a move, and when a
kernel has finished. Every move goes through the one transition table
(``ringctl.engine.lifecycle``) by ``KernelBook.move``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Generic, TypeVar

from ringctl.engine.contract import KernelInfo, StateListener
from ringctl.engine.ledger import KernelBook, missing_kernel
from ringctl.engine.lifecycle import RUNNING, Action, KernelState
from ringctl.exceptions import KernelNotFoundError, KernelStateError
from ringctl.kernel.ring import registered, registered_ids

if TYPE_CHECKING:
    from ringctl.kernel.ring import RingKernel

__all__ = ["KernelTable"]

K = TypeVar("K", bound=KernelBook)


class KernelTable(Generic[K]):
    """The records of one engine's kernels, in launch order, and who listens to them."""

    def __init__(self) -> None:
        self._kernels: dict[str, K] = {}
        self._listeners: list[StateListener] = []

    @property
    def kernel_ids(self) -> list[str]:
        """Every kernel this engine knows (launched, running or terminated), in launch order."""
        return list(self._kernels)

    @property
    def active_kernels(self) -> list[str]:
        return [k.id for k in self._kernels.values() if k.state is KernelState.ACTIVE]

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(kernel_id, old, new)`` on every state change (keep it quick)."""
        self._listeners.append(listener)

    def get_state(self, kernel_id: str) -> KernelState:
        """The kernel's state; a ``@ring_kernel`` never launched here is CREATED."""
        k = self._kernels.get(kernel_id)
        if k is not None:
            return k.state
        if registered(kernel_id) is not None:
            return KernelState.CREATED
        raise KernelNotFoundError(kernel_id, self._known_ids())

    def get_info(self, kernel_id: str) -> KernelInfo:
        k = self._kernels.get(kernel_id)
        if k is not None:
            return self._info(k)
        spec = registered(kernel_id)
        if spec is None:
            raise KernelNotFoundError(kernel_id, self._known_ids())
        return _created(kernel_id, spec)

    async def wait_finished(self, kernel_id: str, timeout: float | None = None) -> KernelInfo:
        """Wait until the kernel is TERMINATED (its body returned, failed or was stopped)."""
        k = self._require(kernel_id)
        await asyncio.wait_for(k.finished.wait(), timeout)
        return self.get_info(kernel_id)

    def _info(self, k: K) -> KernelInfo:
        """``get_info`` for a kernel this engine holds (each engine says what it knows)."""
        raise NotImplementedError

    def _add(self, k: K) -> None:
        """A launched kernel joins the table; listeners see it go CREATED -> LAUNCHED."""
        self._kernels[k.id] = k
        if k.state is KernelState.LAUNCHED:
            for listener in self._listeners:
                listener(k.id, KernelState.CREATED, KernelState.LAUNCHED)

    def _known_ids(self) -> list[str]:
        return sorted(set(self._kernels) | set(registered_ids()))

    def _require(self, kernel_id: str, action: str | None = None) -> K:
        k = self._kernels.get(kernel_id)
        if k is not None:
            return k
        raise missing_kernel(kernel_id, action, self._known_ids())

    def _require_running(self, kernel_id: str, action: str) -> K:
        """The kernel's record, if it is LAUNCHED, ACTIVE or DEACTIVATED (``restart`` and
        ``scale`` act on a running kernel only); else ``KernelStateError``."""
        k = self._require(kernel_id, action)
        if k.state not in RUNNING:
            raise KernelStateError(kernel_id, action, k.state, RUNNING)
        return k

    def _move(self, k: K, action: Action) -> None:
        k.move(action, self._listeners)


def _created(kernel_id: str, spec: RingKernel) -> KernelInfo:
    return KernelInfo(
        kernel_id, KernelState.CREATED, 1, spec.backend or "cpu", None, False, None, None, None,
        0, False,
    )  # fmt: skip
