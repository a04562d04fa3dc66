"""The engine contract: what the supervisor drives, whatever runs the kernels.

``RingKernelRuntime`` (one event loop, this process) and ``RayRuntime`` (Ray actors)
both implement ``Engine``; mypy checks the seam, and ``tests/engines/test_contract.py``
runs one behavioural suite against each. ``make_engine`` picks one by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ringctl.engine.accounting import Accounting
    from ringctl.engine.lifecycle import KernelState
    from ringctl.engine.local.engine import KernelInfo, TerminationReport
    from ringctl.engine.telemetry import RuntimeSnapshot

__all__ = ["ENGINES", "Engine", "StateListener", "make_engine"]

StateListener = Callable[[str, "KernelState", "KernelState"], None]

#: The engines a topology may name (``engine:`` / ``--engine``).
ENGINES = ("local", "ray")


class Engine(Protocol):
    """Launch, wire, drive, observe and account for ring kernels."""

    @property
    def kernel_ids(self) -> list[str]: ...

    @property
    def refused(self) -> list[str]:
        """Kernels that would not stop (a task swallowed cancellation)."""
        ...

    def add_listener(self, listener: StateListener) -> None: ...

    def get_state(self, kernel_id: str) -> KernelState: ...

    def get_info(self, kernel_id: str) -> KernelInfo: ...

    async def launch(
        self,
        kernel_id: str,
        func: object | None = None,
        *,
        params: Any = None,
        replicas: int = 1,
        queue_size: int | None = None,
        backend: str | None = None,
        device: int | None = None,
        entry: str | None = None,
        resources: dict[str, float] | None = None,
    ) -> None: ...

    def connect(
        self,
        producer: str,
        consumer: str,
        *,
        port: str = "out",
        capacity: int | None = None,
        backpressure: str = "block",
        fanout: str | None = None,
    ) -> None: ...

    async def activate(self, kernel_id: str) -> None: ...

    async def deactivate(self, kernel_id: str) -> None: ...

    async def reactivate(self, kernel_id: str) -> None: ...

    async def terminate(self, kernel_id: str, timeout: float = 5.0) -> TerminationReport: ...

    async def terminate_all(self, timeout: float = 10.0) -> list[TerminationReport]: ...

    def stop_now(self) -> None:
        """Ask every running kernel to stop after the message in hand, taking nothing more
        from its inbox. Safe from any thread, whatever holds the event loop: a forced stop
        calls it so that a kernel blocking the loop cannot keep the run going."""
        ...

    async def relaunch(self, kernel_id: str) -> None: ...

    async def send(self, kernel_id: str, msg: Any) -> None: ...

    async def send_batch(self, kernel_id: str, msgs: Iterable[Any]) -> None: ...

    async def receive(
        self, kernel_id: str, timeout: float | None = None, *, port: str = "out"
    ) -> Any: ...

    async def receive_batch(
        self,
        kernel_id: str,
        max_items: int = 1024,
        timeout: float | None = None,
        *,
        port: str = "out",
    ) -> list[Any]: ...

    def is_idle(self, kernel_id: str) -> bool: ...

    def is_quiescent(self, kernel_ids: Sequence[str] | None = None) -> bool: ...

    def queued(self, kernel_id: str) -> int: ...

    def close_inbox(self, kernel_id: str, reason: str = "lost") -> int: ...

    def snapshot(self) -> RuntimeSnapshot: ...

    def accounting(self) -> Accounting: ...

    async def close(self) -> None: ...


def make_engine(name: str, *, address: str | None = None) -> Engine:
    """A new, empty engine of the kind a topology names (``local`` or ``ray``);
    ``address`` is the Ray cluster to join (None: start a local Ray)."""
    if name == "local":
        from ringctl.engine.local.engine import RingKernelRuntime

        return RingKernelRuntime()
    if name == "ray":
        from ringctl.engine.ray.engine import RayRuntime

        return RayRuntime(address=address)
    from ringctl.exceptions import UserInputError

    raise UserInputError(f"unknown engine {name!r}", hint=f"use one of: {', '.join(ENGINES)}")
