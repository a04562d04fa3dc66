"""The supervisor's decisions, in one pure place: events in, instructions out.

``Policy.handle(event, now)`` takes what happened (a kernel ended, a stop was asked
for, the drain timed out, the loop was blocked ...) and the clock, updates the policy's
state and returns what the supervisor must do (restart kernel K at time T, count what
is queued for it as lost, stop the run, stop every kernel now). ``Policy.result`` turns
the state and what the down found into the run's outcome and exit code. Nothing here
waits, reads a clock or touches an engine: the supervisor is the only code that waits,
and it only carries the instructions out. Tests drive this module with a fake clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ringctl.orchestrator.plan import RestartPolicy

__all__ = [
    "Activated",
    "CloseInbox",
    "DownFacts",
    "DrainTimedOut",
    "Event",
    "ForceNow",
    "Instruction",
    "KernelEnded",
    "LaunchStopped",
    "LoopBlocked",
    "Note",
    "Outcome",
    "Policy",
    "RestartAt",
    "RestartFailed",
    "RestartStarted",
    "Restarted",
    "StopRequested",
    "StopRun",
    "Tick",
    "Verdict",
]

Outcome = Literal["completed", "stopped", "failed", "interrupted"]

# -- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Activated:
    """A kernel instance became active (its healthy time starts now)."""

    kernel: str


@dataclass(frozen=True, slots=True)
class KernelEnded:
    """A kernel instance terminated. ``instance`` (its restarts so far) makes the event
    idempotent: one instance is decided on once, however often it is reported."""

    kernel: str
    instance: int
    error: str | None = None
    completed: bool = False  # the body returned on its own (not on request)


@dataclass(frozen=True, slots=True)
class RestartStarted:
    """A restart (on request, or a backoff that ran out) is under way."""

    kernel: str


@dataclass(frozen=True, slots=True)
class Restarted:
    """The kernel's new instance runs."""

    kernel: str


@dataclass(frozen=True, slots=True)
class RestartFailed:
    kernel: str
    error: str


@dataclass(frozen=True, slots=True)
class StopRequested:
    """A signal, a ``down`` or ``--duration``: the run goes down (``force``: at once)."""

    reason: str
    force: bool = False


@dataclass(frozen=True, slots=True)
class Tick:
    """The supervisor looked: are the sources done and the engine quiet?"""

    sources_done: bool
    quiescent: bool


@dataclass(frozen=True, slots=True)
class DrainTimedOut:
    """The down's deadline passed before the queues were empty."""


@dataclass(frozen=True, slots=True)
class LaunchStopped:
    """A stop came while the topology was still launching: what ran was rolled back."""

    launched: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LoopBlocked:
    """The watchdog saw the kernels' loop held (``text`` names who held it)."""

    text: str


Event = (
    Activated | KernelEnded | RestartStarted | Restarted | RestartFailed | StopRequested
    | Tick | DrainTimedOut | LaunchStopped | LoopBlocked
)  # fmt: skip

