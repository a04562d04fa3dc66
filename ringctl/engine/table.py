"""The kernel table every engine builds on: records, lookups, listeners and waiting.

An engine keeps one ``KernelBook`` per kernel (its own subclass, with what it needs to
run it) in a ``KernelTable``; the table answers the questions every engine answers the
same way: which kernels there are, their state and info (a ``@ring_kernel`` registered
but never launched here is CREATED, to both), who to tell about a move, and when a
kernel has finished. It checks what ``launch``, ``activate`` / ``deactivate`` /
``reactivate`` and ``scale`` are asked for; each engine only says how its replicas obey
(``_obey``, ``_rescale``). Every move goes through the one transition table
(``ringctl.engine.lifecycle``) by ``KernelBook.move``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final, Generic, Self, TypeVar

from ringctl.engine.contract import Capability, KernelInfo, StateListener
from ringctl.engine.ledger import KernelBook, LaunchArgs, check_launch, missing_kernel
from ringctl.engine.lifecycle import RUNNING, Action, KernelState, next_state
from ringctl.exceptions import (
    KernelLaunchError,
    KernelNotFoundError,
    KernelStateError,
    UserInputError,
)
from ringctl.kernel.ring import RingKernel, as_kernel, registered, registered_ids

__all__ = ["KernelTable"]

K = TypeVar("K", bound=KernelBook)


class KernelTable(Generic[K]):
    """The records of one engine's kernels, in launch order, and who listens to them."""

    capabilities: Final[frozenset[Capability]] = frozenset(
        {"restart", "scale", "tap", "reconfigure", "rewire"}
    )

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

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> object:
        """Terminate every kernel (each engine its own way)."""
        raise NotImplementedError

    async def activate(self, kernel_id: str) -> None:
        """Start the kernel's body (every replica)."""
        await self._act(kernel_id, "activate")

    async def deactivate(self, kernel_id: str) -> None:
        """Pause: from the moment this returns the kernel receives nothing until reactivated."""
        await self._act(kernel_id, "deactivate")

    async def reactivate(self, kernel_id: str) -> None:
        """Resume a paused kernel; what queued meanwhile is processed in order."""
        await self._act(kernel_id, "reactivate")

    async def _act(self, kernel_id: str, action: Action) -> None:
        k = self._require(kernel_id, action)
        next_state(k.id, k.state, action)  # refuse before the engine does anything
        await self._obey(k, action)  # raises: the state stays as it was
        self._move(k, action)

    async def _obey(self, k: K, action: Action) -> None:
        """Have the kernel's replicas start, pause or resume (each engine its own way)."""
        raise NotImplementedError

    async def scale(self, kernel_id: str, replicas: int, timeout: float = 5.0) -> int:
        """Run ``replicas`` instances of a running kernel from now on; returns how many ran.

        New replicas run the kernel's set-up hook first (a kernel that cannot run as
        several refuses there, and nothing changes), then share its queues. A replica
        that leaves is asked to stop after the message in hand, as on ``terminate``; what
        is queued stays for the others, so no message is lost or taken twice. Its
        counters stay in the kernel's totals.
        """
        k = self._require_running(kernel_id, "scale")
        if replicas < 1:
            raise UserInputError(f"replicas must be at least 1, got {replicas}")
        old = k.replicas
        if replicas != old:
            await self._rescale(k, replicas, timeout)
        return old

    async def _rescale(self, k: K, replicas: int, timeout: float) -> None:
        raise NotImplementedError

    def _info(self, k: K) -> KernelInfo:
        """``get_info`` for a kernel this engine holds (each engine says what it knows)."""
        raise NotImplementedError

    def _launching(
        self, kernel_id: str, func: object | None, *, replicas: int, queue_size: int | None,
        params: Any,
    ) -> tuple[RingKernel, LaunchArgs]:  # fmt: skip
        """The kernel ``launch`` is asked for (by id: a ``@ring_kernel``) and its checked
        arguments; else the error: already launched, unknown, not a kernel, bad arguments."""
        existing = self._kernels.get(kernel_id)
        if existing is not None:
            next_state(kernel_id, existing.state, "launch")  # raises: already launched
        if func is None:
            spec = registered(kernel_id)
            if spec is None:
                raise KernelNotFoundError(kernel_id, self._known_ids())
        else:
            try:
                spec = as_kernel(func, kernel_id)
            except TypeError as exc:
                raise KernelLaunchError(kernel_id, str(exc)) from exc
        args = check_launch(
            kernel_id, spec, replicas=replicas, queue_size=queue_size, params=params
        )
        return spec, args

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
