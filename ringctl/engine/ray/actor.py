"""The Ray actor that hosts one replica of one kernel (imported only inside Ray workers).

Inside the actor the kernel runs exactly as in the local engine: the same
``KernelContext``, the same ``Inbox`` and ``Queue`` (so capacity and backpressure work
the same), the same lifecycle flags. What differs is the edge between two actors: the
producer's port feeds a local *outbox* queue (edge capacity, blocking), and a pump task
per consumer replica moves its contents to that replica in batches (up to ``MAX_BATCH``
messages), with up to ``WINDOW`` push calls and ``MAX_HELD`` messages in flight. As in
Nagle's algorithm, a pump with room sends what is queued at once (a lone message pays
one call, no wait); what is sent while there is none waits and goes in the next batch. The
calls are numbered, and the consumer queues each producer's in that order (``InOrder``:
Ray may start an async actor's calls out of order), so per-edge order holds; a full
consumer inbox holds the pushes, then the window, then the outbox, then the producer.

What the kernel prints or logs is captured as on the local engine
(``ringctl.engine.local.output``), kept in a bounded buffer and handed to the driver with
each ``probe``, which writes it to the run's kernel log: ``ringctl logs`` reads it there.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import secrets
import socket
import sys
import time
import traceback
from collections import deque
from functools import partial
from typing import Any, NamedTuple

from ray.exceptions import RayActorError

from ringctl.engine.local import output
from ringctl.engine.local.ports import OutPort, Tap
from ringctl.engine.local.queues import Backpressure, Inbox, Queue
from ringctl.kernel.context import KernelContext

#: Messages per push call, push calls in flight, and messages in those calls, per edge
#: and consumer replica.
MAX_BATCH = 4096
WINDOW = 8
MAX_HELD = 8192
#: Output lines kept between two probes; past it the oldest go (and are counted).
MAX_OUTPUT = 10_000


class _Push(NamedTuple):
    """One push call in flight: its place in the pump's order, what it carries, its end."""

    seq: int
    batch: list[Any]
    done: asyncio.Future[Any]


def _wake(fut: asyncio.Future[None], _: object) -> None:
    if not fut.done():
        fut.set_result(None)


class InOrder:
    """Lets numbered calls from each sender through one at a time, in their order.

    ``wait(key, seq, first)`` returns once every call of ``key`` before ``seq`` is
    ``done``; ``first`` is the sender's oldest call not yet answered, so a receiver that
    never heard from it (a restarted consumer) starts there instead of waiting for calls
    that went elsewhere. A call numbered below the next expected (sent again) waits for
    nothing.
    """

    def __init__(self) -> None:
        self.next: dict[Any, int] = {}
        self.early: dict[tuple[Any, int], asyncio.Future[None]] = {}

    async def wait(self, key: Any, seq: int, first: int) -> None:
        if first > self.next.get(key, -1):
            self._move(key, first)  # what came before ``first`` will not come here
        if seq > self.next[key]:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.early[(key, seq)] = fut
            await fut

    def done(self, key: Any, seq: int) -> None:
        if seq >= self.next[key]:
            self._move(key, seq + 1)

    def _move(self, key: Any, expected: int) -> None:
        self.next[key] = expected
        fut = self.early.pop((key, expected), None)
        if fut is not None and not fut.done():
            fut.set_result(None)


