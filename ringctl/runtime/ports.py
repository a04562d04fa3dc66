"""A kernel's named output ports and where each one's messages go.

A port with no edge keeps what is sent to it in its own output queue, which
``runtime.receive(kernel_id, port=...)`` reads (the spec's behaviour). A port with edges
sends each message to every edge (``broadcast``, the default: the same object, not a
copy) or to one edge in turn (``round_robin``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from ringctl.runtime.queues import Inbox, Queue

__all__ = ["Fanout", "OutPort"]

Fanout = Literal["broadcast", "round_robin"]


class OutPort:
    """One output port of one kernel (shared by all its replicas)."""

    __slots__ = (
        "_rr",
        "fanout",
        "kernel_id",
        "name",
        "output",
        "output_inbox",
        "single",
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
        #: The one queue a message goes to when there is exactly one: the hot path.
        self.single: Queue | None = self.output
        self._rr = 0

    @property
    def connected(self) -> bool:
        return bool(self.targets)

    def connect(self, queue: Queue, fanout: Fanout | None = None) -> None:
        self.targets.append(queue)
        if fanout is not None:
            self.fanout = fanout
        self.single = self.targets[0] if len(self.targets) == 1 else None

    async def send(self, msg: Any) -> None:
        """Deliver one message (slow path: several targets or a full queue)."""
        single = self.single
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
        single = self.single
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
