"""The engine contract: what the supervisor drives, whatever runs the kernels.

``RingKernelRuntime`` (one event loop, this process) and ``RayRuntime`` (Ray actors)
both implement ``Engine``; mypy checks the seam, and ``tests/engines/test_contract.py``
runs one behavioural suite against each. What an engine cannot do is declared in its
``capabilities`` and refused by ``require`` with a message naming the engine and the
action, never discovered by probing the object. ``ringctl.engine.make_engine`` picks
one by name.

The types an engine hands back (``KernelInfo``, ``TerminationReport`` and the frozen
snapshots) live here too, so nothing has to import one engine to speak to another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from ringctl.exceptions import UserInputError

if TYPE_CHECKING:
    from ringctl.engine.accounting import Accounting
    from ringctl.engine.lifecycle import KernelState
    from ringctl.engine.local.ports import Tap
    from ringctl.kernel.ring import RingKernel

__all__ = ["ENGINES", "Capability", "Engine", "KernelInfo", "KernelSnapshot", "QueueSnapshot",
           "RuntimeSnapshot", "StateListener", "TerminationReport", "Wire", "require"]  # fmt: skip

#: ``listener(kernel_id, old, new)``: called on every state change (keep it quick).
StateListener = Callable[[str, "KernelState", "KernelState"], None]

#: The engines a topology may name (``engine:`` / ``--engine``).
ENGINES = ("local", "ray")

#: What an engine may do to a running kernel beyond the lifecycle every engine has.
#: ``reconfigure``: new code or params for a kernel's next restart; ``rewire``: queues
#: connected, disconnected and retuned while producers run (both for ``ringctl apply``).
Capability = Literal["restart", "scale", "tap", "reconfigure", "rewire"]
#: One queue as ``rewire`` connects it: producer, port, consumer, capacity (None: the
#: consumer's queue size), backpressure, fanout.
Wire = tuple[str, str, str, "int | None", str, "str | None"]


def require(engine: Engine, action: Capability) -> None:
    """Refuse ``action`` where ``engine`` does not declare it (``UserInputError``, naming both)."""
    if action not in engine.capabilities:
        raise UserInputError(
            f"{action} is not supported with engine: {engine.name} yet",
            hint="run the topology with engine: local to use it",
        )


@dataclass(frozen=True, slots=True)
class KernelInfo:
    """``get_state``'s companion: the state plus why the kernel is where it is."""

    kernel_id: str
    state: KernelState
    replicas: int
    backend: str
    device: str | None
    completed: bool  # the body returned on its own (a finite source)
    error: str | None  # "TypeError: ..." when the body raised
    exception: BaseException | None
    traceback: str | None
    restarts: int
    forced: bool  # a terminate timed out and the body was cancelled


@dataclass(frozen=True, slots=True)
class TerminationReport:
    """What ``terminate`` did: nothing that was still queued goes unreported."""

    kernel_id: str
    graceful: bool  # the body returned within the timeout
    forced: bool  # it had to be cancelled
    left_in_inbox: int  # messages still queued for it, now discarded and counted
    abandoned: int = 0  # tasks that swallowed cancellation and could not be stopped
    error: str | None = None


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    """One queue edge ``producer.port -> consumer`` (or a kernel's external in/out queue)."""

    name: str
    producer: str | None  # None: runtime.send() from outside
    port: str | None
    consumer: str | None  # None: an output port with no edge, read by runtime.receive()
    depth: int
    capacity: int
    backpressure: str
    messages: int  # accepted into the queue, ever
    drops: int  # dropped by the backpressure policy
    high_water: int
    blocked_s: float  # total time producers spent waiting for space
    delivered: int = 0  # taken out by the consumer
    lost: int = 0  # the consumer failed or ended and will not run again
    left: int = 0  # still queued when the consumer was stopped on request
    in_doubt: int = 0  # held by a consumer process that died: handled or not, unknown

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": f"{self.producer}.{self.port}" if self.producer else "(external)",
            "to": self.consumer or "(output)",
            **{key: getattr(self, key) for key in _QUEUE_KEYS},
            "blocked_s": round(self.blocked_s, 6),
        }