class _Output:
    """This worker's captured kernel output, until the driver's next probe takes it."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.dropped = 0
        self.installed: Any = None  # the capture, held for as long as the process lives

    def __call__(self, record: output.OutputRecord) -> None:
        if len(self.records) >= MAX_OUTPUT:
            del self.records[0]
            self.dropped += 1
        self.records.append(record.as_dict())

    def install(self) -> None:
        if self.installed is None:  # once per worker process, for as long as it lives
            self.installed = output.capture(self)
            self.installed.__enter__()

    def take(self) -> list[dict[str, Any]]:
        records, self.records = self.records, []
        if self.dropped:
            first = records[0] if records else {"kernel": "?", "replica": 0}
            note = f"{self.dropped} lines of output were dropped (more than {MAX_OUTPUT} "
            note += "between two reads by the driver)"
            records.insert(0, {**first, "stream": "stderr", "text": note, "ts": time.time()})
            self.dropped = 0
        return records


_OUTPUT = _Output()


class KernelHost:
    """One kernel replica inside a Ray worker process. Every method is called by the driver."""

    def __init__(
        self,
        kernel_id: str,
        replica: int,
        replicas: int,
        kernel_bytes: bytes,
        params_bytes: bytes,
        backend: str,
        queue_size: int,
        sys_path: list[str],
        state_bytes: bytes,
        metrics: dict[str, Any] | None = None,
    ) -> None:
        for folder in reversed(sys_path):
            if folder not in sys.path:
                sys.path.insert(0, folder)
        # All three may name classes from the topology's modules: read them only now.
        self.kernel = pickle.loads(kernel_bytes)
        params: Any = pickle.loads(params_bytes)
        state: dict[str, Any] | None = pickle.loads(state_bytes)
        self.kernel_id = kernel_id
        self.replica = replica
        self.backend = backend
        self.params = params
        self.taps: dict[str, tuple[str, Tap]] = {}  # tap id -> (port, tap)
        self.leaving: set[tuple[str, int]] = set()  # pumps to end (their consumer goes)
        _OUTPUT.install()
        self.queue_size = queue_size
        self.inbox = Inbox(kernel_id)
        self.ports: dict[str, OutPort] = {}
        self.edges: dict[str, Queue] = {}  # inbound edge id -> its queue in our inbox
        self.external: Queue | None = None
        self.pumps: dict[tuple[str, int], asyncio.Task[None]] = {}
        self.targets: dict[tuple[str, int], Any] = {}  # (edge id, replica) -> actor handle
        self.outboxes: dict[str, Queue] = {}
        self.in_flight = 0
        self.in_flight_by: dict[str, int] = {}  # edge id -> messages in a push call
        # Per outbound edge, what the outbox accepted but will never push: the law counts
        # them on that edge (lost: the consumer is gone, or the message cannot be sent;
        # left: this replica was stopped before it could push them).
        self.out_lost: dict[str, int] = {}
        self.out_left: dict[str, int] = {}
        # Who this actor is (one per process), what its pushes delivered per outbound
        # edge, and what arrived per inbound edge from each producer actor: when an actor
        # dies, the driver compares the two to tell what it held that still arrived.
        self.uid = secrets.token_hex(8)
        self.pushed: dict[str, int] = {}
        self.received_from: dict[str, dict[str, int]] = {}
        self.closed_edges: set[str] = set()  # consumers that will never run again
        # Push calls are numbered per (edge, consumer replica); a consumer queues each
        # producer's pushes in that order, holding any that came early.
        self.seq: dict[tuple[str, int], int] = {}
        self.in_order = InOrder()
        self.task: asyncio.Task[Any] | None = None
        self.error: str | None = None
        self.error_tb: str | None = None
        self.completed = False
        self.cuda_device = 0 if backend == "cuda" else None
        self.ctx = self._context(replicas, state)
        self.ctx.metrics.update(metrics or {})  # a relaunch goes on from the last figures

    def _context(self, replicas: int, state: dict[str, Any] | None) -> KernelContext:
        return KernelContext(
            self.kernel_id,
            inbox=self.inbox,
            ports=self.ports,
            port_factory=self._port,
            params=self.params,
            replica=self.replica,
            replicas=replicas,
            backend=self.backend,
            device=self.cuda_device,
            state=state,
        )

    def _port(self, name: str) -> OutPort:
        port = self.ports.get(name)
        if port is None:
            port = OutPort(self.kernel_id, name, self.queue_size)
            self.ports[name] = port
        return port

    def node(self) -> str:
        return socket.gethostbyname(socket.gethostname())

    async def setup(self) -> dict[str, Any]:
        await self._setup_hook()
        return {"pid": os.getpid(), "node": self.node(), "node_id": _node_id()}

    async def _setup_hook(self) -> None:
        hook = self.kernel.setup
        if hook is not None:
            try:
                with output.kernel_scope(self.kernel_id, self.replica):
                    result = hook(self.ctx)
                    if asyncio.iscoroutine(result):
                        await result
            except BaseException as exc:
                output.emit(self.kernel_id, self.replica, "traceback", traceback.format_exc())
                if isinstance(exc, SystemExit | KeyboardInterrupt | GeneratorExit):
                    # Out of an actor method SystemExit would end the actor: a failed set-up.
                    raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc
                raise

    def set_replicas(self, replicas: int) -> None:
        self.ctx.replicas = replicas

    # -- wiring --------------------------------------------------------------------------

    def add_in_edge(self, edge_id: str, capacity: int, policy: str) -> None:
        if edge_id not in self.edges:
            self.edges[edge_id] = Queue(edge_id, self.inbox, capacity, Backpressure(policy))
        else:  # wired again after a rewire took it away: its counts go on
            self.edges[edge_id].retune(capacity, policy)

    def add_out_edge(
        self, port: str, edge_id: str, capacity: int, handles: list[Any], fanout: str | None
    ) -> None:
        out = self._port(port)
        outbox_inbox = Inbox(f"{edge_id} (outbox)")
        outbox = Queue(f"{edge_id} (outbox)", outbox_inbox, capacity)
        self.outboxes[edge_id] = outbox
        out.connect(outbox, fanout)  # type: ignore[arg-type]
        for replica, handle in enumerate(handles):
            self.targets[(edge_id, replica)] = handle
            self.pumps[(edge_id, replica)] = asyncio.get_running_loop().create_task(
                self._pump(edge_id, replica, outbox_inbox)
            )

    def add_target(self, edge_id: str, replica: int, handle: Any) -> None:
        """The consumer gained a replica: a pump for it shares the edge's outbox."""
        outbox = self.outboxes.get(edge_id)
        if outbox is None or (edge_id, replica) in self.pumps:
            return
        self.leaving.discard((edge_id, replica))
        self.targets[(edge_id, replica)] = handle
        self.pumps[(edge_id, replica)] = asyncio.get_running_loop().create_task(
            self._pump(edge_id, replica, outbox.inbox)
        )

    async def remove_target(self, edge_id: str, replica: int) -> None:
        """The consumer loses a replica: its pump ends once its batch in flight arrived
        (what the outbox holds goes on through the other pumps)."""
        pump = self.pumps.get((edge_id, replica))
        if pump is None:
            return
        self.leaving.add((edge_id, replica))
        self.outboxes[edge_id].inbox.wake_all()
        await asyncio.wait({pump})
        del self.pumps[(edge_id, replica)]
        self.targets.pop((edge_id, replica), None)

    def retarget(self, edge_id: str, replica: int, handle: Any) -> None:
        """The consumer was restarted: later batches go to its new actor."""
        self.closed_edges.discard(edge_id)
        self.targets[(edge_id, replica)] = handle

    def close_edge(self, edge_id: str) -> None:
        """The consumer will never run again: what the outbox holds for it, and whatever
        is sent to it from now on, is counted as lost instead of waited on."""
        self.closed_edges.add(edge_id)

    # -- rewiring while the kernel runs (``ringctl apply``) ------------------------------

    def rewire_port(
        self, port: str, cut: list[str], wire: list[tuple[str, int, list[Any], str | None]]
    ) -> None:
        """Switch ``port`` in one step: the edges ``cut`` get nothing more (what their
        outboxes hold still goes to their consumers), the ``wire`` ones (edge id,
        capacity, consumer handles, fanout) get every message sent from now on. Nothing
        is awaited, so each message goes where it went before or where it goes now."""
        out = self._port(port)
        gone = [self.outboxes[edge_id] for edge_id in cut if edge_id in self.outboxes]
        kept = [q for q in out.targets if all(q is not g for g in gone)]
        fanout = out.fanout
        out.disconnect_all()
        for q in kept:
            out.connect(q, fanout)
        for edge_id, capacity, handles, edge_fanout in wire:
            outbox = self.outboxes.get(edge_id)
            if outbox is None:
                self.add_out_edge(port, edge_id, capacity, handles, edge_fanout)
                continue
            outbox.retune(capacity, outbox.policy)  # the same edge wired again
            out.connect(outbox, edge_fanout)  # type: ignore[arg-type]
            for replica, handle in enumerate(handles):
                self.targets[(edge_id, replica)] = handle
                self.add_target(edge_id, replica, handle)

    def retune_edge(
        self, edge_id: str, port: str, capacity: int, policy: str, fanout: str | None
    ) -> None:
        """A wired edge's new capacity and backpressure (its queue here, if this actor
        consumes it; its outbox, if it produces it) and its port's fanout."""
        queue = self.edges.get(edge_id)
        if queue is not None:
            queue.retune(capacity, policy)
        outbox = self.outboxes.get(edge_id)
        if outbox is not None:
            outbox.retune(capacity, outbox.policy)
            out = self._port(port)
            out.fanout = fanout or "broadcast"  # type: ignore[assignment]
            out._route()

    def forget_out_edge(self, port: str, edge_id: str) -> None:
        """The edge's consumer was removed with everything it took processed: the edge
        and what it counted go (the consumer's id may be launched anew)."""
        if edge_id in self.outboxes:
            self.rewire_port(port, [edge_id], [])
            del self.outboxes[edge_id]
        for key in [key for key in self.pumps if key[0] == edge_id]:
            self.pumps.pop(key).cancel()
            self.targets.pop(key, None)
        for counts in (self.pushed, self.out_lost, self.out_left):
            counts.pop(edge_id, None)
        self.closed_edges.discard(edge_id)

    def _count(self, into: dict[str, int], edge_id: str, n: int) -> None:
        if n:
            into[edge_id] = into.get(edge_id, 0) + n

    async def _pump(self, edge_id: str, replica: int, outbox: Inbox) -> None:
        """Move the outbox's messages to one consumer replica: up to ``WINDOW`` push calls
        in flight, each with what was queued when it left (up to ``MAX_BATCH``). Calls
        settle in the order they left, and the consumer queues them in that order."""
        key = (edge_id, replica)
        loop = asyncio.get_running_loop()
        flight: deque[_Push] = deque()
        held = 0  # messages in flight, at most MAX_HELD
        try:
            while True:
                leaving = key in self.leaving
                room = MAX_HELD - held
                if not leaving and len(flight) < WINDOW and room > 0:
                    batch = outbox.get_many_nowait(min(MAX_BATCH, room))
                    if batch:
                        held += len(batch) if self._send(key, batch, flight) else 0
                        continue
                if flight and flight[0].done.done():
                    held -= len(flight[0].batch)
                    await self._settle(key, flight)
                    continue
                if not flight and leaving:
                    return
                wake: asyncio.Future[None] = loop.create_future()
                if len(flight) < WINDOW and room > 0 and not leaving:
                    outbox.waiters.append(wake)  # nothing in flight: sent as it comes
                if not flight:
                    await wake
                    continue
                # Calls in flight: wait for the oldest to settle, or (room in the window)
                # for more to send. What comes while the window is full is coalesced.
                woke = partial(_wake, wake)
                oldest = flight[0].done
                oldest.add_done_callback(woke)
                await wake
                oldest.remove_done_callback(woke)
        except Exception as exc:
            # Not a death (a message that cannot be pickled, say): retrying cannot help,
            # so the kernel fails with the reason; what is still in flight may arrive.
            self.error = f"cannot deliver to {edge_id}: {type(exc).__name__}: {exc}"
            self.error_tb = traceback.format_exc()
            while flight:
                push = flight[0]
                try:
                    await push.done
                    self._count(self.pushed, edge_id, len(push.batch))
                except Exception:
                    self._count(self.out_lost, edge_id, len(push.batch))
                self._landed(edge_id, flight.popleft().batch)
        finally:
            for push in flight:  # cancelled by a stop: ``terminate`` counted them pending
                self._landed(edge_id, push.batch)

    def _send(self, key: tuple[str, int], batch: list[Any], flight: deque[_Push]) -> bool:
        """One push call. ``first``, the oldest call of this pump not yet settled, tells a
        consumer that never heard from this pump where its numbering starts."""
        edge_id = key[0]
        if edge_id in self.closed_edges:
            self._count(self.out_lost, edge_id, len(batch))
            return False
        seq = self.seq.get(key, 0)
        first = flight[0].seq if flight else seq
        try:
            ref = self.targets[key].push.remote((edge_id, batch, self.uid, seq, first))
        except Exception:
            self._count(self.out_lost, edge_id, len(batch))
            raise
        self.seq[key] = seq + 1
        flight.append(_Push(seq, batch, asyncio.wrap_future(ref.future())))
        self.in_flight += len(batch)
        self.in_flight_by[edge_id] = self.in_flight_by.get(edge_id, 0) + len(batch)
        return True

    async def _settle(self, key: tuple[str, int], flight: deque[_Push]) -> None:
        """The oldest call in flight ended: count it pushed, or (its consumer died) send it
        again, in order, once the consumer is restarted, or count it lost if it never is."""
        edge_id = key[0]
        push = flight[0]
        try:
            try:
                push.done.result()
            except RayActorError:
                while edge_id not in self.closed_edges:  # held until retargeted
                    await asyncio.sleep(0.1)
                    parcel = (edge_id, push.batch, self.uid, push.seq, push.seq)
                    try:
                        await self.targets[key].push.remote(parcel)
                        break
                    except RayActorError:
                        continue
                else:
                    self._count(self.out_lost, edge_id, len(push.batch))
                    return
            self._count(self.pushed, edge_id, len(push.batch))
        except Exception:
            self._count(self.out_lost, edge_id, len(push.batch))
            raise
        finally:
            flight.popleft()
            self._landed(edge_id, push.batch)

    def _landed(self, edge_id: str, batch: list[Any]) -> None:
        self.in_flight -= len(batch)
        self.in_flight_by[edge_id] -= len(batch)

    async def push(self, parcel: tuple[str, list[Any], str, int, int]) -> None:
        """Messages from an upstream actor: ``(edge id, batch, sender, seq, first)`` in one
        argument (each argument of a call costs its own serialization); waits for space
        when the edge blocks.

        A producer has several pushes in flight; Ray may start them out of order, so each
        waits here for the one before it from the same producer (``seq``)."""
        edge_id, batch, sender, seq, first = parcel
        turn = (edge_id, sender)
        await self.in_order.wait(turn, seq, first)
        try:
            arrived = self.received_from.setdefault(edge_id, {})
            arrived[sender] = arrived.get(sender, 0) + len(batch)
            await self.edges[edge_id].put_many(batch)
        finally:
            self.in_order.done(turn, seq)

    async def send_external(self, msgs: list[Any]) -> None:
        if self.external is None:
            self.external = Queue(f"(external) -> {self.kernel_id}", self.inbox, self.queue_size)
        await self.external.put_many(msgs)

    async def receive_output(self, port: str, max_items: int, timeout: float | None) -> list[Any]:
        out = self._port(port)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            batch = out.output_inbox.get_many_nowait(max_items)
            if batch or (deadline is not None and time.monotonic() >= deadline) or self.done:
                return batch
            await asyncio.sleep(0.005)

    # -- lifecycle -----------------------------------------------------------------------

    def activate(self, active: bool = True) -> None:
        self.ctx.is_active = active
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        output.mark(self.kernel_id, self.replica, self.ctx.record_error)
        if self.cuda_device is not None:
            import cupy

            cupy.cuda.Device(self.cuda_device).use()
        try:
            await self.kernel.func(self.ctx)
            self.completed = not self.ctx.should_terminate
        except TimeoutError:
            if not self.ctx.should_terminate:
                self._fail()
        except asyncio.CancelledError:
            raise
        except BaseException:
            self._fail()

    def _fail(self) -> None:
        exc = sys.exc_info()[1]
        self.error = f"{type(exc).__name__}: {exc}"
        self.error_tb = traceback.format_exc()
        output.emit(self.kernel_id, self.replica, "traceback", self.error_tb)

    def deactivate(self) -> None:
        self.ctx.is_active = False
        self.ctx._wake()

    def reactivate(self) -> None:
        self.ctx.is_active = True
        self.ctx._wake()

    async def terminate(self, timeout: float, reason: str = "left") -> dict[str, Any]:
        """Stop the body (cancel past ``timeout``), flush the outboxes, report what was left."""
        forced = await self._stop_body(timeout)
        # What the body already sent is delivered before we report (nothing silent).
        flush_deadline = time.monotonic() + max(1.0, timeout)
        while (self.in_flight or any(len(q) for q in self.outboxes.values())) and (
            time.monotonic() < flush_deadline
        ):
            await asyncio.sleep(0.005)
        pending = {edge_id: self._pending(edge_id) for edge_id in self.outboxes}
        for pump in self.pumps.values():
            pump.cancel()
        await asyncio.gather(*self.pumps.values(), return_exceptions=True)
        # What the pumps could not push in time is counted on its edge, as the inbox
        # counts what it still held.
        for edge_id, outbox in self.outboxes.items():
            into = self.out_left if reason == "left" else self.out_lost
            self._count(into, edge_id, pending[edge_id])
            outbox.inbox.get_many_nowait(len(outbox) or 1)
        unsent = sum(pending.values())
        left = self.inbox.close(reason)
        return {"forced": forced, "left": left, "unsent": unsent, "probe": self.probe()}

    async def _stop_body(self, timeout: float) -> bool:
        """Ask the body to stop after the message in hand; cancel it past ``timeout``.
        Returns whether it had to be cancelled."""
        ctx = self.ctx
        ctx.should_terminate = True
        ctx._wake()
        forced = False
        if self.task is not None and not self.task.done():
            done, _ = await asyncio.wait({self.task}, timeout=max(0.0, timeout))
            if not done:
                forced = True
                deadline = time.monotonic() + 1.0
                while not self.task.done() and time.monotonic() < deadline:
                    self.task.cancel()
                    await asyncio.wait({self.task}, timeout=0.05)
        return forced

    async def restart(
        self, timeout: float, kernel_bytes: bytes | None = None, params_bytes: bytes | None = None,
        queue_size: int | None = None, keep_state: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        """A new instance of the kernel in this actor: the body is stopped as on
        ``terminate``, then a new context (same inbox, queues and outboxes, ``ctx.state``
        unless ``keep_state`` is false, and counters carried over) runs the set-up hook,
        with new code, params or queue size where given. ``activate`` starts it."""
        forced = await self._stop_body(timeout)
        if kernel_bytes is not None:
            self.kernel = pickle.loads(kernel_bytes)
        if params_bytes is not None:
            self.params = pickle.loads(params_bytes)
        if queue_size is not None:
            self.queue_size = queue_size
        old = self.ctx
        ctx = self._context(old.replicas, old.state if keep_state else None)
        ctx.messages_in, ctx.messages_out = old.messages_in, old.messages_out
        ctx.errors = old.errors + (1 if self.error else 0)
        ctx._latency = old._latency
        ctx.metrics.update(old.metrics)
        self.ctx, self.task = ctx, None
        self.error = self.error_tb = None
        self.completed = False
        await self._setup_hook()
        return {"forced": forced, "probe": self.probe()}

    async def stop_for_scale(self, timeout: float) -> bool:
        """This replica leaves: its body stops (its queued messages are handed over)."""
        return await self._stop_body(timeout)

    def hand_over(self) -> dict[str, list[Any]]:
        """Everything queued here, per inbound edge (``""``: from outside), taken out to
        be queued at another replica of the kernel."""
        moved = {edge_id: q.withdraw() for edge_id, q in self.edges.items()}
        if self.external is not None:
            moved[""] = self.external.withdraw()
        return {edge_id: items for edge_id, items in moved.items() if items}

    def take_over(self, moved: dict[str, list[Any]]) -> None:
        """Messages a leaving replica handed over: queued here, in their order."""
        for edge_id, items in moved.items():
            if edge_id:
                self.edges[edge_id].adopt(items)
            else:
                if self.external is None:
                    name = f"(external) -> {self.kernel_id}"
                    self.external = Queue(name, self.inbox, self.queue_size)
                self.external.adopt(items)

    # -- taps ----------------------------------------------------------------------------

    def tap_attach(self, port: str, tap_id: str, capacity: int) -> None:
        if tap_id not in self.taps:
            tap = Tap(capacity)
            self._port(port).add_tap(tap)
            self.taps[tap_id] = (port, tap)

    def tap_take(self, port: str, tap_id: str, capacity: int, max_items: int) -> list[Any]:
        """What the tap saw on ``port`` since the last call (a new replica's is attached
        on the first)."""
        self.tap_attach(port, tap_id, capacity)
        return self.taps[tap_id][1].take(max_items)

    def untap(self, tap_id: str) -> None:
        held = self.taps.pop(tap_id, None)
        if held is not None and held[0] in self.ports:
            self.ports[held[0]].remove_tap(held[1])

    def _pending(self, edge_id: str) -> int:
        return len(self.outboxes[edge_id]) + self.in_flight_by.get(edge_id, 0)

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()

    def probe(self) -> dict[str, Any]:
        """Everything the driver shows or decides on, in one small document."""
        ctx = self.ctx
        p50, p99 = ctx._latency.percentiles_us()
        return {
            "uid": self.uid,
            "active": ctx.is_active,
            "done": self.done,
            "error": self.error,
            "traceback": self.error_tb,
            "completed": self.completed,
            "messages_in": ctx.messages_in,
            "messages_out": ctx.messages_out,
            "errors": ctx.errors + (1 if self.error else 0),
            "drops": self.inbox.drops,
            "inbox_depth": len(self.inbox),
            "inbox_capacity": self.inbox.capacity or self.queue_size,
            "inbox_high_water": self.inbox.high_water,
            "waiting": ctx._waiting,
            "blocked": ctx._blocked,
            "pending_out": self.in_flight + sum(len(q) for q in self.outboxes.values()),
            "latency_p50_us": p50,
            "latency_p99_us": p99,
            "metrics": dict(ctx.metrics),
            "state": dict(ctx.state),
            "output": _OUTPUT.take(),
            "outboxes": {
                edge_id: {
                    "pending": self._pending(edge_id),
                    "pushed": self.pushed.get(edge_id, 0),
                    "lost": self.out_lost.get(edge_id, 0),
                    "left": self.out_left.get(edge_id, 0),
                }
                for edge_id in self.outboxes
            },
            "edges": {
                edge_id: {
                    "depth": len(q),
                    "drops": q.drops,
                    "messages": q.messages,
                    "delivered": q.delivered,
                    "lost": q.lost,
                    "left": q.left,
                    "high_water": q.high_water,
                    "blocked_s": q.blocked_s,
                    "from": dict(self.received_from.get(edge_id, {})),
                }
                for edge_id, q in self.edges.items()
            },
        }


def _node_id() -> str | None:
    """Ray's id of the node this worker runs on (two nodes may share one address)."""
    try:
        import ray

        return str(ray.get_runtime_context().get_node_id())
    except Exception:
        return None
