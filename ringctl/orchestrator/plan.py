"""The launch plan: what the supervisor needs of a topology, as plain frozen data.

The supervisor works on a ``Plan`` rather than on the pydantic topology models, so it
can be driven from a file (``plan_from_topology``) or built by hand in a test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ringctl.runtime.kernel import RingKernel

__all__ = ["EdgePlan", "KernelPlan", "Plan", "RestartPolicy"]

RestartKind = Literal["never", "on-failure", "always"]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """What to do when a kernel's body ends: ``never`` restart, or on failure, or ``always``.

    The n-th restart waits ``backoff * 2**(n-1)`` seconds (capped at 30 s) first.
    """

    policy: RestartKind = "never"
    max_restarts: int = 3
    backoff: float = 0.5

    def delay(self, restarts_so_far: int) -> float:
        return float(min(30.0, self.backoff * (2**restarts_so_far)))


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


@dataclass(frozen=True, slots=True)
class EdgePlan:
    producer: str
    consumer: str
    port: str = "out"
    capacity: int | None = None
    backpressure: str = "block"
    fanout: str | None = None


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

    @property
    def order(self) -> list[str]:
        return [k.id for k in self.kernels]

    @property
    def sources(self) -> list[str]:
        """Kernels with no inbound queue: the ones a drain stops first."""
        fed = {e.consumer for e in self.edges}
        return [k.id for k in self.kernels if k.id not in fed]

    def kernel(self, kernel_id: str) -> KernelPlan:
        for k in self.kernels:
            if k.id == kernel_id:
                return k
        raise KeyError(kernel_id)
