"""The status document: what ``ringctl ps NAME --json`` prints, ``watch`` streams, the
dashboard draws and the metrics endpoint exports, defined once.

The supervisor writes it (``Supervisor.status()``, plain JSON-ready dicts, because it is
rebuilt up to twenty times a second on the kernels' own loop); these models are its one
definition: field names, types and meaning. ``StatusDocument.check(doc)`` validates a
document against them (the tests run it on every document a real run produces, so the
writer cannot drift from the definition). Readers (``ps``, the dashboard, the
metrics endpoint) go through ``ringctl.dashboard.parse_status``, which tolerates
documents from older or newer supervisors: add fields, never rename them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AccountingDoc",
    "AppliedDoc",
    "DownDoc",
    "EventDoc",
    "KernelDoc",
    "LastBlockDoc",
    "LoopDoc",
    "PhaseDoc",
    "QueueDoc",
    "StatusDocument",
]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventDoc(_Doc):
    t: float = Field(description="Seconds since the supervisor started.")
    kind: str = Field(description="info, pause, resume, restart, failure, ...")
    text: str


class WaitingDoc(_Doc):
    kernel: str
    queued: int
    seconds_left: float


class PhaseDoc(_Doc):
    name: Literal["launch", "activate", "drain"]
    done: int
    total: int
    waiting_on: list[WaitingDoc] = Field(default_factory=list)
    elapsed_s: float | None = None


class KernelDoc(_Doc):
    id: str
    state: str = Field(description="The lifecycle state: CREATED ... TERMINATED.")
    backend: str
    device: str | None
    replicas: int
    messages_in: int
    messages_out: int
    errors: int
    drops: int = Field(description="Dropped by a backpressure policy on the way in.")
    lost: int = Field(0, description="Queued for it, or sent to it, after it failed for good.")
    left: int = Field(0, description="Queued for it when it was stopped on request.")
    in_doubt: int = Field(
        0, description="Held by a process of it that died: handled or not, nobody can tell."
    )
    inbox_depth: int
    inbox_capacity: int
    inbox_high_water: int
    latency_p50_us: float | None
    latency_p99_us: float | None
    rate_in: float
    rate_out: float
    restarts: int
    restart_in_s: float | None = Field(
        None, description="Seconds until its pending restart (it waits out a backoff)."
    )
    last_error: str | None
    completed: bool = Field(description="Its body returned on its own (a finite source).")
    waiting: int = Field(description="Replicas waiting in receive with nothing to read.")
    blocked: int = Field(description="Replicas waiting for room on a full downstream queue.")
    last_progress_s: float
    entry: str | None = None
    node: str | None = None
    backend_note: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict, description="Its ctx.metrics.")


class QueueDoc(_Doc):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str = Field(alias="from", description="producer.port, or (external)")
    to: str
    name: str
    depth: int
    capacity: int
    backpressure: str
    messages: int = Field(description="Accepted, ever.")
    delivered: int = 0
    drops: int
    lost: int = 0
    left: int = 0
    in_doubt: int = 0
    high_water: int
    blocked_s: float


class DownDoc(_Doc):
    graceful: bool
    seconds: float
    messages_left: int
    left: dict[str, int]
    forced: list[str]
    refused: list[str] = Field(default_factory=list)


class AccountTermsDoc(_Doc):
    accepted: int
    delivered: int
    dropped: int
    lost: int
    left: int
    in_doubt: int = 0
    queued: int


class KernelAccountDoc(AccountTermsDoc):
    kernel: str
    errors: int


class QueueAccountDoc(AccountTermsDoc):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str = Field(alias="from")
    to: str


class AccountingDoc(_Doc):
    holds: bool = Field(description="Every queue's terms add up.")
    clean: bool = Field(
        description="It holds and nothing was lost, left, in doubt or still queued."
    )
    totals: dict[str, int]
    violations: list[str]
    kernels: list[KernelAccountDoc]
    queues: list[QueueAccountDoc]


class LastBlockDoc(_Doc):
    message: str = Field(description="e.g. loop blocked 3.0 s in kernel `slow`.")
    seconds: float
    ago_s: float = Field(description="Seconds since the block ended.")


class LoopDoc(_Doc):
    """The loop watchdog's view of the kernels' event loop (added by the control server)."""

    status: Literal["ok", "blocked"]
    lag_s: float = Field(description="How late the loop is right now.")
    blocks: int = Field(description="Blocks seen so far.")
    holder: str | None = Field(None, description="While blocked: what holds the loop.")
    blocked_s: float | None = None
    message: str | None = Field(None, description="While blocked: the block in words.")
    last_block: LastBlockDoc | None = None


class AppliedDoc(_Doc):
    """The last ``ringctl apply`` that changed the topology."""

    file: str
    at: float = Field(description="Unix time it was applied.")
    done: list[str] = Field(description="Each change made, as the plan printed it.")
    left: dict[str, int] = Field(description="Messages removed kernels left, per kernel.")
    seconds: float


class StatusDocument(_Doc):
    name: str
    file: str | None
    engine: str
    pid: int
    uptime_s: float
    state: str = Field(description="The topology's state: created, starting, running, ...")
    phase: PhaseDoc | None
    failure: str | None
    events: list[EventDoc]
    timings: dict[str, float]
    kernels: list[KernelDoc]
    queues: list[QueueDoc]
    quiescent: bool
    down: DownDoc | None = None
    accounting: AccountingDoc | None = None
    loop: LoopDoc | None = Field(None, description="Present in documents sent over the socket.")
    stale_s: float | None = Field(
        None,
        description="Set when the kernels' loop did not answer in time: the age of the "
        "kernel figures (the state, uptime and loop are current).",
    )
    applied: AppliedDoc | None = Field(
        None, description="The last `ringctl apply` (null: as `up` started it)."
    )
    drift: list[str] = Field(
        default_factory=list,
        description="How the running kernels differ from their file (a `scale` since, "
        "or the file edited since it was applied).",
    )

    @classmethod
    def check(cls, doc: dict[str, Any]) -> StatusDocument:
        """Validate a document the supervisor wrote (raises pydantic's ValidationError)."""
        return cls.model_validate(doc)