_QUEUE_KEYS: Final = ("name", "depth", "capacity", "backpressure", "messages", "drops",
                      "delivered", "lost", "left", "in_doubt", "high_water")  # fmt: skip


@dataclass(frozen=True, slots=True)
class KernelSnapshot:
    """A kernel (all its replicas together) at one instant."""

    id: str
    state: str
    backend: str
    device: str | None
    replicas: int
    messages_in: int
    messages_out: int
    errors: int
    drops: int  # dropped by a backpressure policy on the way into this kernel's inbox
    inbox_depth: int
    inbox_capacity: int
    inbox_high_water: int
    latency_p50_us: float | None
    latency_p99_us: float | None
    rate_in: float
    rate_out: float
    restarts: int
    last_error: str | None
    completed: bool  # the body returned on its own (a finite source)
    waiting: int  # replicas waiting in receive with nothing to read
    blocked: int  # replicas waiting for space on a full downstream queue
    last_progress_s: float  # seconds since the kernel last received or sent
    entry: str | None = None
    node: str | None = None  # the host / Ray node it runs on
    backend_note: str | None = None  # e.g. "auto: no usable GPU, on cpu"
    metrics: dict[str, Any] = field(default_factory=dict)  # what the kernel put in ctx.metrics
    lost: int = 0  # queued for it (or sent to it) after it failed for good
    left: int = 0  # queued for it when it was stopped on request
    in_doubt: int = 0  # held by a process of it that died: handled or not, unknown

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RuntimeSnapshot:
    """Every kernel and queue of one runtime, taken at ``taken_at`` (monotonic seconds)."""

    taken_at: float
    kernels: tuple[KernelSnapshot, ...]
    queues: tuple[QueueSnapshot, ...]
    quiescent: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def kernel(self, kernel_id: str) -> KernelSnapshot:
        for k in self.kernels:
            if k.id == kernel_id:
                return k
        raise KeyError(kernel_id)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kernels": [k.as_dict() for k in self.kernels],
            "queues": [q.as_dict() for q in self.queues],
            "quiescent": self.quiescent,
        }


class Engine(Protocol):
    """Launch, wire, drive, observe and account for ring kernels."""

    @property
    def name(self) -> str:
        """The name a topology gives it (``engine: local``), used in what it refuses."""
        ...

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What it can do beyond the lifecycle (``require`` refuses the rest)."""
        ...

    @property
    def kernel_ids(self) -> list[str]: ...

    @property
    def refused(self) -> list[str]:
        """Kernels that would not stop (a task swallowed cancellation)."""
        ...

    def add_listener(self, listener: StateListener) -> None: ...

    def get_state(self, kernel_id: str) -> KernelState: ...

    def get_info(self, kernel_id: str) -> KernelInfo: ...

    async def wait_finished(self, kernel_id: str, timeout: float | None = None) -> KernelInfo: ...

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

    # Capabilities: ``require`` refuses one an engine lacks, before its method is called.
    async def restart(self, kernel_id: str, timeout: float = 5.0) -> TerminationReport: ...

    async def scale(self, kernel_id: str, replicas: int, timeout: float = 5.0) -> int: ...

    def tap(self, kernel_id: str, port: str = "out", capacity: int = 256) -> Tap: ...

    def untap(self, kernel_id: str, port: str, tap: Tap) -> None: ...

    def reconfigure(
        self, kernel_id: str, func: RingKernel, *, params: Any, queue_size: int | None,
        keep_state: bool = True,
    ) -> None: ...  # fmt: skip

    async def rewire(
        self, connect: Sequence[Wire] = (), disconnect: Sequence[tuple[str, str, str]] = ()
    ) -> None: ...

    async def retune(
        self, producer: str, port: str, consumer: str, *, capacity: int | None,
        backpressure: str, fanout: str | None,
    ) -> None: ...  # fmt: skip

    def inflight(self, kernel_id: str) -> int:
        """Messages queued for the kernel plus producers waiting to add theirs."""
        ...

    def remove(self, kernel_id: str) -> None:
        """Forget a TERMINATED kernel so that its id can be launched anew."""
        ...

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
