"""Persistent kernels inside a topology: each one is an ordinary ``RingKernel`` to the runtime.

The runtime launches, wires, pauses and terminates it like any kernel; what it runs is a
bridge body plus a ``KernelControl`` that the runtime delegates the lifecycle to:

- launch (the set-up hook): ``PersistentGroup.launch``: rings, worker, compile, idle loop;
- activate / deactivate / reactivate / terminate: the group's, through the control block,
  so "after deactivate returns, no record is handled" holds here too;
- the body moves records between the kernel's asyncio queues and its rings, in batches:
  NumPy arrays of records in (one array is one message, any length), and one array per
  ring pop out (a copy: ring slots are reused). Between two persistent kernels the body
  does nothing: the records go ring to ring in the worker;
- backpressure: while the ring is full the body stops taking from its inbox, so the
  queue in front of it fills and its producer blocks (or drops, by that queue's policy);
- the heartbeat, ring depth and record counters go into ``ctx.metrics``, which ``ringctl
  ps``, the dashboard and the Prometheus endpoint show for every kernel.

A persistent kernel that fails (its handler raised, or its worker died) fails the body
with that error, so restart policies apply as to any kernel; a relaunch runs the set-up
hook again, which starts a new loop on the kept rings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ringctl.engine.lifecycle import KernelState
from ringctl.engine.local.persistent.host import PersistentGroup, last_line
from ringctl.kernel.persistent import LoopOptions, PersistentKernel
from ringctl.kernel.ring import RingKernel

if TYPE_CHECKING:
    from ringctl.engine.accounting import QueueAccount
    from ringctl.kernel.context import KernelContext

__all__ = ["PersistentBridges", "PersistentFailed", "PersistentReplicaError"]

_IDLE_WAIT_S: Final = 0.002  # how long an idle bridge waits in receive before polling rings
_METRICS_EVERY_S: Final = 0.1
_STATE_EVERY_S: Final = 0.01
_MAX_TAKE: Final = 64  # messages (arrays) taken from the inbox at once


class PersistentReplicaError(RuntimeError):
    """A second replica of a persistent kernel was asked for (``ringctl scale``)."""


class PersistentFailed(RuntimeError):
    """The compiled loop behind a kernel failed; the message is the worker's report."""


class PersistentBridges:
    """One topology's persistent kernels: one group (one worker), one bridge per kernel."""

    def __init__(self, name: str, *, sys_path: Sequence[str] = ()) -> None:
        self.group = PersistentGroup(name, sys_path=sys_path)

    def kernel(
        self,
        kernel_id: str,
        entry: str,
        kernel: PersistentKernel,
        *,
        params: Mapping[str, Any],
        ring: int | None,
        options: LoopOptions,
    ) -> RingKernel:
        """The ``RingKernel`` the runtime launches for this persistent kernel."""
        self.group.add(
            kernel_id, entry, kernel=kernel, params=params, capacity=ring, options=options
        )
        bridge = _Bridge(self.group, kernel_id)
        return RingKernel(
            func=bridge.body,
            kernel_id=kernel_id,
            queue_size=64,
            setup=bridge.setup,
            backend="cpu",
            doc=kernel.doc,
            control=bridge,
        )

    def connect(self, producer: str, consumer: str) -> None:
        """Records from ``producer`` go to ``consumer`` ring to ring, inside the worker."""
        self.group.connect(producer, consumer)


