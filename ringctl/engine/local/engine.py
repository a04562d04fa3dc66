"""``RingKernelRuntime``: launches, wires, drives and observes ring kernels in one event loop.

The lifecycle is described in ``docs/concepts.md``; every move goes through
``lifecycle.next_state``. The runtime owns every task it creates: each kernel's
body tasks live in its record and are awaited (or force-stopped) by ``terminate``; the
async context manager terminates everything on the way out, errors included.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from ringctl.engine.accounting import Accounting, QueueAccount, build_accounting
from ringctl.engine.contract import (
    KernelInfo,
    KernelSnapshot,
    QueueSnapshot,
    RuntimeSnapshot,
    TerminationReport,
    Wire,
)
from ringctl.engine.ledger import KernelBook, check_launch, check_tap
from ringctl.engine.lifecycle import RUNNING, Action, KernelState, next_state
from ringctl.engine.local import output
from ringctl.engine.local.backends import (
    BackendChoice,
    cuda_available,
    cuda_checked,
    resolve_backend,
)
from ringctl.engine.local.deadlines import Deadlines
from ringctl.engine.local.ports import TAP_CAPACITY, Fanout, OutPort, Tap
from ringctl.engine.local.queues import (
    EMPTY,
    Inbox,
    Queue,
    _wake_first,
    running_loop,
)
from ringctl.engine.table import KernelTable
from ringctl.engine.telemetry import LatencySampler, merge_metrics
from ringctl.exceptions import (
    KernelFailedError,
    KernelLaunchError,
    KernelStateError,
    UserInputError,
)
from ringctl.kernel.context import KernelContext, _woken, running_bodies
from ringctl.kernel.ring import RingKernel, as_kernel

__all__ = ["RingKernelRuntime"]

log = logging.getLogger("ringctl.runtime")

S = KernelState
#: After a terminate timeout, how long cancellation is retried before a task is abandoned.
FORCE_STOP_GRACE_S: Final = 1.0
#: How often the runtime's own timer feeds the rate windows.
RATE_SAMPLE_S: Final = 0.25


@dataclass(eq=False, kw_only=True)
class _Kernel(KernelBook):
    """The runtime's record of one kernel (all its replicas), on the shared ledger."""

    spec: RingKernel
    params: Any
    choice: BackendChoice
    inbox: Inbox
    ports: dict[str, OutPort]
    queue_size: int  # the inbox capacity for runtime.send, and each unwired port's
    external: Queue | None = None  # created on the first runtime.send
    entry: str | None = None
    ctxs: list[KernelContext] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    store: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None
    error_tb: str | None = None
    errors: int = 0  # crashes, summed over restarts
    refused: bool = False  # a task swallowed cancellation and was abandoned
    # Counters of earlier instances (before a restart), so totals survive restarts.
    base_in: int = 0
    base_out: int = 0
    base_errors: int = 0
    latency: LatencySampler = field(default_factory=LatencySampler)