# -- instructions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Note:
    """Record an event (``ringctl ps`` shows the last ones)."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class RestartAt:
    """Relaunch ``kernel`` at monotonic time ``at`` (``delay`` seconds from now)."""

    kernel: str
    at: float
    delay: float


@dataclass(frozen=True, slots=True)
class CloseInbox:
    """The kernel will not run again: what is queued for it, and what is sent to it from
    now on, is lost (counted)."""

    kernel: str


@dataclass(frozen=True, slots=True)
class StopRun:
    """Leave the watch loop and go down."""

    reason: str


@dataclass(frozen=True, slots=True)
class ForceNow:
    """Stop every kernel after the message in hand, without waiting for a drain."""


Instruction = Note | RestartAt | CloseInbox | StopRun | ForceNow

# -- the run's end ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DownFacts:
    """What the down found, in the terms the verdict needs."""

    graceful: bool
    messages_left: int = 0
    refused: tuple[str, ...] = ()
    law_holds: bool = True
    violations: tuple[str, ...] = ()
    #: Accepted messages neither delivered nor dropped by policy (lost + left + queued).
    unprocessed: int = 0
    #: Held by a process that died: whether they were handled cannot be known.
    in_doubt: int = 0
    summary: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    exit_code: int
    reason: str
    failure: str | None


@dataclass(slots=True)
class Policy:
    """The state of every decision about one run (see the module docstring)."""

    rules: Mapping[str, RestartPolicy]
    started: float
    stop_reason: str | None = None
    force: bool = False
    drain_timed_out: bool = False
    failure: str | None = None
    launch_stopped: bool = False
    #: kernel -> monotonic time its pending restart is due (a restart on request: now).
    restart_due: dict[str, float] = field(default_factory=dict)
    streak: dict[str, int] = field(default_factory=dict)  # failures in a row
    since: dict[str, float] = field(default_factory=dict)  # when the instance went active
    handled: dict[str, int] = field(default_factory=dict)  # the instance decided on
    paused: set[str] = field(default_factory=set)  # by command (a restart keeps them so)
    blocked: list[str] = field(default_factory=list)  # what the watchdog said, in order
    quiet_ticks: int = 0

    @property
    def stopping(self) -> bool:
        return self.stop_reason is not None

    def handle(self, event: Event, now: float) -> list[Instruction]:
        match event:
            case Activated(kernel):
                self.since[kernel] = now
                return []
            case KernelEnded():
                return self._ended(event, now)
            case RestartStarted(kernel):
                self.restart_due.setdefault(kernel, now)
                return []
            case Restarted(kernel):
                self.restart_due.pop(kernel, None)
                self.since[kernel] = now
                return []
            case RestartFailed(kernel, error):
                self.restart_due.pop(kernel, None)
                return self._fail(f"restart of {kernel!r} failed: {error}")
            case StopRequested(reason, force):
                return self._stop(reason, force)
            case Tick(sources_done, quiescent):
                return self._tick(sources_done, quiescent)
            case DrainTimedOut():
                self.drain_timed_out = True
                return []
            case LaunchStopped(launched):
                self.launch_stopped = True
                undone = ", ".join(launched) if launched else "nothing was launched yet"
                return [Note("info", f"stopped during launch; rolled back ({undone})")]
            case LoopBlocked(text):
                self.blocked.append(text)
                return [Note("failure", text)]
        raise AssertionError(f"unknown event {event!r}")  # pragma: no cover

    # -- decisions -----------------------------------------------------------------------

    def _ended(self, e: KernelEnded, now: float) -> list[Instruction]:
        if e.kernel in self.restart_due or self.handled.get(e.kernel) == e.instance:
            return []
        self.handled[e.kernel] = e.instance
        if e.error is None and not e.completed:
            return []  # terminated on request
        rule = self.rules[e.kernel]
        wants = rule.policy == "always" or (rule.policy == "on-failure" and e.error is not None)
        if wants and e.instance < rule.max_restarts:
            ran_for = now - self.since.get(e.kernel, self.started)
            streak = 0 if ran_for >= rule.reset_after else self.streak.get(e.kernel, 0)
            self.streak[e.kernel] = streak + 1
            delay = rule.delay(streak)
            self.restart_due[e.kernel] = now + delay
            why = f"failed ({e.error})" if e.error is not None else "returned"
            text = f"{e.kernel} {why}; restart {e.instance + 1} in {delay:g}s"
            return [Note("restart", text), RestartAt(e.kernel, now + delay, delay)]
        out: list[Instruction]
        if e.error is None:
            out = [Note("info", f"{e.kernel} completed")]
        else:
            failure = f"kernel {e.kernel!r} failed: {e.error}"
            if rule.policy != "never":
                plural = "s" if e.instance != 1 else ""
                failure += (
                    f" (after {e.instance} restart{plural}, max_restarts is {rule.max_restarts})"
                )
            out = self._fail(failure)
        # It will not run again: nothing may block on it or wait for it forever.
        out.append(CloseInbox(e.kernel))
        return out

    def _fail(self, failure: str) -> list[Instruction]:
        self.failure = failure
        out: list[Instruction] = [Note("failure", failure)]
        if self.stop_reason is None:
            self.stop_reason = "failed"
            out.append(StopRun("failed"))
        return out

    def _stop(self, reason: str, force: bool) -> list[Instruction]:
        out: list[Instruction] = []
        if self.stop_reason is None:
            self.stop_reason = reason
            out.append(StopRun(reason))
        if force and not self.force:
            self.force = True
            out.append(ForceNow())
        return out

    def _tick(self, sources_done: bool, quiescent: bool) -> list[Instruction]:
        if self.stopping:
            return []
        if not sources_done or self.restart_due:
            self.quiet_ticks = 0
            return []
        self.quiet_ticks = self.quiet_ticks + 1 if quiescent else 0
        if self.quiet_ticks >= 2:  # seen quiet twice, a tick apart
            self.stop_reason = "completed"
            return [StopRun("completed")]
        return []

    # -- the verdict ---------------------------------------------------------------------

    def result(self, down: DownFacts | None) -> Verdict:
        """The run's outcome and exit code: 0 only when nothing was lost or left."""
        reason = self.stop_reason or "stopped"
        if self.failure is not None:
            return Verdict("failed", 1, reason, self.failure)
        if down is not None and not down.law_holds:
            why = "the accounting law does not hold (a ringctl bug): " + "; ".join(down.violations)
            return Verdict("failed", 1, reason, why)
        if down is not None and not down.graceful:
            if self.force:
                why = "force-stopped on request"
            elif self.drain_timed_out:
                why = "the drain timed out"
            else:
                why = f"{down.messages_left} messages were left unprocessed"
            if down.refused:
                why += f"; kernel(s) that refused to stop: {', '.join(down.refused)}"
            if self.blocked:
                why += f"; {self.blocked[-1]}"
            return Verdict("stopped", 1, reason, why)
        if down is not None and (down.unprocessed or down.in_doubt):
            parts = []
            if down.unprocessed:
                parts.append(f"{down.unprocessed} accepted messages were not processed")
            if down.in_doubt:
                parts.append(
                    f"{down.in_doubt} accepted messages are in doubt (held by a process that "
                    "died: whether they were handled cannot be known)"
                )
            return Verdict("failed", 1, reason, f"{'; '.join(parts)} ({down.summary})")
        if reason == "completed":
            return Verdict("completed", 0, reason, None)
        if self.launch_stopped:
            reason += " (stopped during launch)"
        if self.stop_reason == "interrupted":
            return Verdict("interrupted", 130, reason, None)
        return Verdict("stopped", 0, reason, None)