class _Bridge:
    """The body, set-up hook and lifecycle control of one persistent kernel."""

    def __init__(self, group: PersistentGroup, kernel_id: str) -> None:
        self.group = group
        self.kernel_id = kernel_id
        self.kernel = group.kernel(kernel_id)
        self.pending: np.ndarray[Any, np.dtype[Any]] | None = None  # taken, not yet in the ring
        self.left_in_bridge = 0  # records that were pending when the kernel was terminated
        self.closed_as: str | None = None  # how records discarded for it count (close_input)

    # -- KernelControl -------------------------------------------------------------------

    async def setup(self, ctx: KernelContext) -> None:
        if ctx.replica > 0:  # ringctl scale: one loop reads one ring
            raise PersistentReplicaError(
                f"{self.kernel_id} is a persistent kernel: one compiled loop reads its ring, "
                "so it runs as one replica"
            )
        try:
            if self.group.get_state(self.kernel_id) is KernelState.TERMINATED:
                await self.group.relaunch(self.kernel_id)
            else:
                await self.group.launch(self.kernel_id)
        except BaseException:
            if not self.group.running:  # a failed launch leaves no worker or memory behind
                await self.group.close()
            raise
        self._publish(ctx)

    async def obey(self, action: str) -> None:
        await getattr(self.group, action)(self.kernel_id)

    def accounts(self) -> list[QueueAccount]:
        """The kernel's input ring as one row of the accounting law, in records.

        The records the bridge had taken but not yet pushed when the kernel was stopped
        count as accepted and left, so an array that the asyncio queue delivered to the
        bridge is never half-accounted.
        """
        from ringctl.engine.accounting import QueueAccount

        group, kid = self.group, self.kernel_id
        st = group.stats(kid)
        ended = st.state is KernelState.TERMINATED
        failed = ended and st.error is not None
        depth = st.inbox_depth
        feeder = group.feeder(kid)
        pending = 0 if self.pending is None else len(self.pending)
        # A kernel that failed ended without terminate(): what the bridge still held is
        # lost with its ring, as what a stopped kernel held is left with its ring.
        unhandled = depth + pending
        # Sent ring to ring after the kernel's input was closed: counted as it was closed.
        discarded_lost = st.discarded if self.closed_as == "lost" else 0
        return [
            QueueAccount(
                name=f"{kid}.ring",
                producer=feeder or kid,
                port="ring" if feeder else "bridge",
                consumer=f"{kid} (records)",
                accepted=st.accepted + self.left_in_bridge + pending,
                delivered=st.records_in,
                dropped=st.drops,
                lost=st.lost + (unhandled if failed else 0) + discarded_lost,
                left=(unhandled if ended and not failed else 0)
                + self.left_in_bridge
                + (st.discarded - discarded_lost),
                queued=0 if ended else unhandled,
            )
        ]

    def idle(self) -> bool:
        """No record waits in the bridge, in the kernel's input ring or in an output ring
        that the bridge drains; asked at the instant the runtime checks quiescence."""
        from ringctl.engine.local.persistent.ringops import ring_count

        if self.pending is not None:
            return False
        group, kid = self.group, self.kernel_id
        if group.get_state(kid) is not KernelState.ACTIVE:
            return True
        if ring_count(group.inbox(kid).header):
            return False
        out = group.outbox(kid) if group.reader(kid) is None else None  # drained by the host
        return out is None or ring_count(out.header) == 0

    async def terminate(self, timeout: float) -> tuple[int, bool]:
        left = 0 if self.pending is None else len(self.pending)
        self.left_in_bridge += left
        self.pending = None
        if self.group.get_state(self.kernel_id) is KernelState.TERMINATED:
            left += self.group.stats(self.kernel_id).inbox_depth
            forced = False
        else:
            report = await self.group.terminate(self.kernel_id, timeout)
            left += report.left_in_inbox
            forced = report.forced
        if not self.group.running:
            await self.group.close()  # the last one out stops the worker, frees the memory
        return left, forced

    def close_input(self, reason: str) -> None:
        if self.closed_as is None:  # the first reason stands (a failure, then down's sweep)
            self.closed_as = reason
        self.group.close_input(self.kernel_id)

    def untappable(self, port: str) -> tuple[str, str] | None:
        reader = self.group.reader(self.kernel_id)
        if port != "out" or reader is None:
            return None
        kid = self.kernel_id
        return (
            f"{kid}.out goes ring to ring into {reader}, inside the persistent worker: "
            "its records never pass through Python, so a tap has nothing to copy",
            f"ringctl ps shows the records counters of {kid} and {reader}; "
            f"tap a port after the persistent kernels (or {reader}'s, if the host reads it)",
        )

    def set_params(self, params: Mapping[str, Any]) -> None:
        """The next instance's params: its state array is made anew from them."""
        self.group.set_params(self.kernel_id, params)

    async def stop_for_restart(self, timeout: float) -> bool:
        """Stop the loop, keep the rings, the worker and what the bridge holds: the set-up
        hook of the new instance relaunches the loop (stepping over a record it was stuck
        on) and its body pushes what is pending."""
        if self.group.get_state(self.kernel_id) is KernelState.TERMINATED:
            return False  # it failed: the relaunch starts it again
        report = await self.group.terminate(self.kernel_id, timeout)
        return report.forced

    # -- the body ------------------------------------------------------------------------

    async def body(self, ctx: KernelContext) -> None:
        from ringctl.engine.local.persistent.ringops import ring_count, ring_pop, ring_push

        group, kid = self.group, self.kernel_id
        feeding = group.feeder(kid) is None
        inbox = group.inbox(kid)
        outbox = group.outbox(kid) if group.reader(kid) is None else None
        out_buf = None if outbox is None else np.empty(outbox.capacity, outbox.records.dtype)
        next_metrics = next_state = 0.0
        was_busy = False
        while not ctx.should_terminate:
            now = time.monotonic()
            if now >= next_state:
                next_state = now + _STATE_EVERY_S
                self._raise_if_failed()
            if now >= next_metrics:
                next_metrics = now + _METRICS_EVERY_S
                self._publish(ctx)
            busy = False
            if self.pending is not None:
                took = ring_push(inbox.header, inbox.records, self.pending)
                self.pending = self.pending[took:] if took < len(self.pending) else None
                # A ring that filled up is napped on below, not polled in a busy loop.
                busy = took > 0 and self.pending is None
            if outbox is not None and out_buf is not None:
                n = ring_pop(outbox.header, outbox.records, out_buf)
                if n:
                    busy = True
                    await ctx.send(out_buf[:n].copy())
            if busy:
                was_busy = True
                await asyncio.sleep(0)
                continue
            in_flight = self.pending is not None or ring_count(inbox.header) > 0
            if in_flight:
                await asyncio.sleep(0.0002)  # the kernel is working: not idle
                was_busy = True
                continue
            if was_busy:  # going idle: the figures ps shows are current at quiescence
                was_busy = False
                self._publish(ctx)
            # Idle: wait in receive, so the runtime sees this kernel as waiting.
            try:
                msgs = await ctx.receive_batch(_MAX_TAKE, timeout=_IDLE_WAIT_S)
            except TimeoutError:
                continue
            if not feeding:
                for _ in msgs:
                    ctx.record_error(
                        f"{kid} reads its records from a ring; a message sent to its inbox "
                        "was dropped"
                    )
                continue
            self.pending = self._records(ctx, msgs)
        self._publish(ctx)

    def _records(
        self, ctx: KernelContext, msgs: list[Any]
    ) -> np.ndarray[Any, np.dtype[Any]] | None:
        want = self.kernel.input
        parts = []
        for msg in msgs:
            arr = msg if isinstance(msg, np.ndarray) else np.asarray(msg)
            if arr.dtype != want:
                ctx.record_error(
                    f"{self.kernel_id} takes NumPy arrays of {want}; got "
                    f"{type(msg).__name__} of {arr.dtype}"
                )
                continue
            parts.append(arr.reshape(-1))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _raise_if_failed(self) -> None:
        if self.group.get_state(self.kernel_id) is KernelState.TERMINATED:
            error = self.group.stats(self.kernel_id).error
            if error is not None:
                raise PersistentFailed(last_line(error, error))

    def _publish(self, ctx: KernelContext) -> None:
        st = self.group.stats(self.kernel_id)
        ctx.metrics.update(
            persistent=True,
            heartbeat=st.heartbeat,
            stalled=st.stalled,
            records_in=st.records_in,
            records_out=st.records_out,
            record_errors=st.errors,
            records_lost=st.lost,
            ring_depth=st.inbox_depth,
            ring_capacity=st.inbox_capacity,
        )
