"""Bounded queues with a backpressure policy, and the inbox that merges them.

A ``Queue`` is one edge (``producer.port -> consumer``), the external queue that
``runtime.send`` fills, or the output queue of a port with no edge. An ``Inbox`` is
where one kernel (all its replicas) reads from: fan-in merges several queues into it.

Hot path rules: messages are stored by reference; a put or get that needs no waiting is
synchronous and allocates nothing but the deque slot; futures, timers and clock reads only
happen on the slow path (waiting for data or for space).

Every queue keeps the terms of the accounting law (``docs/accounting.md``)::

    accepted = delivered + dropped + lost + left + depth

``accepted`` (``messages``) counts every message a producer handed over (a ``reject``
refusal raises instead and is not accepted); ``delivered`` what the consumer took out;
``dropped`` (``drops``) what the backpressure policy discarded; ``lost`` what a consumer
that will never run again could not take (queued when it went away, or sent after);
``left`` what was still queued when the consumer was stopped on request; ``depth`` what is
queued now. Each term is counted where its event happens, never derived from the others,
so ``ringctl.engine.accounting`` finds a path that lost a message without counting it.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, Final

from ringctl.exceptions import QueueFullError

__all__ = ["EMPTY", "Backpressure", "Inbox", "Queue", "running_loop"]

_perf_counter = time.perf_counter


class Backpressure(enum.StrEnum):
    """What a full queue does with one more message."""

    BLOCK = "block"  # the producer waits for space: nothing is lost (the default)
    DROP_OLDEST = "drop_oldest"  # the oldest queued message makes room (counted)
    DROP_NEWEST = "drop_newest"  # the new message is dropped (counted)
    REJECT = "reject"  # the send raises QueueFullError


class _Empty:
    __slots__ = ()

    def __repr__(self) -> str:
        return "EMPTY"


#: Returned by ``Inbox.get_nowait`` when nothing is queued (``None`` is a valid message).
EMPTY: Final = _Empty()


def running_loop(inbox: Inbox) -> asyncio.AbstractEventLoop:
    """The running event loop, kept on ``inbox`` for every wait that concerns it.

    ``asyncio.get_running_loop()`` makes a system call (``getpid``) on every call before
    Python 3.12, which cost a pipeline more than the rest of a wait. The loop kept is
    looked up again once it no longer runs (a runtime used from a second event loop).
    """
    loop = inbox.loop
    if loop is None or not loop.is_running():
        loop = inbox.loop = asyncio.get_running_loop()
    return loop


def _wake_first(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        fut = waiters.popleft()
        if not fut.done():
            fut.set_result(None)
            return


def _wake_all(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        fut = waiters.popleft()
        if not fut.done():
            fut.set_result(None)


class Queue:
    """A bounded FIFO feeding one ``Inbox``, with one backpressure policy."""

    __slots__ = (
        "_getters",
        "_high",
        "_items",
        "_limit",
        "_space_waiters",
        "blocked_s",
        "capacity",
        "close_reason",
        "closed",
        "consumer",
        "delivered",
        "drops",
        "inbox",
        "left",
        "lost",
        "messages",
        "name",
        "policy",
        "port",
        "producer",
    )

    def __init__(
        self,
        name: str,
        inbox: Inbox,
        capacity: int,
        policy: Backpressure | str = Backpressure.BLOCK,
        *,
        producer: str | None = None,
        port: str | None = None,
        consumer: str | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"queue {name}: capacity must be at least 1, got {capacity}")
        self.name = name
        self.inbox = inbox
        self.capacity = capacity
        self.policy = Backpressure(policy)
        self.producer = producer
        self.port = port
        self.consumer = consumer
        self._items: deque[Any] = deque()
        self._space_waiters: deque[asyncio.Future[None]] = deque()
        self.messages = 0  # accepted
        self.delivered = 0
        self.drops = 0  # dropped by the backpressure policy
        self.lost = 0
        self.left = 0
        # The deepest the queue was when a consumer took from it or it closed; with the
        # current depth that is the high-water mark (between two takes the depth only
        # grows), kept off the put path.
        self._high = 0
        self.blocked_s = 0.0
        self.closed = False
        self.close_reason = "lost"  # which term a put into the closed queue counts in
        # Hot-path shortcuts: the consumer's waiters, and a limit that is 0 once closed.
        self._getters = inbox.waiters
        self._limit = capacity
        inbox.add(self)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def high_water(self) -> int:
        """The most messages this queue ever held at once."""
        n = len(self._items)
        return n if n > self._high else self._high

    def __repr__(self) -> str:
        return f"<Queue {self.name} {len(self._items)}/{self.capacity} {self.policy.value}>"

    # -- producer side -------------------------------------------------------------------

    def put_nowait(self, item: Any) -> bool:
        """Enqueue if there is room; False means the caller must take the slow path."""
        items = self._items
        n = len(items)
        if n >= self._limit:
            return False
        items.append(item)
        self.messages += 1
        if self._getters:
            _wake_first(self._getters)
        return True

    async def put(self, item: Any) -> None:
        """Enqueue, applying the policy when the queue is full."""
        if self.put_nowait(item):
            return
        if self.closed:
            self._refuse()  # the consumer is gone: counted, never silent
            return
        policy = self.policy
        if policy is Backpressure.BLOCK:
            # Another producer may take the freed slot first: wait again until ours fits.
            while not self.put_nowait(item):
                if self.closed:
                    self._refuse()
                    return
                await self._wait_for_space()
        elif policy is Backpressure.DROP_OLDEST:
            self._note_depth()
            self._items.popleft()
            self.drops += 1
            self.put_nowait(item)
        elif policy is Backpressure.DROP_NEWEST:
            self.messages += 1  # accepted, then dropped by the policy
            self.drops += 1
        else:
            raise QueueFullError(self.name, self.capacity)

    async def put_many(self, items: Iterable[Any]) -> None:
        """Enqueue a batch in as few steps as the free space allows.

        Under ``block`` a batch that does not fit waits until it does (or, bigger than
        the queue, until the queue is empty) rather than going in piece by piece: the
        consumer then takes whole batches instead of what fitted at each wake-up.
        """
        batch = items if type(items) is list else list(items)
        start, total = 0, len(batch)
        queue = self._items
        if len(queue) + total <= self._limit:  # it fits (never once closed: the limit is 0)
            if total:
                queue.extend(batch)
                self.messages += total
                if self._getters:
                    _wake_all(self._getters)
            return
        block = self.policy is Backpressure.BLOCK
        while start < total:
            room = self.capacity - len(queue)
            if room > 0 and not self.closed and (room >= total - start or not block or not queue):
                if start == 0 and room >= total:
                    queue.extend(batch)
                    n = total
                else:
                    chunk = batch[start : start + room]
                    queue.extend(chunk)
                    n = len(chunk)
                start += n
                self.messages += n
                if self._getters:
                    _wake_all(self._getters)
                continue
            if block and not self.closed:
                await self._wait_for_space(min(total - start, self.capacity))
                continue
            # Full (or closed): the policy decides for the next message only.
            await self.put(batch[start])
            start += 1

    def _refuse(self) -> None:
        """A message handed to a closed queue: accepted and counted as lost (or left)."""
        self.messages += 1
        self._unprocessed(1)

    def _unprocessed(self, n: int) -> None:
        """``n`` messages the consumer will never take, in the term the close gave."""
        if self.close_reason == "left":
            self.left += n
        else:
            self.lost += n

    async def _wait_for_space(self, need: int = 1) -> None:
        """Until ``need`` slots are free or the queue closes; the time counts as blocked."""
        started = _perf_counter()
        try:
            while self.capacity - len(self._items) < need and not self.closed:
                fut: asyncio.Future[None] = running_loop(self.inbox).create_future()
                self._space_waiters.append(fut)
                try:
                    await fut
                except BaseException:
                    if fut.done() and not fut.cancelled():
                        # Woken, but it leaves without using the space: pass the wake-up on.
                        _wake_first(self._space_waiters)
                    raise
        finally:
            self.blocked_s += _perf_counter() - started

    # -- consumer side (called through the Inbox) ---------------------------------------

    def _note_depth(self) -> None:
        """Called before anything leaves the queue (see ``high_water``)."""
        n = len(self._items)
        if n > self._high:
            self._high = n

    @property
    def producers_waiting(self) -> int:
        """Producers waiting for room (their messages are not in the queue yet)."""
        return sum(1 for f in self._space_waiters if not f.done())

    def take(self, max_items: int) -> list[Any]:
        """Up to ``max_items`` queued messages, oldest first, in one copy (counted
        delivered; every producer waiting for space is woken)."""
        items = self._items
        n = len(items)
        if n > self._high:
            self._high = n
        if n <= max_items:
            batch = list(items)
            items.clear()
        else:
            popleft = items.popleft
            batch = [popleft() for _ in range(max_items)]
            n = max_items
        self.delivered += n
        if self._space_waiters:
            _wake_all(self._space_waiters)
        return batch

    def _took(self, n: int) -> None:
        self.delivered += n
        if self._space_waiters:
            if n == 1:
                _wake_first(self._space_waiters)
            else:
                _wake_all(self._space_waiters)

    def put_back(self, items: list[Any]) -> None:
        """Messages the consumer took but will not handle (it was paused or stopped
        first): first in line again, or, once the queue is closed, counted as the close
        said. ``delivered`` is taken back, so the accounting law stays exact."""
        n = len(items)
        self.delivered -= n
        if self.closed:
            self._unprocessed(n)
            return
        self._items.extendleft(reversed(items))
        if self._getters:
            _wake_first(self._getters)

    def withdraw(self) -> list[Any]:
        """Take out everything queued as never accepted here: it moves to another queue
        (``adopt``), so the law counts each message once, where it is handled."""
        self._note_depth()
        items = list(self._items)
        self._items.clear()
        self.messages -= len(items)
        _wake_all(self._space_waiters)
        return items

    def adopt(self, items: list[Any]) -> None:
        """Accept messages another queue ``withdraw``-ed, past the capacity if need be
        (they were accepted once already: no policy applies to them again)."""
        if not items:
            return
        self._items.extend(items)
        self.messages += len(items)
        self._note_depth()
        if self._getters:
            _wake_all(self._getters)

    def close(self, reason: str = "lost") -> int:
        """The consumer is gone: what was queued, and every later put, is counted.

        ``reason`` is the term they count in: ``"lost"`` (the consumer failed or ended and
        will not run again) or ``"left"`` (it was stopped on request with work queued).
        Returns how many were queued.
        """
        discarded = self.clear(reason)
        self.closed = True
        self.close_reason = reason
        self._limit = 0
        return discarded

    def clear(self, reason: str = "left") -> int:
        """Discard what is queued, counted as ``reason`` (``"left"`` or ``"lost"``), and let
        blocked producers on; the queue stays open. Returns how many were discarded."""
        if reason not in ("lost", "left"):
            raise ValueError(f"close reason must be 'lost' or 'left', got {reason!r}")
        self._note_depth()
        discarded = len(self._items)
        self._items.clear()
        if reason == "left":
            self.left += discarded
        else:
            self.lost += discarded
        _wake_all(self._space_waiters)
        return discarded

    def retune(self, capacity: int, policy: Backpressure | str) -> None:
        """Change capacity and policy while producers use the queue (``ringctl apply``).

        What is queued stays; a smaller capacity makes producers wait (or drop, by the
        policy) until the consumer has taken the queue below it.
        """
        if capacity < 1:
            raise ValueError(f"queue {self.name}: capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.policy = Backpressure(policy)
        if not self.closed:
            self._limit = capacity
        _wake_all(self._space_waiters)  # each looks again at the room there is now

    def reopen(self) -> None:
        """A restart policy gave the consumer a new instance: accept messages again."""
        self.closed = False
        self.close_reason = "lost"
        self._limit = self.capacity


class Inbox:
    """Where one kernel reads: one or more queues merged, with waiters for data.

    With several queues (fan-in) reads go round-robin over the non-empty ones, so no
    producer starves another; each queue stays FIFO.
    """

    __slots__ = ("_cursor", "loop", "name", "queues", "single", "waiters")

    def __init__(self, name: str) -> None:
        self.name = name
        self.queues: list[Queue] = []
        self.waiters: deque[asyncio.Future[None]] = deque()
        #: The only queue, when there is exactly one: readers take the fast path.
        self.single: Queue | None = None
        self._cursor = 0
        #: The event loop its readers and writers wait in (see ``running_loop``).
        self.loop: asyncio.AbstractEventLoop | None = None

    def add(self, queue: Queue) -> None:
        self.queues.append(queue)
        self.single = self.queues[0] if len(self.queues) == 1 else None

    def __len__(self) -> int:
        return sum(len(q._items) for q in self.queues)

    @property
    def capacity(self) -> int:
        return sum(q.capacity for q in self.queues)

    @property
    def high_water(self) -> int:
        return max((q.high_water for q in self.queues), default=0)

    @property
    def drops(self) -> int:
        return sum(q.drops for q in self.queues)

    @property
    def lost(self) -> int:
        return sum(q.lost for q in self.queues)

    @property
    def left(self) -> int:
        return sum(q.left for q in self.queues)

    def get_nowait(self) -> Any:
        """The next message, or ``EMPTY``."""
        single = self.single
        if single is not None:
            items = single._items
            if items:
                if len(items) > single._high:
                    single._high = len(items)
                item = items.popleft()
                single.delivered += 1
                if single._space_waiters:
                    _wake_first(single._space_waiters)
                return item
            return EMPTY
        queues = self.queues
        n = len(queues)
        for i in range(n):
            q = queues[(self._cursor + i) % n]
            if q._items:
                self._cursor = (self._cursor + i + 1) % n
                q._note_depth()
                item = q._items.popleft()
                q.delivered += 1
                if q._space_waiters:
                    _wake_first(q._space_waiters)
                return item
        return EMPTY

    def get_many_nowait(self, max_items: int) -> list[Any]:
        """Up to ``max_items`` messages (possibly none), oldest first within each queue.

        With fan-in, each call starts at the queue after the last one it read from (the
        round robin of ``get_nowait``), so a busy producer cannot starve the others.
        """
        single = self.single
        if single is not None:  # the hot path: one queue, no round robin to keep
            return single.take(max_items) if single._items else []
        out: list[Any] = []
        queues = self.queues
        n = len(queues)
        i = self._cursor
        for _ in range(n):
            q = queues[i]
            i = i + 1 if i + 1 < n else 0
            items = q._items
            if not items:
                continue
            want = max_items - len(out)
            q._note_depth()
            if len(items) <= want:
                out.extend(items)
                taken = len(items)
                items.clear()
            else:
                popleft = items.popleft
                out.extend([popleft() for _ in range(want)])
                taken = want
            q._took(taken)
            self._cursor = i
            if len(out) >= max_items:
                break
        return out

    def notify(self) -> None:
        _wake_first(self.waiters)

    def wake_all(self) -> None:
        _wake_all(self.waiters)

    def close(self, reason: str = "lost") -> int:
        """Close every queue feeding this inbox; returns how many messages were queued."""
        return sum(q.close(reason) for q in self.queues)
