"""The supervisor's policy, driven synchronously with a fake clock: no event loop, no sleep."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from ringctl.orchestrator.plan import RestartPolicy
from ringctl.orchestrator.policy import (
    Activated,
    CloseInbox,
    DownFacts,
    DrainTimedOut,
    Event,
    ForceNow,
    Instruction,
    KernelEnded,
    LaunchStopped,
    LoopBlocked,
    Note,
    Policy,
    RestartAt,
    Restarted,
    RestartFailed,
    StopRequested,
    StopRun,
    Tick,
)

ON_FAILURE = RestartPolicy("on-failure", max_restarts=3, backoff=0.5, max_backoff=2.0,
                           reset_after=10.0)  # fmt: skip


def policy(**rules: RestartPolicy) -> Policy:
    return Policy(rules or {"sink": ON_FAILURE, "source": RestartPolicy()}, started=0.0)


def test_a_failure_is_restarted_after_the_backoff_which_doubles_up_to_its_cap() -> None:
    p = policy()
    delays = []
    for n in range(3):
        out = p.handle(KernelEnded("sink", n, "ValueError: x"), now=100.0 + n)
        (restart,) = [i for i in out if isinstance(i, RestartAt)]
        delays.append(restart.delay)
        assert restart.at == 100.0 + n + restart.delay
        assert p.restart_due == {"sink": restart.at}
        p.handle(Restarted("sink"), now=100.0 + n)
    assert delays == [0.5, 1.0, 2.0]
    out = p.handle(KernelEnded("sink", 3, "ValueError: x"), now=104.0)
    assert out == [
        Note(
            "failure", "kernel 'sink' failed: ValueError: x (after 3 restarts, max_restarts is 3)"
        ),
        StopRun("failed"),
        CloseInbox("sink"),
    ]
    assert p.result(DownFacts(graceful=True)).exit_code == 1


def test_a_healthy_run_resets_the_backoff() -> None:
    p = policy()
    p.handle(KernelEnded("sink", 0, "E"), now=1.0)
    p.handle(Restarted("sink"), now=1.5)
    p.handle(KernelEnded("sink", 1, "E"), now=2.0)  # 0.5 s after: a streak, 1 s
    p.handle(Restarted("sink"), now=3.0)
    out = p.handle(KernelEnded("sink", 2, "E"), now=13.0)  # ran 10 s: the streak is over
    assert [i.delay for i in out if isinstance(i, RestartAt)] == [0.5]


def test_one_instance_is_decided_on_once() -> None:
    p = policy()
    first = p.handle(KernelEnded("sink", 0, "E"), now=1.0)
    assert any(isinstance(i, RestartAt) for i in first)
    assert p.handle(KernelEnded("sink", 0, "E"), now=1.1) == []  # reported again: nothing


def test_a_kernel_stopped_on_request_is_not_restarted_nor_a_failure() -> None:
    p = policy()
    assert p.handle(KernelEnded("sink", 0, None, completed=False), now=1.0) == []
    assert p.failure is None


def test_a_kernel_that_leaves_the_process_fails_like_any_other() -> None:
    p = policy(sink=RestartPolicy())
    out = p.handle(KernelEnded("sink", 0, "SystemExit: 0"), now=1.0)
    assert Note("failure", "kernel 'sink' failed: SystemExit: 0") in out
    verdict = p.result(DownFacts(graceful=True, unprocessed=200, summary="..."))
    assert (verdict.outcome, verdict.exit_code) == ("failed", 1)
    assert verdict.failure == "kernel 'sink' failed: SystemExit: 0"


def test_completion_needs_the_sources_done_and_two_quiet_looks() -> None:
    p = policy()
    assert p.handle(Tick(sources_done=True, quiescent=True), now=1.0) == []
    assert p.handle(Tick(sources_done=True, quiescent=False), now=1.1) == []
    assert p.handle(Tick(sources_done=True, quiescent=True), now=1.2) == []
    assert p.handle(Tick(sources_done=True, quiescent=True), now=1.3) == [StopRun("completed")]
    assert p.result(DownFacts(graceful=True)) == p.result(DownFacts(graceful=True))
    assert p.result(DownFacts(graceful=True)).exit_code == 0


def test_a_pending_restart_holds_completion_back() -> None:
    p = policy()
    p.handle(KernelEnded("sink", 0, "E"), now=1.0)
    for t in range(5):
        assert p.handle(Tick(sources_done=True, quiescent=True), now=2.0 + t) == []


def test_a_second_interrupt_forces_and_the_verdict_names_the_blocking_kernel() -> None:
    p = policy()
    assert p.handle(StopRequested("interrupted"), now=1.0) == [StopRun("interrupted")]
    assert p.handle(StopRequested("interrupted", force=True), now=2.0) == [ForceNow()]
    p.handle(LoopBlocked("loop blocked 2.0 s in kernel `slow`"), now=3.0)
    verdict = p.result(DownFacts(graceful=False, messages_left=3))
    assert (verdict.outcome, verdict.exit_code) == ("stopped", 1)
    assert verdict.failure == "force-stopped on request; loop blocked 2.0 s in kernel `slow`"


def test_a_drain_that_timed_out_exits_1() -> None:
    p = policy()
    p.handle(StopRequested("down requested"), now=1.0)
    p.handle(DrainTimedOut(), now=4.0)
    verdict = p.result(DownFacts(graceful=False, messages_left=2))
    assert (verdict.outcome, verdict.exit_code, verdict.failure) == (
        "stopped", 1, "the drain timed out",
    )  # fmt: skip


def test_a_stop_during_the_launch_is_a_stopped_run() -> None:
    p = policy()
    p.handle(StopRequested("down requested"), now=1.0)
    p.handle(LaunchStopped(("sink",)), now=1.0)
    verdict = p.result(DownFacts(graceful=True))
    assert (verdict.outcome, verdict.exit_code) == ("stopped", 0)
    assert verdict.reason == "down requested (stopped during launch)"
    ctrl_c = policy()
    ctrl_c.handle(StopRequested("interrupted"), now=1.0)
    ctrl_c.handle(LaunchStopped(()), now=1.0)
    verdict = ctrl_c.result(DownFacts(graceful=True))
    assert (verdict.outcome, verdict.exit_code) == ("interrupted", 130)
    assert verdict.reason == "interrupted (stopped during launch)"


def test_an_interrupted_clean_run_exits_130_and_a_broken_law_exits_1() -> None:
    p = policy()
    p.handle(StopRequested("interrupted"), now=1.0)
    assert p.result(DownFacts(graceful=True)).exit_code == 130
    broken = p.result(DownFacts(graceful=True, law_holds=False, violations=("q: 1 != 2",)))
    assert (broken.exit_code, broken.failure) == (
        1, "the accounting law does not hold (a ringctl bug): q: 1 != 2",
    )  # fmt: skip


# -- any sequence of events ------------------------------------------------------------

KERNELS = ("source", "sink")
RULES = {
    "source": RestartPolicy("always", max_restarts=2, backoff=0.1, max_backoff=0.4),
    "sink": RestartPolicy("on-failure", max_restarts=3, backoff=0.5, max_backoff=1.0,
                          reset_after=5.0),
}  # fmt: skip


@dataclass
class FakeRun:
    """A run as the supervisor would carry it out, on a fake clock."""

    policy: Policy = field(default_factory=lambda: Policy(RULES, started=0.0))
    now: float = 0.0
    instance: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KERNELS, 0))
    restarts: list[RestartAt] = field(default_factory=list)
    seen: list[Instruction] = field(default_factory=list)
    stopped: bool = False

    def apply(self, event: Event) -> None:
        for step in self.policy.handle(event, self.now):
            self.seen.append(step)
            if isinstance(step, RestartAt):
                assert step.at >= self.now
                self.restarts.append(step)
            elif isinstance(step, StopRun | ForceNow):
                self.stopped = True


kernel = st.sampled_from(KERNELS)
events = st.lists(
    st.one_of(
        st.tuples(st.just("fail"), kernel, st.sampled_from(["ValueError: x", "SystemExit: 0"])),
        st.tuples(st.just("return"), kernel, st.none()),
        st.tuples(st.just("restart_due"), kernel, st.none()),
        st.tuples(st.just("restart_failed"), kernel, st.none()),
        st.tuples(st.just("tick"), st.booleans(), st.booleans()),
        st.tuples(st.just("stop"), st.booleans(), st.none()),
        st.tuples(st.just("blocked"), kernel, st.none()),
        st.tuples(st.just("wait"), st.floats(0.0, 20.0), st.none()),
    ),
    max_size=40,
)
facts = st.builds(
    DownFacts,
    graceful=st.booleans(),
    messages_left=st.integers(0, 5),
    law_holds=st.booleans(),
    unprocessed=st.integers(0, 5),
    in_doubt=st.integers(0, 2),
)


def drive(run: FakeRun, steps: list[tuple[str, object, object]]) -> None:
    for what, a, b in steps:
        if what == "fail" or what == "return":
            k = str(a)
            if k in run.policy.restart_due:
                continue  # not running: it cannot end
            run.apply(KernelEnded(k, run.instance[k], b if what == "fail" else None,
                                  completed=what == "return"))  # fmt: skip
        elif what == "restart_due":
            k = str(a)
            if k in run.policy.restart_due:
                run.now = max(run.now, run.policy.restart_due[k])
                run.instance[k] += 1
                run.apply(Restarted(k))
                run.apply(Activated(k))
        elif what == "restart_failed":
            if a in run.policy.restart_due:
                run.apply(RestartFailed(str(a), "KernelLaunchError: no"))
        elif what == "tick":
            run.apply(Tick(bool(a), bool(b)))
        elif what == "stop":
            run.apply(StopRequested("interrupted", force=bool(a)))
        elif what == "blocked":
            run.apply(LoopBlocked(f"loop blocked 2.0 s in kernel `{a}`"))
        elif what == "wait":
            run.now += float(a)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(events, facts)
def test_any_sequence_ends_and_its_exit_code_agrees_with_the_accounting(
    steps: list[tuple[str, object, object]], down: DownFacts
) -> None:
    run = FakeRun()
    drive(run, steps)
    # Every run ends: whatever came before, a stop request is the last word.
    run.apply(StopRequested("down requested"))
    assert run.policy.stopping
    run.policy.restart_due.clear()  # the down cancels restarts that did not happen
    verdict = run.policy.result(down)
    # Exit 0 only when nothing was lost or left, no kernel failed and the law holds.
    clean = down.graceful and down.law_holds and not down.unprocessed and not down.in_doubt
    if verdict.exit_code in (0, 130):
        assert clean and run.policy.failure is None
        assert verdict.failure is None
    else:
        assert verdict.exit_code == 1 and verdict.failure
    if not clean or run.policy.failure is not None:
        assert verdict.exit_code == 1
    # Restarts obey the policy: at most max_restarts, each after its backoff.
    for k in KERNELS:
        mine = [r for r in run.restarts if r.kernel == k]
        assert len(mine) <= RULES[k].max_restarts
        for r in mine:
            assert RULES[k].backoff <= r.delay <= RULES[k].max_backoff


@given(events)
def test_a_kernel_closed_for_good_is_never_restarted_after(
    steps: list[tuple[str, object, object]],
) -> None:
    run = FakeRun()
    drive(run, steps)
    closed: set[str] = set()
    for step in run.seen:
        assert isinstance(step, Note | RestartAt | CloseInbox | StopRun | ForceNow)
        if isinstance(step, CloseInbox):
            closed.add(step.kernel)
        if isinstance(step, RestartAt):
            assert step.kernel not in closed
