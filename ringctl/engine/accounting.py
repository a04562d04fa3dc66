"""The accounting law: every message a queue accepted is delivered, dropped, lost, left or
in doubt.

For every queue into a kernel::

    accepted = delivered + dropped + lost + left + in_doubt + queued

- ``accepted``: handed to the queue by a producer (a ``reject`` refusal raises to the
  producer instead, so it is never accepted);
- ``delivered``: taken out by the consumer;
- ``dropped``: discarded by the queue's backpressure policy (``drop_oldest`` /
  ``drop_newest``), which the topology asked for;
- ``lost``: the consumer failed (past its restart policy) or ended on its own and will
  not run again: what was queued for it then, and whatever was sent to it afterwards;
- ``left``: still queued when the consumer was stopped on request (a forced stop, a
  drain that timed out);
- ``in_doubt``: held by a process that died (a Ray actor killed with -9) after its last
  report, where nobody can tell whether it was handled: counted neither delivered nor
  lost. An engine that always knows (the local one) never counts any;
- ``queued``: waiting now (zero at the end of a run: the supervisor closes every inbox).

Each term is counted where its event happens, so a path that discards a message without
counting it breaks the equation. This module is pure and synchronous: engines hand it
their counters, and the supervisor checks the result at the end of every run. A run is
*clean* when the equations hold and nothing was lost, left, in doubt or still queued.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Accounting", "KernelAccount", "QueueAccount", "build_accounting", "equation"]

_TERMS = ("accepted", "delivered", "dropped", "lost", "left", "in_doubt", "queued")


def equation(terms: Mapping[str, int]) -> str:
    """``accepted N = delivered N + dropped N + lost N + left N + queued N``, with
    ``in doubt N`` before ``queued`` when there is any.

    When the terms do not add up, it says so: ``accepted 600 != ... (= 564)``.
    """
    shown = [t for t in _TERMS[1:] if t != "in_doubt" or terms.get(t, 0)]
    rest = " + ".join(f"{t.replace('_', ' ')} {terms.get(t, 0)}" for t in shown)
    accepted = terms.get("accepted", 0)
    total = sum(terms.get(t, 0) for t in _TERMS[1:])
    if accepted == total:
        return f"accepted {accepted} = {rest}"
    return f"accepted {accepted} != {rest} (= {total})"


@dataclass(frozen=True, slots=True)
class QueueAccount:
    """The terms of one queue (an edge ``producer.port -> consumer``, or ``runtime.send``)."""

    name: str
    producer: str | None  # None: messages from outside (``runtime.send``)
    port: str | None
    consumer: str
    accepted: int
    delivered: int
    dropped: int
    lost: int
    left: int
    queued: int
    in_doubt: int = 0

    @property
    def balance(self) -> int:
        """``accepted`` minus the sum of the other terms: 0 when the law holds."""
        rest = self.delivered + self.dropped + self.lost + self.left + self.in_doubt
        return self.accepted - (rest + self.queued)

    @property
    def source(self) -> str:
        return f"{self.producer}.{self.port}" if self.producer else "(external)"

    def violation(self) -> str | None:
        if self.balance == 0:
            return None
        return f"queue {self.source} -> {self.consumer}: {equation(_terms(self))}"

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.source, "to": self.consumer, **_terms(self)}


@dataclass(frozen=True, slots=True)
class KernelAccount:
    """One kernel's inbox: the sums over the queues that feed it, plus its errors."""

    kernel_id: str
    accepted: int = 0
    delivered: int = 0
    dropped: int = 0
    lost: int = 0
    left: int = 0
    in_doubt: int = 0
    queued: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"kernel": self.kernel_id, **_terms(self), "errors": self.errors}


def _terms(account: QueueAccount | KernelAccount) -> dict[str, int]:
    return {t: getattr(account, t) for t in _TERMS}


@dataclass(frozen=True, slots=True)
class Accounting:
    """The law's terms for a whole run, per queue and per kernel, and what did not add up."""

    queues: tuple[QueueAccount, ...] = ()
    kernels: tuple[KernelAccount, ...] = ()
    violations: tuple[str, ...] = ()
    #: Losses an engine knows of but cannot put on one queue (a Ray actor that died).
    unattributed_lost: int = 0
    totals: Mapping[str, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.totals.get("lost", 0)

    @property
    def left(self) -> int:
        return self.totals.get("left", 0)

    @property
    def queued(self) -> int:
        return self.totals.get("queued", 0)

    @property
    def in_doubt(self) -> int:
        return self.totals.get("in_doubt", 0)

    @property
    def holds(self) -> bool:
        """Every equation adds up."""
        return not self.violations

    @property
    def clean(self) -> bool:
        """The law holds and no accepted message was lost, left, in doubt or still queued."""
        return self.holds and not (self.lost or self.left or self.in_doubt or self.queued)

    def summary(self) -> str:
        return equation(self.totals)

    def as_dict(self) -> dict[str, Any]:
        return {
            "holds": self.holds,
            "clean": self.clean,
            "totals": dict(self.totals),
            "violations": list(self.violations),
            "kernels": [k.as_dict() for k in self.kernels],
            "queues": [q.as_dict() for q in self.queues],
        }


def build_accounting(
    rows: Iterable[QueueAccount],
    *,
    errors: Mapping[str, int] | None = None,
    received: Mapping[str, int] | None = None,
    unattributed_lost: Mapping[str, int] | None = None,
) -> Accounting:
    """Sum the queue rows per kernel and overall, and check every equation.

    ``received`` (optional) is what each kernel's own receive calls counted; it must
    equal what its queues say they delivered, a second, independent check.
    ``unattributed_lost`` are per-kernel losses the engine could not place on a queue;
    they count as lost (the run is not clean) without breaking any equation.
    """
    queues = tuple(rows)
    errors = errors or {}
    extra = unattributed_lost or {}
    violations = [v for q in queues if (v := q.violation()) is not None]
    per_kernel: dict[str, dict[str, int]] = {}
    for q in queues:
        sums = per_kernel.setdefault(q.consumer, dict.fromkeys(_TERMS, 0))
        for term in _TERMS:
            sums[term] += getattr(q, term)
    for kernel_id in (*errors, *extra):
        per_kernel.setdefault(kernel_id, dict.fromkeys(_TERMS, 0))
    if received is not None:
        for kernel_id, count in received.items():
            delivered = per_kernel.get(kernel_id, {}).get("delivered", 0)
            if count != delivered:
                violations.append(
                    f"kernel {kernel_id}: its queues delivered {delivered} messages but it "
                    f"received {count}"
                )
    kernels = tuple(
        KernelAccount(
            kernel_id,
            **{t: v + (extra.get(kernel_id, 0) if t == "lost" else 0) for t, v in sums.items()},
            errors=errors.get(kernel_id, 0),
        )
        for kernel_id, sums in per_kernel.items()
    )
    totals = {t: sum(getattr(k, t) for k in kernels) for t in _TERMS}
    totals["errors"] = sum(k.errors for k in kernels)
    return Accounting(
        queues=queues,
        kernels=kernels,
        violations=tuple(violations),
        unattributed_lost=sum(extra.values()),
        totals=totals,
    )
