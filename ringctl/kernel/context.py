"""``KernelContext``: everything a kernel body sees of the runtime.

One context per running instance (each replica has its own). The runtime flips its
``is_active`` / ``should_terminate`` flags and wakes whatever the body is waiting on; the
body reads messages, sends them on, and checks the flags in its actor loop::

    while not ctx.should_terminate:
        if not ctx.is_active:
            await ctx.wait_active()
            continue
        try:
            msg = await ctx.receive(timeout=0.1)
        except asyncio.TimeoutError:
            continue
        await ctx.send(process(msg))

or, equivalently, ``async for msg in ctx.messages(): ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from itertools import islice
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from ringctl.engine.local.queues import EMPTY, Inbox, _wake_first, running_loop
from ringctl.engine.telemetry import LATENCY_SAMPLE_EVERY, LatencySampler

if TYPE_CHECKING:
    from ringctl.engine.local.ports import OutPort
    from ringctl.engine.local.queues import Queue

__all__ = ["KernelContext"]

_NEVER: Final = math.inf  # the deadline of a wait without a timeout
_perf_counter = time.perf_counter
#: Most messages ``messages()`` takes from its queue at once: a queue of the default size
#: whole, in one copy (taking part of a longer queue pops one message at a time).
TAKE_AT_ONCE = 1024
#: A kernel yields the event loop after a budget of messages received, or sent, since it
#: last yielded (cooperative scheduling, as Tokio's task budget): a source whose queue
#: has room, or a sink whose inbox is full, would otherwise run until the queue fills or
#: empties, and with thousands of kernels one pass of the loop (and so every ``ps``,
#: ``pause`` and ``down``) would wait for all of them. The budget is this many messages
#: per pass of the loop, shared by the kernels running (at least ``_MIN_BUDGET`` each),
#: so one busy kernel alone almost never yields and five thousand yield every few sends.
_OPS_PER_PASS = 16384
_MIN_BUDGET = 8
_budget = _OPS_PER_PASS
_running = 0


def running_bodies(delta: int) -> None:
    """The engine counts each kernel body task in (+1) and out (-1) of the budget."""
    global _budget, _running
    _running = max(0, _running + delta)
    _budget = max(_MIN_BUDGET, _OPS_PER_PASS // max(1, _running))


def _woken(fut: asyncio.Future[None]) -> bool:
    """Resolved by a producer or the runtime (not by our timer, not cancelled)."""
    return fut.done() and not fut.cancelled() and fut.exception() is None


class KernelContext:
    """The handle a kernel body gets: its id, params, backend, inbox and output ports.

    Hooks and flags, and when the runtime touches them:

    - ``is_active`` turns False when ``runtime.deactivate()`` returns and True again on
      ``reactivate()``; while it is False no ``receive`` completes and every ``send``
      waits (so a source that never receives pauses too); messages keep queueing.
    - ``should_terminate`` turns True on ``runtime.terminate()``; the body should finish
      the message in hand and return. A ``receive`` that would have to wait raises
      ``asyncio.TimeoutError`` from then on, so a loop without a timeout still ends.
    - Never share one context between concurrent tasks of the body.
    """

    __slots__ = (
        "_armed_for",
        "_blocked",
        "_deadline",
        "_in_check",
        "_in_from",
        "_inbox",
        "_latency",
        "_out_check",
        "_out_from",
        "_port_factory",
        "_ports",
        "_sample_at",
        "_t_take",
        "_timer",
        "_wait_fut",
        "_waiting",
        "_wakeups",
        "backend",
        "device",
        "errors",
        "is_active",
        "kernel_id",
        "messages_in",
        "messages_out",
        "metrics",
        "params",
        "replica",
        "replicas",
        "should_terminate",
        "state",
    )

    def __init__(
        self,
        kernel_id: str,
        *,
        inbox: Inbox,
        ports: dict[str, OutPort],
        port_factory: Any,
        params: Any = None,
        replica: int = 0,
        replicas: int = 1,
        backend: str = "cpu",
        device: int | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.kernel_id = kernel_id
        self.replica = replica
        self.replicas = replicas
        self.params: Any = params if params is not None else {}
        self.backend = backend
        self.device = device
        #: Numbers the kernel wants shown in ``ringctl ps`` and the dashboard.
        self.metrics: dict[str, Any] = {}
        #: Kept across restarts of this kernel (a restart policy's new instance sees it).
        self.state: dict[str, Any] = state if state is not None else {}
        self._inbox = inbox
        self._ports = ports
        self._port_factory = port_factory
        #: True while the kernel is ACTIVE (not paused, not terminating). Set by the
        #: runtime only; a plain attribute because the actor loop reads it per message.
        self.is_active = False
        #: True once termination was requested: finish the message in hand and return.
        self.should_terminate = False
        #: True while a ``receive`` waits (the engines read it as "idle in receive"), on
        #: ``_wait_fut``, which ``_wake`` and the timer resolve.
        self._waiting = False
        self._wait_fut: asyncio.Future[None] | None = None
        self._blocked = False
        self._wakeups: list[asyncio.Future[None]] = []
        self.messages_in = 0
        self.messages_out = 0
        self.errors = 0
        self._latency = LatencySampler()
        # The budget and the latency samples are looked after every few messages, not on
        # each: a receive calls ``_tick_in`` once ``messages_in`` reaches ``_in_check``, a
        # send calls ``_spend`` once ``messages_out`` reaches ``_out_check``, and those
        # calls set when the next look comes. The budget is spent once either count has
        # gone up by it since the kernel last yielded the loop (from ``_in_from`` and
        # ``_out_from``).
        self._in_check = 0
        self._out_check = 0
        self._in_from = 0
        self._out_from = 0
        # Processing latency is timed for one message in LATENCY_SAMPLE_EVERY: from
        # handing it to the body (``_t_take``) until the body asks for the next one.
        self._t_take = 0.0
        # The ``messages_in`` count at which the next sample starts (while one runs, the
        # count it started at).
        self._sample_at = 0
        # One timer serves every ``receive(timeout)`` of this kernel: armed for the first
        # wait's deadline and moved on when it fires early, rather than one timer made and
        # cancelled per wait (see ``_wait_for_messages``).
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = 0.0  # when the timer fires
        self._deadline = _NEVER  # of the wait in progress (``_NEVER``: it has none)

    def __repr__(self) -> str:
        return f"<KernelContext {self.kernel_id}[{self.replica}] active={self.is_active}>"

    # -- flags ---------------------------------------------------------------------------

    @property
    def xp(self) -> ModuleType:
        """The array module for this kernel's backend: ``numpy`` on cpu, ``cupy`` on cuda."""
        if self.backend == "cuda":
            import cupy

            return cupy  # type: ignore[no-any-return]
        import numpy

        return numpy

    async def wait_active(self) -> None:
        """Return once the kernel is active again, or termination was requested."""
        while not self.is_active and not self.should_terminate:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._wakeups.append(fut)
            try:
                await fut
            finally:
                self._wakeups.remove(fut)

    def _wake(self) -> None:
        """The runtime changed a flag: whatever the body waits on must look again."""
        for fut in self._wakeups:
            if not fut.done():
                fut.set_result(None)
        waiting = self._wait_fut
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    # -- receiving -----------------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> Any:
        """The next message; raises ``asyncio.TimeoutError`` if none came within ``timeout``."""
        if self.messages_in >= self._in_check and self._tick_in():
            await self._yield()  # before taking: a message is never held across the yield
        q = self._inbox.single
        if q is not None and self.is_active and q._items:
            # The fast path (one queue, a message waiting): no future, no clock, no call.
            items = q._items
            n = len(items)
            if n > q._high:
                q._high = n
            item = items.popleft()
            q.delivered += 1
            if q._space_waiters:
                _wake_first(q._space_waiters)
        else:
            # The wait, written out here and in receive_batch: one coroutine less per wait.
            inbox = self._inbox
            again = False
            look = q is None  # fan-in: look first; one queue: it was empty, or paused
            timing, self._t_take = self._t_take, 0.0  # a sample starts when a message comes
            while True:
                if look and self.is_active:
                    item = inbox.get_nowait()
                    if item is not EMPTY:
                        break
                look = True
                fut = self._park(timeout, again)
                again = True
                try:
                    await fut
                except BaseException:
                    self._unpark(fut)
                    raise
                self._wait_fut = None  # the timer stays armed for the next wait, if any
                self._waiting = False
            if timing:
                self._t_take = _perf_counter()
        self.messages_in += 1
        return item

    async def receive_batch(self, max_items: int = 1024, timeout: float | None = None) -> list[Any]:
        """Between 1 and ``max_items`` messages, waiting up to ``timeout`` for the first."""
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if self.messages_in >= self._in_check and self._tick_in():
            await self._yield()  # before taking: a message is never held across the yield
        batch: list[Any]
        q = self._inbox.single
        if q is not None and self.is_active and q._items:
            batch = q.take(max_items)  # the fast path: one queue, one copy
            n = len(batch)
        else:
            inbox = self._inbox
            again = False
            look = q is None  # fan-in: look first; one queue: it was empty, or paused
            timing, self._t_take = self._t_take, 0.0  # a sample starts when messages come
            while True:
                if look and self.is_active:
                    batch = inbox.get_many_nowait(max_items)
                    n = len(batch)
                    if n:
                        break
                look = True
                fut = self._park(timeout, again)
                again = True
                try:
                    await fut
                except BaseException:
                    self._unpark(fut)
                    raise
                self._wait_fut = None  # the timer stays armed for the next wait, if any
                self._waiting = False
            if timing:
                self._t_take = _perf_counter()
        self.messages_in += n  # a batch costs what its messages would
        return batch

    def _tick_in(self, start: bool = True) -> bool:
        """A receive's look every few messages: ends the latency sample in progress (the
        body asks for the next message), or starts the next one when due (unless
        ``start`` is false), and says whether the budget is spent (the caller then
        yields). Starting a sample is all a look does while the budget holds."""
        n = self.messages_in
        if self._t_take:
            self._latency.add(_perf_counter() - self._t_take)
            self._t_take = 0.0
            # One take in LATENCY_SAMPLE_EVERY: the next sample comes that many times
            # what this take handed out (one message, or a batch) later.
            self._sample_at += LATENCY_SAMPLE_EVERY * max(n - self._sample_at, 1)
        elif start and self._sample_at <= n < self._in_from + _budget:
            # (Not when a yield is due: a yield is no work, never timed.)
            self._t_take = _perf_counter()
            self._sample_at = self._in_check = n  # while it runs: the count it started at
            return False
        return self._spend()

    def _spend(self) -> bool:
        """Whether the budget is spent on either side since the loop last ran others (if
        so, it starts again from now); sets when receive and send look next."""
        n_in, n_out = self.messages_in, self.messages_out
        spent = n_in >= self._in_from + _budget or n_out >= self._out_from + _budget
        if spent:
            self._in_from, self._out_from = n_in, n_out
        self._out_check = self._out_from + _budget
        # A sample in progress ends at the next receive, whatever it finds.
        self._in_check = n_in if self._t_take else min(self._sample_at, self._in_from + _budget)
        return spent

    def _park(self, timeout: float | None, again: bool) -> asyncio.Future[None]:
        """Nothing to take: the future that a message, a flag or the timeout resolves.

        Raises ``TimeoutError`` once termination was asked for (so a loop without a
        timeout ends) or the ``timeout`` (counted from the first wait, ``again`` False)
        has run out. A paused kernel's future does not listen for messages.
        """
        if self.should_terminate:
            raise TimeoutError()
        inbox = self._inbox
        loop = inbox.loop  # running_loop(inbox) written out: a wait per message in ping-pong
        if loop is None or not loop.is_running():
            loop = running_loop(inbox)
        if timeout is None:
            self._deadline = _NEVER
        else:
            if again:
                deadline = self._deadline
                if loop.time() >= deadline:
                    raise TimeoutError()
            elif timeout > 0:  # it cannot have run out before the first look: no clock read
                deadline = self._deadline = loop.time() + timeout
            else:
                raise TimeoutError()
            if self._timer is None or self._armed_for > deadline:
                self._arm(loop, deadline)
        fut: asyncio.Future[None] = loop.create_future()
        if self.is_active:
            inbox.waiters.append(fut)
        self._wait_fut = fut
        self._waiting = True
        return fut

    def _unpark(self, fut: asyncio.Future[None]) -> None:
        """The wait on ``fut`` ended in an exception (a timeout, a cancelled body)."""
        self._wait_fut = None
        self._waiting = False
        if _woken(fut):
            self._inbox.notify()  # woken for a message it will not take: pass it on
        else:
            with contextlib.suppress(ValueError):
                self._inbox.waiters.remove(fut)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = when
        self._timer = loop.call_at(when, self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer fired: expire the wait in progress if its deadline has come, else
        (the wait it was armed for ended and a later one began) move on to that deadline."""
        self._timer = None
        fut = self._wait_fut
        if fut is None or fut.done() or self._deadline is _NEVER:
            return  # no timed wait now: the next one arms the timer again
        if self._deadline > self._armed_for:
            self._arm(loop, self._deadline)
        else:
            fut.set_exception(TimeoutError())

    async def messages(self) -> AsyncIterator[Any]:
        """Every message until termination is requested; pauses while deactivated.

        A kernel that runs as one replica and reads one queue takes up to
        ``TAKE_AT_ONCE`` queued messages at once and hands them out one by one, looking
        at the pause and stop flags before each: what it took but did not hand out when
        it was paused or stopped goes back to the front of the queue (so after
        ``deactivate`` returns no message is handled, and a stopped kernel's messages
        count as left in its inbox, never as lost). So does what it holds when the loop
        is left early (``break``, an exception, a cancelled body), once the iterator is
        closed.
        """
        inbox = self._inbox
        held: Iterator[Any] | None = None  # what is left of the batch being handed out
        q: Queue | None = None
        try:
            while not self.should_terminate:
                if not self.is_active:
                    await self.wait_active()
                    continue
                q = inbox.single
                if q is None or not q._items or self.replicas > 1:
                    # Nothing queued (wait for one message), fan-in (round robin), or
                    # replicas sharing the queue: one message at a time.
                    try:
                        msg = await self.receive()
                    except TimeoutError:
                        continue
                    yield msg
                    continue
                # (Ends a sample the receive() above started: the body is back.)
                if self.messages_in >= self._in_check and self._tick_in(start=False):
                    await self._yield()  # before taking: nothing is held across the yield
                    continue
                items = q._items
                n = len(items)
                if n > q._high:
                    q._high = n
                if n <= TAKE_AT_ONCE:
                    batch = list(items)
                    items.clear()
                else:
                    popleft = items.popleft
                    batch = [popleft() for _ in range(TAKE_AT_ONCE)]
                    n = TAKE_AT_ONCE
                q._took(n)
                first = self.messages_in
                self.messages_in = first + n  # a batch costs what its messages would
                # Processing latency, from handing a message out until the body asks for
                # the next one, timed for one message of the batch (no clock per message):
                # the one whose count reaches the next sample's, at ``at``, if the batch
                # reaches it. The batch is handed out in up to three stretches (before
                # it, it, after it): no other message pays for sampling.
                at = max(0, self._sample_at - first)
                if at < n:
                    self._sample_at = first + at + LATENCY_SAMPLE_EVERY
                held = it = iter(batch)
                rest: list[Any] | None = None
                for msg in islice(it, at) if at < n else it:
                    if not self.is_active or self.should_terminate:
                        rest = [msg, *it]
                        break
                    yield msg
                if at < n and rest is None:
                    msg = next(it)
                    if not self.is_active or self.should_terminate:
                        rest = [msg, *it]
                    else:
                        t0 = _perf_counter()
                        yield msg
                        self._latency.add(_perf_counter() - t0)
                        for msg in it:
                            if not self.is_active or self.should_terminate:
                                rest = [msg, *it]
                                break
                            yield msg
                held = None
                if rest:  # paused or stopped first: the rest is queued again
                    self._give_back(q, rest)
        finally:
            if held is not None and q is not None:  # the body left mid-batch
                rest = list(held)  # (break, error, cancel): what it was not handed
                if rest:
                    self._give_back(q, rest)

    def _give_back(self, q: Queue, rest: list[Any]) -> None:
        self.messages_in -= len(rest)
        q.put_back(rest)

    async def batches(self, max_items: int = 1024) -> AsyncIterator[list[Any]]:
        """Like ``messages()``, a list of up to ``max_items`` at a time."""
        while not self.should_terminate:
            if not self.is_active:
                await self.wait_active()
                continue
            try:
                batch = await self.receive_batch(max_items)
            except TimeoutError:
                continue
            yield batch

    # -- sending -------------------------------------------------------------------------

    async def send(self, msg: Any, port: str = "out") -> None:
        """Send one message (by reference: do not mutate it afterwards) on ``port``."""
        try:
            p = self._ports[port]
        except KeyError:
            p = self._port_factory(port)
        q = p.single
        if q is not None and self.is_active:
            # The fast path, Queue.put_nowait inlined: room in the one queue this port feeds.
            items = q._items
            if len(items) < q._limit:
                items.append(msg)
                q.messages += 1
                if q._getters:
                    _wake_first(q._getters)
                self.messages_out = out = self.messages_out + 1
                if out >= self._out_check and self._spend():
                    await self._yield()
                return
        elif p.taps and self.is_active:
            # Tapped, so off the inlined path above (which stays free of any tap check):
            # a put for one queue with room needs no coroutine either, then each tap a copy.
            q = p.sends_to_one
            if q is not None and q.put_nowait(msg):
                for tap in p.taps:
                    tap.offer(msg)
                self.messages_out += 1
                return
        if not self.is_active:
            await self.wait_active()  # a paused kernel sends nothing either
        self._blocked = True
        try:
            await p.send(msg)
        finally:
            self._blocked = False
        self.messages_out += 1  # counted once queued, so "out" never runs ahead of "in"

    async def send_batch(self, msgs: Iterable[Any], port: str = "out") -> None:
        """Send several messages in one call (each one is a message downstream)."""
        try:
            p = self._ports[port]
        except KeyError:
            p = self._port_factory(port)
        batch = msgs if type(msgs) is list else list(msgs)
        n = len(batch)
        q = p.single
        if q is not None and self.is_active and len(q._items) + n <= q._limit:
            # The fast path, Queue.put_many inlined: the whole batch fits in the one queue.
            q._items.extend(batch)
            q.messages += n
            waiters = q._getters
            while waiters:  # _wake_all inlined
                fut = waiters.popleft()
                if not fut.done():
                    fut.set_result(None)
        else:
            if not self.is_active:
                await self.wait_active()  # a paused kernel sends nothing either
            self._blocked = True
            try:
                await p.send_many(batch)
            finally:
                self._blocked = False
        self.messages_out = out = self.messages_out + n
        if out >= self._out_check and self._spend():
            await self._yield()

    async def _yield(self) -> None:
        """Let every other ready task run once (the budget is spent)."""
        await asyncio.sleep(0)

    def record_error(self, exc: BaseException | str | None = None) -> None:
        """Count a message the body could not process but chose to survive."""
        self.errors += 1
        if exc is not None:
            self.metrics["last_error"] = exc if isinstance(exc, str) else repr(exc)
