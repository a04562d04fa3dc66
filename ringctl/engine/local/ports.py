"""A kernel's named output ports and where each one's messages go.

A port with no edge keeps what is sent to it in its own output queue, which
``runtime.receive(kernel_id, port=...)`` reads (the spec's behaviour). A port with edges
sends each message to every edge (``broadcast``, the default: the same object, not a
copy) or to one edge in turn (``round_robin``).

A ``Tap`` is a bounded, lossy copy of what leaves a port (``ringctl tap``). While a port
has no tap nothing changes on the send path; while it has one, sends take the port's
slow path, which offers each message to the tap before delivering it as usual: the
order, the backpressure and the counts of the real edge are the same either way.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any, Final, Literal

from ringctl.engine.local.queues import Inbox, Queue

__all__ = ["TAP_CAPACITY", "TAP_MAX_BYTES", "Fanout", "OutPort", "Tap"]

Fanout = Literal["broadcast", "round_robin"]
#: What a tap keeps when nobody reads it fast enough; older messages are overwritten.
TAP_CAPACITY: Final = 256
#: ... and at most this many bytes of them (arrays by ``nbytes``, others estimated).
TAP_MAX_BYTES: Final = 8 * 1024 * 1024
_SMALL: Final = 64  # what a scalar message is taken to cost
_SCALARS: Final = (type(None), bool, int, float, complex)


class Tap:
    """A side channel that sees every message sent on one port and keeps the newest few.

    ``offer`` never waits and never fails: a reader that falls behind misses messages
    (``missed`` counts them) instead of slowing the kernel down. What it keeps is bounded
    in count (``capacity``) and in bytes (``max_bytes``): the oldest go first. A message
    that holds a GPU array, or is bigger than ``max_bytes`` on its own, is kept as its
    preview (``ringctl._preview``), so a tap never keeps device memory alive nor
    pins more host memory than its bound. ``take`` may be called from another thread.
    """

    __slots__ = ("_buffer", "_bytes", "_guard", "capacity", "max_bytes", "seen", "taken")

    def __init__(self, capacity: int = TAP_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"a tap keeps at least 1 message, got {capacity}")
        self.capacity = capacity
        self.max_bytes = TAP_MAX_BYTES
        self._buffer: deque[tuple[Any, int]] = deque()
        self._bytes = 0
        self._guard = threading.Lock()
        self.seen = 0  # messages offered since the tap was attached
        self.taken = 0  # messages handed to the reader

    def offer(self, msg: Any) -> None:
        if type(msg) in _SCALARS:
            size = _SMALL
        else:
            size, device = _footprint(msg, 0)
            if device or size > self.max_bytes:
                from ringctl._preview import Previewed

                msg, size = Previewed.of(msg), _SMALL
        with self._guard:
            buffer = self._buffer
            buffer.append((msg, size))
            self._bytes += size
            while len(buffer) > self.capacity or self._bytes > self.max_bytes:
                self._bytes -= buffer.popleft()[1]
            self.seen += 1

    def offer_many(self, msgs: Sequence[Any]) -> None:
        for msg in msgs:
            self.offer(msg)

    def take(self, max_items: int) -> list[Any]:
        """Up to ``max_items`` of the oldest messages still kept, oldest first."""
        out: list[Any] = []
        with self._guard:
            buffer = self._buffer
            while buffer and len(out) < max_items:
                msg, size = buffer.popleft()
                self._bytes -= size
                out.append(msg)
            self.taken += len(out)
        return out

    @property
    def missed(self) -> int:
        """Messages that were dropped (the oldest, to stay in bounds) before the reader took
        them."""
        return max(0, self.seen - self.taken - len(self._buffer))


def _footprint(msg: Any, depth: int) -> tuple[int, bool]:
    """Roughly the bytes ``msg`` holds (arrays by ``nbytes``; containers by their first
    few items, scaled to their length), and whether it holds a GPU array."""
    if type(msg) in _SCALARS:
        return _SMALL, False
    if hasattr(msg, "__cuda_array_interface__"):
        return int(getattr(msg, "nbytes", 0) or 0), True
    if isinstance(msg, str | bytes | bytearray):
        return len(msg) + _SMALL, False
    nbytes = getattr(msg, "nbytes", None)
    if isinstance(nbytes, int):  # a NumPy array, a memoryview, anything array-like
        return nbytes + _SMALL, False
    if depth >= 3:
        return sys.getsizeof(msg, _SMALL), False
    items: list[Any]
    if isinstance(msg, dict):
        items = [*msg.keys(), *msg.values()]
    elif isinstance(msg, list | tuple | set | frozenset):
        items = list(msg)
    elif dataclasses.is_dataclass(msg) and not isinstance(msg, type):
        items = [getattr(msg, f.name, None) for f in dataclasses.fields(msg)]
    elif hasattr(msg, "__dict__"):
        items = list(vars(msg).values())
    else:
        return sys.getsizeof(msg, _SMALL), False
    size, device = sys.getsizeof(msg, _SMALL), False
    head = items[:_FOOTPRINT_ITEMS]
    for item in head:
        n, d = _footprint(item, depth + 1)
        size, device = size + n * len(items) // len(head), device or d
    return size, device


_FOOTPRINT_ITEMS: Final = 16


class OutPort:
    """One output port of one kernel (shared by all its replicas)."""

    __slots__ = (
        "_rr",
        "fanout",
        "kernel_id",
        "name",
        "output",
        "output_inbox",
        "sends_to_one",
        "single",
        "taps",
        "targets",
    )

    def __init__(self, kernel_id: str, name: str, output_capacity: int) -> None:
        self.kernel_id = kernel_id
        self.name = name
        self.targets: list[Queue] = []
        self.fanout: Fanout = "broadcast"
        self.output_inbox = Inbox(f"{kernel_id}.{name}")
        self.output = Queue(
            f"{kernel_id}.{name} -> (output)",
            self.output_inbox,
            output_capacity,
            producer=kernel_id,
            port=name,
        )
        #: The one queue a message goes to when there is exactly one.
        self.sends_to_one: Queue | None = self.output
        #: ``sends_to_one`` while nobody taps the port: ``KernelContext.send``'s inlined hot path.
        self.single: Queue | None = self.output
        self.taps: list[Tap] = []
        self._rr = 0

    def connect(self, queue: Queue, fanout: Fanout | None = None) -> None:
        self.targets.append(queue)
        if fanout is not None:
            self.fanout = fanout
        self._route()

    def disconnect_all(self) -> list[Queue]:
        """Unwire every edge (what is sent goes to the port's own output queue again)."""
        old, self.targets = self.targets, []
        self._route()
        return old

    def _route(self) -> None:
        if not self.targets:
            self.sends_to_one = self.output
        else:
            self.sends_to_one = self.targets[0] if len(self.targets) == 1 else None
        self.single = None if self.taps else self.sends_to_one

    def add_tap(self, tap: Tap) -> None:
        self.taps.append(tap)
        self._route()

    def remove_tap(self, tap: Tap) -> None:
        if tap in self.taps:
            self.taps.remove(tap)
        self._route()

    async def send(self, msg: Any) -> None:
        """Deliver one message (slow path: a tap, several targets or a full queue)."""
        if self.taps:
            for tap in self.taps:
                tap.offer(msg)
        single = self.sends_to_one
        if single is not None:
            if not single.put_nowait(msg):
                await single.put(msg)
            return
        targets = self.targets
        if self.fanout == "round_robin":
            q = targets[self._rr % len(targets)]
            self._rr += 1
            if not q.put_nowait(msg):
                await q.put(msg)
            return
        for q in targets:
            if not q.put_nowait(msg):
                await q.put(msg)

    async def send_many(self, msgs: Sequence[Any]) -> None:
        if self.taps:
            for tap in self.taps:
                tap.offer_many(msgs)
        single = self.sends_to_one
        if single is not None:
            await single.put_many(msgs)
            return
        targets = self.targets
        if self.fanout == "round_robin":
            n = len(targets)
            start = self._rr
            self._rr += len(msgs)
            for i in range(n):
                share = msgs[(i - start) % n :: n]
                if share:
                    await targets[i].put_many(share)
            return
        for q in targets:
            await q.put_many(msgs)