class RingKernelRuntime(KernelTable[_Kernel]):
    """Runs ring kernels: ``launch`` → ``activate`` ⇄ ``deactivate``/``reactivate`` → ``terminate``.

    Use it as ``async with RingKernelRuntime() as runtime:``; leaving the block terminates
    every kernel (within ``shutdown_timeout`` each), even when the block raised.
    """

    name: Final = "local"

    def __init__(self, *, shutdown_timeout: float = 5.0) -> None:
        super().__init__()
        self._edges: list[Queue] = []
        self._abandoned: set[asyncio.Task[Any]] = set()
        self._sampler: asyncio.Task[None] | None = None
        self._deadlines = Deadlines()
        #: The external queue of each running kernel that ``send`` has fed: its hot path
        #: is one lookup (a kernel leaves this when it leaves the running states).
        self._feeds: dict[str, Queue] = {}
        #: The ports ``receive`` read, by kernel id (port ``out``) or (kernel id, port), so
        #: that a read is one lookup; a kernel's leave with it (``remove``).
        self._readers: dict[str | tuple[str, str], OutPort] = {}
        self.shutdown_timeout = shutdown_timeout

    async def close(self) -> None:
        """Terminate every kernel and make sure no task of theirs is left running.

        A body that swallows cancellation cannot be stopped from inside its loop: its
        task is cancelled once more, then detached from the loop's task registry, so
        that ``asyncio.run()`` returns instead of waiting for it forever (the loop then
        closes and the task never runs again). ``refused`` names such kernels.
        """
        await self.terminate_all(timeout=self.shutdown_timeout)
        if self._abandoned:
            for task in self._abandoned:
                task.cancel()
            await asyncio.wait(self._abandoned, timeout=FORCE_STOP_GRACE_S)
            self._abandoned = {t for t in self._abandoned if not t.done()}
            for task in self._abandoned:
                asyncio.tasks._unregister_task(task)

    @property
    def refused(self) -> list[str]:
        """Kernels with a task that swallowed cancellation and had to be abandoned."""
        return [k.id for k in self._kernels.values() if k.refused]

    def _info(self, k: _Kernel) -> KernelInfo:
        return KernelInfo(
            kernel_id=k.id,
            state=k.state,
            replicas=k.replicas,
            backend=k.choice.backend,
            device=k.choice.device_label,
            completed=k.completed,
            error=_describe(k.error),
            exception=k.error,
            traceback=k.error_tb,
            restarts=k.restarts,
            forced=k.forced,
        )

    # -- phase 1: launch -----------------------------------------------------------------

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
    ) -> None:
        """Allocate the kernel's queues and contexts and run its set-up hook (phase 1).

        ``resources`` (num_cpus, num_gpus, custom) place actors on the Ray engine; one
        event loop has nothing to place, so it is accepted and ignored here.

        The body does not start until ``activate``. A failure here (bad params, a
        backend that is not usable, a set-up hook that raises) leaves nothing behind and
        raises ``KernelLaunchError``.
        """
        spec, args = self._launching(
            kernel_id, func, replicas=replicas, queue_size=queue_size, params=params
        )
        requested = backend or spec.backend or "cpu"
        if requested != "cpu" and not cuda_checked():
            # Importing CuPy to see whether a GPU is usable takes about a second: on a
            # thread, not on the loop the running kernels share (the answer is cached).
            await asyncio.to_thread(cuda_available)
            if kernel_id in self._kernels:  # launched meanwhile by another caller
                next_state(kernel_id, self._kernels[kernel_id].state, "launch")
        choice = resolve_backend(kernel_id, requested, device)

        k = _Kernel(
            id=kernel_id,
            spec=spec,
            params=args.params,
            replicas=args.replicas,
            choice=choice,
            inbox=Inbox(kernel_id),
            ports={},
            queue_size=args.queue_size,
            entry=entry or spec.qualified_name,
        )
        k.ctxs = self._make_contexts(k)
        await self._run_setup(k)  # raises KernelLaunchError; nothing was registered yet
        self._add(k)

    def _make_contexts(self, k: _Kernel, first: int = 0, replicas: int = 0) -> list[KernelContext]:
        """Contexts for replicas ``first`` .. ``replicas - 1`` (default: all of them)."""
        factory = functools.partial(self._port, k)
        for name in k.spec.ports or ():
            self._port(k, name)
        return [
            KernelContext(
                k.id,
                inbox=k.inbox,
                ports=k.ports,
                port_factory=factory,
                params=k.params,
                replica=r,
                replicas=replicas or k.replicas,
                backend=k.choice.backend,
                device=k.choice.device,
                state=k.store,
            )
            for r in range(first, replicas or k.replicas)
        ]

    async def _run_setup(self, k: _Kernel) -> None:
        setup = k.spec.setup
        if setup is None:
            return
        task = asyncio.current_task()
        task_name = task.get_name() if task is not None else ""
        for ctx in k.ctxs:
            try:
                if task is not None:
                    # A hook that holds the loop (a JIT compile, say) is named by the
                    # loop watchdog after this task: name the kernel, not the caller.
                    task.set_name(f"ringctl:{k.id}[{ctx.replica}] set-up")
                with output.kernel_scope(k.id, ctx.replica):
                    result = setup(ctx)
                    if asyncio.iscoroutine(result):
                        await result
            except KernelLaunchError as exc:
                # Already explained by the kernel's control (a persistent kernel's compile
                # error at the author's line): said as it is, without ringctl's own frames.
                output.emit(k.id, ctx.replica, "traceback", str(exc))
                raise
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # SystemExit from a hook fails the launch too
                tb = "".join(traceback.format_exception(exc))
                output.emit(k.id, ctx.replica, "traceback", tb)
                log.error("kernel %r: set-up hook failed:\n%s", k.id, tb)
                where = _where(exc)
                raise KernelLaunchError(
                    k.id,
                    f"its set-up hook raised {type(exc).__name__}: {exc}"
                    + (f" (at {where})" if where else ""),
                    hint="the kernel was not launched; fix the set-up hook or its params",
                ) from exc
            finally:
                if task is not None:
                    task.set_name(task_name)

    def _port(self, k: _Kernel, name: str) -> OutPort:
        port = k.ports.get(name)
        if port is None:
            declared = k.spec.ports
            if declared is not None and name not in declared:
                raise UserInputError(
                    f"kernel {k.id!r} has no output port {name!r} "
                    f"(it declares: {', '.join(declared) or 'none, it sends nothing'})",
                    hint="send on a declared port, or add it to @ring_kernel(ports=...)",
                )
            port = OutPort(k.id, name, k.queue_size)
            k.ports[name] = port
        return port

    def connect(
        self,
        producer: str,
        consumer: str,
        *,
        port: str = "out",
        capacity: int | None = None,
        backpressure: str = "block",
        fanout: str | None = None,
    ) -> None:
        """Wire ``producer.port`` to ``consumer``'s inbox with a new bounded queue.

        Both kernels must be launched and the producer not yet activated: wiring is
        phase-1 work, so it never depends on the order kernels start in.
        """
        p = self._require(producer, "connect")
        c = self._require(consumer, "connect")
        if p.state is not S.LAUNCHED:
            raise KernelStateError(
                producer, "connect", p.state, (S.LAUNCHED,),
                hint="wire queues after launch() and before activate()",
            )  # fmt: skip
        if c.state not in RUNNING:
            raise KernelStateError(consumer, "connect", c.state, RUNNING)
        self._wire(p, port, c, capacity, backpressure, fanout)

    def _wire(
        self, p: _Kernel, port: str, c: _Kernel, capacity: int | None, backpressure: str,
        fanout: str | None,
    ) -> None:  # fmt: skip
        """A new bounded queue from ``p.port`` into ``c``'s inbox (its size by default)."""
        out = self._port(p, port)
        if any(q.consumer == c.id for q in out.targets):
            raise UserInputError(f"queue {p.id}.{port} -> {c.id} is already wired")
        queue = Queue(
            f"{p.id}.{port} -> {c.id}", c.inbox,
            capacity if capacity is not None else c.queue_size, backpressure,
            producer=p.id, port=port, consumer=c.id,
        )  # fmt: skip
        out.connect(queue, _fanout(fanout))
        self._edges.append(queue)

    # -- phase 2 and the ACTIVE ⇄ DEACTIVATED loop ---------------------------------------

    async def _obey(self, k: _Kernel, action: Action) -> None:
        """The control's hook first (persistent work obeys before the state moves), then
        the replicas' flags; ``activate`` starts one task per replica."""
        if k.spec.control is not None:
            await k.spec.control.obey(action)
        for ctx in k.ctxs:
            ctx.is_active = action != "deactivate"
            ctx._wake()
        if action == "activate":
            if self._sampler is None:
                self._sampler = asyncio.get_running_loop().create_task(
                    self._sample_forever(), name="ringctl-rate-sampler"
                )
            self._start_bodies(k, k.ctxs)

    def _start_bodies(self, k: _Kernel, ctxs: list[KernelContext]) -> None:
        loop = asyncio.get_running_loop()
        for ctx in ctxs:
            task = loop.create_task(self._run_body(k, ctx), name=f"ringctl:{k.id}[{ctx.replica}]")
            task.add_done_callback(functools.partial(self._body_done, k, ctx))
            k.tasks.append(task)

    async def _run_body(self, k: _Kernel, ctx: KernelContext) -> Any:
        # This task's prints and logs are this replica's; a coroutine it never awaited
        # (``ctx.send(m)`` without ``await``) counts as one of its errors.
        output.mark(k.id, ctx.replica, ctx.record_error)
        if k.choice.backend == "cuda":
            import cupy

            cupy.cuda.Device(k.choice.device or 0).use()
        running_bodies(1)
        try:
            return await k.spec.func(ctx)
        except asyncio.CancelledError:
            raise
        except (SystemExit, KeyboardInterrupt, GeneratorExit) as exc:
            # Out of a task these would end the event loop, the run with it, unreported:
            # they are this kernel failing, like any exception.
            raise _KernelLeft(exc) from exc
        finally:
            running_bodies(-1)

    def _body_done(self, k: _Kernel, ctx: KernelContext, task: asyncio.Task[Any]) -> None:
        if task not in k.tasks:
            return  # a task from before a relaunch
        if not task.cancelled():
            exc = task.exception()
            if isinstance(exc, _KernelLeft):
                exc = exc.left
            # A receive that raised TimeoutError because termination was requested is how
            # a loop without a timeout ends: a clean exit, not a failure.
            if exc is not None and not (isinstance(exc, TimeoutError) and ctx.should_terminate):
                self._record_failure(k, exc, ctx.replica)
        if all(t.done() for t in k.tasks):
            self._finish(k)

    def _record_failure(self, k: _Kernel, exc: BaseException, replica: int = 0) -> None:
        k.errors += 1
        if k.error is None:
            k.error = exc
            k.error_tb = "".join(traceback.format_exception(exc))
            log.error("kernel %r failed:\n%s", k.id, k.error_tb)
            output.emit(k.id, replica, "traceback", k.error_tb)
        if k.state in RUNNING:
            # The other replicas stop too: a kernel fails as a whole.
            self._move(k, "terminate")
            for sibling in k.ctxs:
                sibling.should_terminate = True
                sibling._wake()

    def _finish(self, k: _Kernel) -> None:
        if k.state is S.TERMINATED:
            return
        cancelled = any(t.cancelled() for t in k.tasks)
        k.completed = k.error is None and not k.terminating and not cancelled
        self._move(k, "finish")
        for port in k.ports.values():
            port.output_inbox.wake_all()  # a runtime.receive waiting on it must look again

    # -- termination ---------------------------------------------------------------------

    async def terminate(self, kernel_id: str, timeout: float = 5.0) -> TerminationReport:
        """Ask the kernel to stop; wait up to ``timeout``; then cancel it.

        Returns within about ``timeout + FORCE_STOP_GRACE_S`` even if the body swallows
        cancellation. What was still queued for it is counted in the report.
        """
        k = self._require(kernel_id, "terminate")
        self._move(k, "terminate")
        k.terminating = True
        left_outside = 0
        if k.spec.control is not None:
            # The outside work stops first (forced after the timeout), then the body.
            left_outside, k.forced = await k.spec.control.terminate(timeout)
        forced, abandoned = await self._stop(k, k.ctxs, k.tasks, timeout)
        k.forced = k.forced or forced
        self._finish(k)
        return TerminationReport(
            kernel_id=k.id,
            graceful=not k.forced,
            forced=k.forced,
            left_in_inbox=k.inbox.close("left") + left_outside,
            abandoned=abandoned,
            error=_describe(k.error),
        )

    def stop_now(self) -> None:
        """Every running kernel stops after the message in hand; safe from any thread.

        Plain flag writes only: a kernel that holds the loop (``time.sleep`` in an async
        body) sees them at its next receive, which then takes nothing more, so what is
        queued stays queued (a down counts it as left) instead of being worked through.
        """
        for k in list(self._kernels.values()):
            if k.state not in RUNNING or k.spec.control is not None:
                continue  # persistent kernels stop in their worker (terminate kills it)
            k.terminating = True
            for ctx in list(k.ctxs):
                ctx.should_terminate = True
                ctx.is_active = False

    async def _stop(
        self, k: _Kernel, ctxs: list[KernelContext], tasks: list[asyncio.Task[Any]], timeout: float
    ) -> tuple[bool, int]:
        """Ask replicas to stop after the message in hand, wait up to ``timeout``, then
        cancel them: (whether any had to be cancelled, how many refused and were abandoned)."""
        for ctx in ctxs:
            ctx.should_terminate = True
            ctx._wake()
        pending = {t for t in tasks if not t.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=max(0.0, timeout))
        return (True, await self._force_stop(k, pending)) if pending else (False, 0)

    async def _force_stop(self, k: _Kernel, pending: set[asyncio.Task[Any]]) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FORCE_STOP_GRACE_S
        while pending:
            for task in pending:
                task.cancel()
            left = deadline - loop.time()
            if left <= 0:
                break
            _, pending = await asyncio.wait(pending, timeout=min(0.05, left))
        if pending:
            log.error(
                "kernel %r refused to stop: %d task(s) swallowed cancellation and were abandoned",
                k.id,
                len(pending),
            )
            k.refused = True
            self._abandoned |= pending
        return len(pending)

    async def terminate_all(self, timeout: float = 10.0) -> list[TerminationReport]:
        """Terminate every running kernel concurrently; wait for any already terminating."""
        running = [k.id for k in self._kernels.values() if k.state in RUNNING]

        async def stop(kid: str) -> TerminationReport | None:
            if self._kernels[kid].state not in RUNNING:
                return None  # it finished on its own meanwhile
            return await self.terminate(kid, timeout)

        reports = [r for r in await asyncio.gather(*map(stop, running)) if r is not None]
        stopping = [k for k in self._kernels.values() if k.state is S.TERMINATING]
        if stopping:
            # Failing kernels whose siblings are still finishing: give them the same time.
            waits = [asyncio.create_task(k.finished.wait()) for k in stopping]
            _, late = await asyncio.wait(waits, timeout=timeout)
            for w in late:
                w.cancel()
            for k in stopping:
                pending = {t for t in k.tasks if not t.done()}
                if pending:
                    k.forced = True
                    await self._force_stop(k, pending)
                self._finish(k)
        await self._stop_sampler()
        return reports

    async def _stop_sampler(self) -> None:
        """Nothing runs any more: the rate timer stops too (``activate`` starts it again)."""
        if self._sampler is None or any(
            k.state in (*RUNNING, S.TERMINATING) for k in self._kernels.values()
        ):
            return
        self._sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sampler
        self._sampler = None

    async def relaunch(self, kernel_id: str) -> None:
        """Give a TERMINATED kernel a new instance that keeps its inbox and wiring.

        This is what a restart policy uses: messages queued for the failed instance
        are processed by the new one; ``ctx.state`` carries over.
        """
        k = self._require(kernel_id, "relaunch")
        self._move(k, "relaunch")
        k.base_in += sum(c.messages_in for c in k.ctxs)
        k.base_out += sum(c.messages_out for c in k.ctxs)
        k.base_errors += sum(c.errors for c in k.ctxs)
        for ctx in k.ctxs:
            k.latency._samples.extend(ctx._latency._samples)
        for q in k.inbox.queues:
            q.reopen()
        k.restarted()
        k.error, k.error_tb = None, None
        k.tasks = []
        before = [ctx.metrics for ctx in k.ctxs]
        k.ctxs = self._make_contexts(k)
        for ctx, metrics in zip(k.ctxs, before, strict=False):
            ctx.metrics.update(metrics)  # the new instance goes on from the last figures
        try:
            await self._run_setup(k)
        except KernelLaunchError as exc:
            k.error = exc
            self._move(k, "finish")
            raise

    async def restart(self, kernel_id: str, timeout: float = 5.0) -> TerminationReport:
        """Stop a running kernel and start a new instance that keeps its inbox and state.

        The body is asked to stop as ``terminate`` asks (it finishes the message in
        hand), force-stopped after ``timeout``; nothing queued for it is discarded: the
        new instance (``relaunch``, counted as a restart) reads it. A paused kernel
        comes back paused.
        """
        k = self._require_running(kernel_id, "restart")
        was = k.state
        self._move(k, "terminate")
        k.terminating = True
        if k.spec.control is not None:
            # The outside work stops first (forced after the timeout); the new instance's
            # set-up hook starts it again on what it kept.
            k.forced = await k.spec.control.stop_for_restart(timeout)
        stopped, abandoned = await self._stop(k, k.ctxs, k.tasks, timeout)
        forced = k.forced = k.forced or stopped
        self._finish(k)
        await self.relaunch(kernel_id)
        if was is not S.LAUNCHED:
            await self.activate(kernel_id)
            if was is S.DEACTIVATED:
                await self.deactivate(kernel_id)
        return TerminationReport(
            kernel_id, graceful=not forced, forced=forced, left_in_inbox=0, abandoned=abandoned
        )

    async def _rescale(self, k: _Kernel, replicas: int, timeout: float) -> None:
        """New replicas share the inbox, so what is queued is spread over them."""
        if replicas > k.replicas:
            await self._add_replicas(k, replicas)
        else:
            await self._remove_replicas(k, replicas, timeout)

    async def _add_replicas(self, k: _Kernel, replicas: int) -> None:
        old = k.replicas
        fresh = self._make_contexts(k, old, replicas)
        setup = k.spec.setup
        if setup is not None:
            for ctx in fresh:
                try:
                    with output.kernel_scope(k.id, ctx.replica):
                        result = setup(ctx)
                        if asyncio.iscoroutine(result):
                            await result
                except Exception as exc:
                    where = _where(exc)
                    raise UserInputError(
                        f"kernel {k.id!r} refuses {replicas} replicas: its set-up hook raised "
                        f"{type(exc).__name__}: {exc}" + (f" (at {where})" if where else ""),
                        hint=f"it keeps running as {old}",
                    ) from exc
        for ctx in k.ctxs:
            ctx.replicas = replicas
        k.replicas = replicas
        k.ctxs.extend(fresh)
        if k.state is S.LAUNCHED:
            return
        for ctx in fresh:
            ctx.is_active = k.state is S.ACTIVE
        self._start_bodies(k, fresh)

    async def _remove_replicas(self, k: _Kernel, replicas: int, timeout: float) -> None:
        leaving = k.ctxs[replicas:]
        tasks = k.tasks[replicas:]
        # Out of the kernel's record first: their ends are neither its failure nor its end.
        del k.ctxs[replicas:]
        del k.tasks[replicas:]
        k.replicas = replicas
        for ctx in k.ctxs:
            ctx.replicas = replicas
        await self._stop(k, leaving, tasks, timeout)
        for ctx, task in zip(leaving, tasks, strict=False):
            k.base_in += ctx.messages_in
            k.base_out += ctx.messages_out
            k.base_errors += ctx.errors
            k.latency._samples.extend(ctx._latency._samples)
            exc = task.exception() if task.done() and not task.cancelled() else None
            if exc is not None and not isinstance(exc, TimeoutError):
                k.errors += 1
                output.emit(k.id, ctx.replica, "traceback", "".join(
                    traceback.format_exception(exc)))  # fmt: skip
        if k.state is S.TERMINATING and all(t.done() for t in k.tasks):
            self._finish(k)

    # -- live changes (``ringctl apply``) ------------------------------------------------

    def reconfigure(
        self,
        kernel_id: str,
        func: RingKernel,
        *,
        params: Any,
        queue_size: int | None,
        keep_state: bool = True,
    ) -> None:
        """Give the kernel's next instance (``restart``) new code, params or inbox size.

        Checked first: bad params raise ``KernelLaunchError`` and nothing changes. With
        ``keep_state`` false the next instance starts with an empty ``ctx.state``. A
        persistent kernel's params go to its loop, whose state array the restart makes
        anew from them.
        """
        k = self._require(kernel_id, "restart")
        spec = as_kernel(func, kernel_id)
        args = check_launch(
            kernel_id, spec, replicas=k.replicas, queue_size=queue_size, params=params
        )
        set_params = getattr(spec.control, "set_params", None)
        if set_params is not None:
            try:
                set_params(args.params)
            except ValueError as exc:
                raise KernelLaunchError(kernel_id, str(exc)) from exc
        k.spec, k.params, k.queue_size = spec, args.params, args.queue_size
        if not keep_state:
            k.store = {}

    async def rewire(
        self,
        connect: Sequence[Wire] = (),
        disconnect: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        """Connect ``(producer, port, consumer, capacity, backpressure, fanout)`` queues and
        disconnect ``(producer, port, consumer)`` ones in one step, producers running.

        Nothing is awaited, so each message a producer sends goes either
        where it went before or where it goes now: never both, never nowhere. A
        disconnected queue stays in its consumer's inbox until the consumer has taken
        what it holds (it is no longer listed among the topology's queues).
        """
        for producer, _port, consumer, *_ in connect:
            self._require_running(producer, "connect")
            self._require_running(consumer, "connect")
        dropping = set(disconnect)
        for producer, port, consumer in disconnect:
            k = self._require(producer)
            out = k.ports.get(port)
            if out is None or not any(q.consumer == consumer for q in out.targets):
                raise UserInputError(f"queue {producer}.{port} -> {consumer} is not wired")
        for producer, port, _consumer in disconnect:
            out = self._kernels[producer].ports[port]
            out.targets = [q for q in out.targets if (producer, port, q.consumer) not in dropping]
            out._route()
        self._edges = [q for q in self._edges if (q.producer, q.port, q.consumer) not in dropping]
        for producer, port, consumer, capacity, backpressure, fanout in connect:
            p, c = self._kernels[producer], self._kernels[consumer]
            self._wire(p, port, c, capacity, backpressure, fanout)

    async def retune(
        self, producer: str, port: str, consumer: str, *, capacity: int | None,
        backpressure: str, fanout: str | None,
    ) -> None:  # fmt: skip
        """Change a wired queue's capacity, backpressure and its port's fanout in place."""
        out = self._require(producer).ports.get(port)
        queue = next((q for q in out.targets if q.consumer == consumer), None) if out else None
        if out is None or queue is None:
            raise UserInputError(f"queue {producer}.{port} -> {consumer} is not wired")
        size = capacity if capacity is not None else self._require(consumer).queue_size
        queue.retune(size, backpressure)
        out.fanout = _fanout(fanout) or "broadcast"
        out._route()

    def inflight(self, kernel_id: str) -> int:
        """Messages queued for the kernel plus producers waiting to add theirs."""
        k = self._require(kernel_id)
        return len(k.inbox) + sum(q.producers_waiting for q in k.inbox.queues)

    def tap(self, kernel_id: str, port: str = "out", capacity: int = TAP_CAPACITY) -> Tap:
        """Attach a ``Tap`` to a port: from now on it sees every message sent there.

        Detach it with ``untap``; until then each send on the port also appends to the
        tap's bounded buffer (oldest overwritten, never blocking).
        """
        k = self._require(kernel_id, "tap")
        declared = k.spec.ports
        ports = {*k.ports, *(declared if declared is not None else ("out",))}
        check_tap(k.id, k.spec, port, ports, known={*k.ports, *(declared or ())})
        tap = Tap(capacity)
        self._port(k, port).add_tap(tap)  # a declared port (or the default) made if unused
        return tap

    def untap(self, kernel_id: str, port: str, tap: Tap) -> None:
        """Detach a tap; the port goes back to its untapped send path when none is left."""
        k = self._kernels.get(kernel_id)
        if k is not None and port in k.ports:
            k.ports[port].remove_tap(tap)

    def remove(self, kernel_id: str) -> None:
        """Forget a TERMINATED kernel (and its queues) so its id can be launched anew."""
        k = self._require(kernel_id, "remove")
        if k.state is not S.TERMINATED:
            raise KernelStateError(
                kernel_id, "remove", k.state, (S.TERMINATED,),
                hint="terminate it first",
            )  # fmt: skip
        for other in self._kernels.values():
            for port in other.ports.values():
                port.targets = [q for q in port.targets if q.consumer != kernel_id]
                port._route()
        self._edges = [q for q in self._edges if kernel_id not in (q.producer, q.consumer)]
        del self._kernels[kernel_id]
        self._readers = {
            key: out for key, out in self._readers.items() if out.kernel_id != kernel_id
        }

    # -- messages from and to the outside ------------------------------------------------

    async def send(self, kernel_id: str, msg: Any) -> None:
        """Queue a message for the kernel (it waits in the inbox until the kernel reads it)."""
        try:
            q = self._feeds[kernel_id]
        except KeyError:
            q = self._external(kernel_id)
        items = q._items
        if len(items) < q._limit:  # Queue.put_nowait inlined: the common case, room
            items.append(msg)
            q.messages += 1
            if q._getters:
                _wake_first(q._getters)
            return
        await q.put(msg)

    async def send_batch(self, kernel_id: str, msgs: Iterable[Any]) -> None:
        """Queue several messages in one call (each is one message to the kernel)."""
        batch = msgs if type(msgs) is list else list(msgs)
        try:
            q = self._feeds[kernel_id]
        except KeyError:
            q = self._external(kernel_id)
        items = q._items
        n = len(batch)
        if len(items) + n <= q._limit:  # Queue.put_many inlined: the batch fits
            items.extend(batch)
            q.messages += n
            waiters = q._getters
            while waiters:  # _wake_all inlined
                fut = waiters.popleft()
                if not fut.done():
                    fut.set_result(None)
            return
        await q.put_many(batch)

    def _external(self, kernel_id: str) -> Queue:
        k = self._kernels.get(kernel_id)
        if k is None:
            k = self._require(kernel_id, "send")
        if k.state not in RUNNING:
            raise KernelStateError(kernel_id, "send", k.state, RUNNING)
        q = k.external
        if q is None:
            # Made on first use so a kernel fed only by edges keeps a one-queue inbox.
            q = k.external = Queue(f"(external) -> {k.id}", k.inbox, k.queue_size, consumer=k.id)
        self._feeds[k.id] = q
        return q

    def _move(self, k: _Kernel, action: Action) -> None:
        super()._move(k, action)
        if k.state not in RUNNING:
            self._feeds.pop(k.id, None)  # ``send`` looks at its state again

    async def receive(
        self, kernel_id: str, timeout: float | None = None, *, port: str = "out"
    ) -> Any:
        """The next message the kernel sent on an unwired ``port``.

        Raises ``asyncio.TimeoutError`` after ``timeout``; ``KernelFailedError`` if the
        kernel failed and nothing is left to read (instead of hanging).
        """
        try:
            out = self._readers[kernel_id if port == "out" else (kernel_id, port)]
        except KeyError:
            out = self._reader(kernel_id, port)
        if out.targets:
            self._output(kernel_id, port)  # wired since: raises what to do instead
        inbox = out.output_inbox
        deadline = 0.0  # when a timed wait runs out, from the first time it waits
        while True:
            q = inbox.single
            if q is None:  # fan-in
                item = inbox.get_nowait()
                if item is not EMPTY:
                    return item
            elif q._items:  # Inbox.get_nowait inlined: one queue, a message waiting
                items = q._items
                n = len(items)
                if n > q._high:
                    q._high = n
                item = items.popleft()
                q.delivered += 1
                if q._space_waiters:
                    _wake_first(q._space_waiters)
                return item
            # The wait, written out here and in receive_batch: one coroutine less per wait.
            fut = self._park(kernel_id, inbox, timeout, deadline)
            try:
                await fut
            except BaseException:
                self._unpark(inbox, fut)
                raise
            if timeout is not None:
                deadline = self._deadlines.pop(fut)

    async def receive_batch(
        self,
        kernel_id: str,
        max_items: int = 1024,
        timeout: float | None = None,
        *,
        port: str = "out",
    ) -> list[Any]:
        """Between 1 and ``max_items`` messages the kernel sent on an unwired ``port``."""
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        try:
            out = self._readers[kernel_id if port == "out" else (kernel_id, port)]
        except KeyError:
            out = self._reader(kernel_id, port)
        if out.targets:
            self._output(kernel_id, port)  # wired since: raises what to do instead
        inbox = out.output_inbox
        deadline = 0.0  # when a timed wait runs out, from the first time it waits
        while True:
            q = inbox.single
            if q is None:  # fan-in
                batch = inbox.get_many_nowait(max_items)
                if batch:
                    return batch
            elif q._items:
                return q.take(max_items)
            fut = self._park(kernel_id, inbox, timeout, deadline)
            try:
                await fut
            except BaseException:
                self._unpark(inbox, fut)
                raise
            if timeout is not None:
                deadline = self._deadlines.pop(fut)

    def unwired_ports(self, kernel_id: str) -> list[str]:
        """The kernel's output ports that no queue wires: those ``receive`` reads.

        Declared ports (``@ring_kernel(ports=...)``) are listed from launch; others once
        the kernel has sent on them.
        """
        k = self._require(kernel_id, "receive")
        return [name for name, port in k.ports.items() if not port.targets]

    def _reader(self, kernel_id: str, port: str) -> OutPort:
        """The port ``receive`` reads, checked once and then kept for the next reads."""
        out = self._output(kernel_id, port)
        self._readers[kernel_id if port == "out" else (kernel_id, port)] = out
        return out

    def _output(self, kernel_id: str, port: str) -> OutPort:
        out = self._port(self._require(kernel_id, "receive"), port)
        if out.targets:
            wired = ", ".join(q.consumer or "?" for q in out.targets)
            raise UserInputError(
                f"port {port!r} of kernel {kernel_id!r} is wired to {wired}",
                hint="runtime.receive reads ports with no queue edge; read at the consumer",
            )
        return out

    def _park(
        self, kernel_id: str, inbox: Inbox, timeout: float | None, deadline: float
    ) -> asyncio.Future[None]:
        """Nothing to read: the future that a message resolves, or the ``timeout``
        (counted from the first wait: ``deadline`` is 0 until then).

        Raises ``KernelFailedError`` if the kernel failed, ``KernelStateError`` once it
        terminated (nothing more will come), ``TimeoutError`` past the deadline.
        """
        k = self._require(kernel_id)
        if k.error is not None:
            raise KernelFailedError(k.id, k.error) from k.error
        if k.state is S.TERMINATED:
            raise KernelStateError(
                k.id, "receive", k.state, RUNNING,
                hint="it has terminated and everything it sent has been read",
            )  # fmt: skip
        loop = inbox.loop  # running_loop(inbox) written out: a wait per message in ping-pong
        if loop is None or not loop.is_running():
            loop = running_loop(inbox)
        if timeout is None:
            fut: asyncio.Future[None] = loop.create_future()
        else:
            if deadline:
                if loop.time() >= deadline:
                    raise TimeoutError()
            elif timeout > 0:  # it cannot have run out before the first look: no clock read
                deadline = loop.time() + timeout
            else:
                raise TimeoutError()
            fut = loop.create_future()
            self._deadlines.add(loop, fut, deadline)  # one timer for every timed wait
        inbox.waiters.append(fut)
        return fut

    def _unpark(self, inbox: Inbox, fut: asyncio.Future[None]) -> None:
        """The wait on ``fut`` ended in an exception (its timeout, a cancelled caller)."""
        self._deadlines.discard(fut)
        if _woken(fut):
            # Woken for a message it will not take (cancelled meanwhile): pass the wake-up
            # on, or another receive waiting here would hang.
            inbox.notify()
        else:
            with contextlib.suppress(ValueError):
                inbox.waiters.remove(fut)

    # -- whole-runtime questions ---------------------------------------------------------

    def is_idle(self, kernel_id: str) -> bool:
        """Nothing queued for it, and every replica waits in receive (or has finished)."""
        k = self._require(kernel_id)
        if len(k.inbox):
            return False  # terminated with work queued (a restart is due) is not idle
        if k.state is S.TERMINATED:
            return True
        if k.state is S.TERMINATING:
            return False  # being stopped (a failure's siblings, say): not settled yet
        if k.state in (S.LAUNCHED, S.DEACTIVATED):
            return True
        if k.spec.control is not None and not k.spec.control.idle():
            return False  # work in flight outside the event loop
        return all(t.done() or c._waiting for c, t in zip(k.ctxs, k.tasks, strict=False))

    def is_quiescent(self, kernel_ids: Sequence[str] | None = None) -> bool:
        """Every queue empty and every kernel waiting in receive: the drain can proceed."""
        ids = self._kernels if kernel_ids is None else kernel_ids
        return all(self.is_idle(kid) for kid in ids)

    def close_inbox(self, kernel_id: str, reason: str = "lost") -> int:
        """Refuse further messages for a kernel that will not run again; returns how many
        were queued. They, and later sends to it, count as ``reason`` (``lost`` or
        ``left``) in the accounting."""
        k = self._require(kernel_id)
        if k.spec.control is not None:
            k.spec.control.close_input(reason)
        return k.inbox.close(reason)

    def accounting(self) -> Accounting:
        """The accounting law's terms for every queue into a kernel, checked."""
        rows: list[QueueAccount] = []
        delivered_via_ctx: dict[str, int] = {}
        for k in self._kernels.values():
            for q in k.inbox.queues:
                rows.append(_account_queue(q, k.id))
            delivered_via_ctx[k.id] = k.base_in + sum(c.messages_in for c in k.ctxs)
            if k.spec.control is not None:
                rows.extend(k.spec.control.accounts())  # records in rings, not messages
        errors = {k.id: k.errors + k.base_errors + sum(c.errors for c in k.ctxs)
                  for k in self._kernels.values()}  # fmt: skip
        return build_accounting(rows, errors=errors, received=delivered_via_ctx)

    def queued(self, kernel_id: str) -> int:
        return len(self._require(kernel_id).inbox)

    # -- telemetry -----------------------------------------------------------------------

    async def _sample_forever(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(RATE_SAMPLE_S)

    def sample(self, now: float | None = None) -> None:
        """Feed the rate windows and progress clocks (the runtime's own timer calls this,
        so the figures do not depend on who reads snapshots, or how often)."""
        now = time.monotonic() if now is None else now
        for k in self._kernels.values():
            m_in = k.base_in + sum(c.messages_in for c in k.ctxs)
            m_out = k.base_out + sum(c.messages_out for c in k.ctxs)
            k.sample(m_in, m_out, now)

    def snapshot(self) -> RuntimeSnapshot:
        """A frozen picture of every kernel and queue: a pure read, cheap, off the
        message path."""
        now = time.monotonic()
        kernels = tuple(self._snapshot_kernel(k, now) for k in self._kernels.values())
        queues = tuple(_snapshot_queue(q) for q in self._edges)
        return RuntimeSnapshot(
            taken_at=now,
            kernels=kernels,
            queues=queues,
            quiescent=self.is_quiescent(),
        )

    def _snapshot_kernel(self, k: _Kernel, now: float) -> KernelSnapshot:
        ctxs = k.ctxs
        m_in = k.base_in + sum(c.messages_in for c in ctxs)
        m_out = k.base_out + sum(c.messages_out for c in ctxs)
        errors = k.errors + k.base_errors + sum(c.errors for c in ctxs)
        merged = LatencySampler()
        merged._samples.extend(k.latency._samples)
        for c in ctxs:
            merged._samples.extend(c._latency._samples)
        p50, p99 = merged.percentiles_us()
        running = [(c, t) for c, t in zip(ctxs, k.tasks, strict=False) if not t.done()]
        metrics = merge_metrics(c.metrics for c in ctxs)
        return KernelSnapshot(
            id=k.id,
            state=k.state.name,
            backend=k.choice.backend,
            device=k.choice.device_label,
            replicas=k.replicas,
            messages_in=m_in,
            messages_out=m_out,
            errors=errors,
            drops=k.inbox.drops,
            lost=k.inbox.lost,
            left=k.inbox.left,
            inbox_depth=len(k.inbox),
            inbox_capacity=k.inbox.capacity or k.queue_size,
            inbox_high_water=k.inbox.high_water,
            latency_p50_us=p50,
            latency_p99_us=p99,
            rate_in=round(k.rate_in.rate, 1),
            rate_out=round(k.rate_out.rate, 1),
            restarts=k.restarts,
            last_error=_describe(k.error),
            completed=k.completed,
            waiting=sum(1 for c, _ in running if c._waiting),
            blocked=sum(1 for c, _ in running if c._blocked),
            last_progress_s=round(now - k.progress_at, 3),
            entry=k.entry,
            backend_note=k.choice.note,
            metrics=metrics,
        )


def _snapshot_queue(q: Queue) -> QueueSnapshot:
    return QueueSnapshot(
        name=q.name,
        producer=q.producer,
        port=q.port,
        consumer=q.consumer,
        depth=len(q),
        capacity=q.capacity,
        backpressure=q.policy.value,
        messages=q.messages,
        drops=q.drops,
        delivered=q.delivered,
        lost=q.lost,
        left=q.left,
        high_water=q.high_water,
        blocked_s=q.blocked_s,
    )


class _KernelLeft(Exception):
    """Carries a ``SystemExit``, ``KeyboardInterrupt`` or ``GeneratorExit`` out of a kernel
    task as a failure of that kernel (asyncio would let the first two end the loop)."""

    def __init__(self, left: BaseException) -> None:
        super().__init__(f"{type(left).__name__}: {left}")
        self.left = left


def _where(exc: BaseException) -> str | None:
    """``file:line`` of the innermost frame of ``exc``'s traceback (where it was raised)."""
    tb = exc.__traceback__
    if tb is None:
        return None
    last = traceback.extract_tb(tb)[-1]
    path = last.filename
    with contextlib.suppress(ValueError):  # another drive, say: keep it absolute
        relative = os.path.relpath(path)
        if not relative.startswith(".."):
            path = relative  # what the user typed paths relative to
    return f"{path}:{last.lineno}"


def _account_queue(q: Queue, consumer: str) -> QueueAccount:
    return QueueAccount(
        name=q.name,
        producer=q.producer,
        port=q.port,
        consumer=consumer,
        accepted=q.messages,
        delivered=q.delivered,
        dropped=q.drops,
        lost=q.lost,
        left=q.left,
        queued=len(q),
    )


def _describe(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _fanout(value: str | None) -> Fanout | None:
    if value not in (None, "broadcast", "round_robin"):
        raise UserInputError(f"fanout must be broadcast or round_robin, got {value!r}")
    return cast("Fanout | None", value)
