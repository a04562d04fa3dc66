"""The launch plan: what the supervisor needs of a topology, as plain frozen data.

The supervisor works on a ``Plan`` rather than on the pydantic topology models, so it
can be driven from a file (``loading.plan_from_file``) or built by hand in a test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ringctl.kernel.ring import RingKernel

__all__ = ["EdgePlan", "KernelPlan", "Plan", "RestartPolicy"]

RestartKind = Literal["never", "on-failure", "always"]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """What to do when a kernel's body ends: ``never`` restart, or on failure, or ``always``.

    Exponential backoff with a cap, reset after a healthy period (as systemd and
    Erlang/OTP supervisors do): the first restart waits ``backoff`` seconds, each further
    failure in a row doubles the wait up to ``max_backoff``, and an instance that ran
    ``reset_after`` seconds before it failed starts the sequence again. ``max_restarts``
    counts every restart of the run.
    """

    policy: RestartKind = "never"
    max_restarts: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    reset_after: float = 60.0

    def delay(self, streak: int) -> float:
        """The wait before a restart after ``streak`` earlier failures in a row."""
        return float(min(self.max_backoff, self.backoff * (2 ** min(streak, 62))))


@dataclass(frozen=True, slots=True)
class KernelPlan:
    id: str
    kernel: RingKernel
    params: Any = None
    replicas: int = 1
    backend: str = "cpu"
    queue_size: int | None = None
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    entry: str | None = None
    resources: Mapping[str, float] = field(default_factory=dict)
    #: Whether ``ctx.state`` survives a restart that ``ringctl apply`` makes to change
    #: this kernel's params or entry (the file's ``keep_state``).
    keep_state: bool = True
    #: The file's ``persistent:`` block as plain data (None: an ordinary kernel).
    persistent: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class EdgePlan:
    producer: str
    consumer: str
    port: str = "out"
    capacity: int | None = None
    backpressure: str = "block"
    fanout: str | None = None
    feedback: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """Kernels in launch order (dependencies first, consumers before producers)."""

    name: str
    kernels: Sequence[KernelPlan]
    edges: Sequence[EdgePlan] = ()
    file: str | None = None
    engine: str = "local"
    description: str = ""
    #: The file's ``smoke:`` block (``ringctl smoke``), or None.
    smoke: Any = None
    #: Each kernel by id (built once: a status of thousands of kernels looks each up).
    _by_id: dict[str, KernelPlan] = field(init=False, repr=False, compare=False)
    #: The roles of its kernels, worked out once (the supervisor asks every tick).
    _roles: dict[str, list[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {k.id: k for k in self.kernels})
        object.__setattr__(self, "_roles", {})

    @property
    def order(self) -> list[str]:
        return list(self._by_id)

    @property
    def sources(self) -> list[str]:
        """The kernels that originate work (``ringctl.topology.roles``): a drain stops
        them first, and a run completes once they have finished and every queue drained."""
        if "sources" not in self._roles:
            from ringctl.topology.roles import source_ids

            self._roles["sources"] = source_ids(self.order, self._wiring())
        return list(self._roles["sources"])

    @property
    def stop_first(self) -> list[str]:
        """What ``down`` stops before it waits for the queues to drain: every kernel no
        queue feeds (the sources, and kernels with no queue at all)."""
        if "stop_first" not in self._roles:
            from ringctl.topology.roles import unfed_ids

            self._roles["stop_first"] = unfed_ids(self.order, self._wiring())
        return list(self._roles["stop_first"])

    def _wiring(self) -> list[tuple[str, str, bool]]:
        return [(e.producer, e.consumer, e.feedback) for e in self.edges]

    def kernel(self, kernel_id: str) -> KernelPlan:
        return self._by_id[kernel_id]

    def __contains__(self, kernel_id: object) -> bool:
        return kernel_id in self._by_id
