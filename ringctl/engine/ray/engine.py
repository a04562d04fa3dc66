"""``engine: ray``: the same topology, each kernel replica in a Ray actor.

``RayRuntime`` has the local runtime's API (the supervisor cannot tell them apart):
the driver keeps each kernel's lifecycle state with the same transition table, and a
poller reads every actor's ``probe()`` a few times a second, so the synchronous
questions the supervisor asks (state, idle, quiescent, snapshot) are answered from
that cache. Ray does placement, processes and transport; nothing here is a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ringctl.engine.accounting import Accounting, QueueAccount, build_accounting
from ringctl.engine.contract import (
    KernelInfo,
    KernelSnapshot,
    QueueSnapshot,
    RuntimeSnapshot,
    TerminationReport,
    Wire,
)
from ringctl.engine.ledger import KernelBook, check_launch, check_params, check_tap
from ringctl.engine.lifecycle import RUNNING, Action, KernelState
from ringctl.engine.local.backends import resolve_backend
from ringctl.engine.table import KernelTable
from ringctl.engine.telemetry import merge_metrics
from ringctl.exceptions import (
    KernelFailedError,
    KernelLaunchError,
    KernelStateError,
    RunFailedError,
    UserInputError,
)
from ringctl.kernel.ring import RingKernel, as_kernel

if TYPE_CHECKING:
    from ringctl.engine.local.ports import Tap

__all__ = ["RayRuntime", "import_ray"]

log = logging.getLogger("ringctl.engine.ray.engine")
S = KernelState
POLL_S: Final = 0.05
#: How long one poll waits for the actors' answers; an actor that takes longer (a kernel
#: blocking its event loop) is asked again once it has answered, the others meanwhile.
PROBE_WAIT_S: Final = 0.5
#: How long the actors a queue change involves get to answer before it is refused: an
#: actor whose kernel holds its event loop would hold the change (and the supervisor's
#: command lock) for as long.
ANSWER_WAIT_S: Final = 2.0
#: What an actor's ``terminate`` may take beyond twice its timeout before it is killed.
STOP_GRACE_S: Final = 3.0
#: How long a new actor may wait to be placed before its launch fails. An actor that
#: asks for more than any node has free waits forever in Ray; this turns that into an
#: error that names the resources. Generous: an autoscaling cluster may add a node.
PLACEMENT_TIMEOUT_S: Final = 120.0


def _search_path() -> list[str]:
    """The driver's import folders, so workers import kernels the same way."""
    return [p for p in sys.path if p and os.path.isdir(p)]


@contextlib.contextmanager
def _keep_sigterm() -> Iterator[None]:
    """``ray.init`` installs its own SIGTERM handler (exit at once, its processes killed):
    put back the one it replaced, so SIGTERM still starts the supervisor's graceful down
    (the down then shuts Ray down itself)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def import_ray() -> Any:
    """``ray``, or a clear error saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise UserInputError(
            "engine: ray needs Ray, which is not installed",
            hint="pip install 'ringctl[ray]' (or use engine: local)",
        ) from exc
    return ray


@dataclass(eq=False, kw_only=True)
class _RayKernel(KernelBook):
    spec: RingKernel
    kernel_bytes: bytes
    params: Any
    backend: str
    device: str | None
    note: str | None
    queue_size: int
    resources: dict[str, float]
    entry: str | None
    actors: list[Any] = field(default_factory=list)
    hosts: list[dict[str, Any]] = field(default_factory=list)  # setup(): pid, node, node_id
    probes: list[dict[str, Any] | None] = field(default_factory=list)
    error: str | None = None
    error_tb: str | None = None
    saved_state: dict[str, Any] = field(default_factory=dict)  # ctx.state of dead actors
    base: dict[str, int] = field(
        default_factory=lambda: {"in": 0, "out": 0, "errors": 0, "drops": 0}
    )  # what replaced actors counted, so a restart never makes a count go back
    #: ``reconfigure``: the next restart runs new code, params or queue size, and with
    #: ``keep_state`` false starts from an empty ``ctx.state``.
    reconfigured: bool = False
    drop_state: bool = False


class _Unresponsive(Exception):
    """An actor that did not answer ``terminate`` in time, and was killed."""


@dataclass(frozen=True, slots=True)
class _Edge:
    id: str
    producer: str
    port: str
    consumer: str
    capacity: int
    backpressure: str
    fanout: str | None


_EDGE_SUMS: Final = (
    "depth", "drops", "messages", "blocked_s", "delivered", "lost", "left", "in_doubt"
)  # fmt: skip
#: The producer's side of an edge: what its outboxes hold (``pending``) and what they
#: accepted but will never push (``out_lost``, ``out_left``), or may not have pushed
#: (``out_doubt``). Such a message never reached the consumer's queue, yet the edge
#: accepted it: the law counts it on the edge.
_OUTBOX_SUMS: Final = ("pending", "out_lost", "out_left", "out_doubt")


@dataclass(frozen=True, slots=True)
class _DeadOutbox:
    """What a producer actor's outbox held for one edge at its last probe before it died.

    Its pushes go on after that probe until it dies, and whatever of ``pending`` arrived
    meanwhile is counted by the consumer (``from``, per producer actor): an outbox is
    first in, first out, so what arrived beyond ``pushed`` came out of ``pending`` first.
    """

    edge: str
    uid: str
    pushed: int
    pending: int
    term: str  # lost, or left (killed on a stop)


def _zero_edge() -> dict[str, Any]:
    return {key: 0 for key in (*_EDGE_SUMS, *_OUTBOX_SUMS, "high_water")}


def _add_from(into: dict[str, dict[str, int]], edge_id: str, st: dict[str, Any]) -> None:
    """Add an edge's per-producer-actor arrivals (``from``) to ``into``."""
    for uid, n in (st.get("from") or {}).items():
        by = into.setdefault(edge_id, {})
        by[uid] = by.get(uid, 0) + n


class RayRuntime(KernelTable[_RayKernel]):
    """The ring-kernel runtime API on Ray actors (``launch`` … ``terminate_all``).

    Restart, scale and tap act on the running actors, as the local engine does on its
    tasks: a restart keeps each actor (its queues and ``ctx.state``) and runs a new
    instance of the kernel in it, with new code or params after ``reconfigure``; a
    replica that leaves hands what is queued for it to the others. ``rewire`` and
    ``retune`` change queues while producers run (``ringctl apply``): each producer
    actor switches its port in one step, and what an outbox already held for a queue
    taken away still goes to that queue's consumer.
    """

    name: Final = "ray"

    def __init__(
        self,
        *,
        address: str | None = None,
        shutdown_timeout: float = 5.0,
        placement_timeout: float = PLACEMENT_TIMEOUT_S,
    ) -> None:
        import_ray()  # without Ray, say how to install it before anything is launched
        super().__init__()
        self.address = address
        self.shutdown_timeout = shutdown_timeout
        self.placement_timeout = placement_timeout
        self._ray: Any = None
        self._started_ray = False
        self._actor_class: Any = None
        self._edges: list[_Edge] = []
        #: Queues rewired away: nothing new goes in, what they held still reaches their
        #: consumer, and they stay in the accounting.
        self._retired: list[_Edge] = []
        self._rewired_at = 0.0  # a probe asked before this may not show the last rewire
        self._pending: list[Any] = []  # wiring calls not yet awaited (connect is sync)
        self._poller: asyncio.Task[None] | None = None
        self._idle_history: list[tuple[bool, int]] = []
        self._stopping: set[asyncio.Task[None]] = set()  # replicas stopped after a failure
        self._edge_base: dict[str, dict[str, Any]] = {}  # what replaced actors counted
        #: Per edge, per producer actor: what arrived, as counted by replaced consumers.
        self._edge_from: dict[str, dict[str, int]] = {}
        self._dead_outboxes: list[_DeadOutbox] = []
        #: Edges whose consumer had an actor die: what it counted last may be stale.
        self._stale_edges: set[str] = set()
        self._final = False  # every actor that is alive has sent its last report
        self._taps: dict[int, tuple[str, asyncio.Task[None]]] = {}  # id(tap) -> (id, reader)
        # Kernel id -> its actors' answers to a ``tap`` not yet awaited: the next message
        # the driver sends that kernel waits for them (Ray may run an async actor's calls
        # out of order, and the message must not pass the port before the tap is on it).
        self._attaching: dict[str, list[Any]] = {}

    # -- Ray itself ----------------------------------------------------------------------

    def _ensure_ray(self) -> Any:
        if self._ray is not None:
            return self._ray
        ray = import_ray()
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING,
                "log_to_driver": True,
            }
            if self.address:
                kwargs["address"] = self.address
            # Workers import kernels by module name: give them the driver's search path.
            paths = _search_path()
            kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
            with _keep_sigterm():
                ray.init(**kwargs)
            self._started_ray = True
        from ringctl.engine.ray.actor import KernelHost

        self._actor_class = ray.remote(KernelHost)
        self._ray = ray
        return ray

    # -- bookkeeping ---------------------------------------------------------------------

    @property
    def refused(self) -> list[str]:
        """Ray stops an actor that will not stop by killing it: none is ever left."""
        return []

    def actor_info(self, kernel_id: str) -> list[dict[str, Any]]:
        """Per replica, where its actor runs: ``{"pid", "node", "node_id"}``."""
        return [dict(host) for host in self._require(kernel_id).hosts]

    def _info(self, k: _RayKernel) -> KernelInfo:
        return KernelInfo(
            kernel_id=k.id, state=k.state, replicas=k.replicas, backend=k.backend,
            device=k.device, completed=k.completed, error=k.error, exception=None,
            traceback=k.error_tb, restarts=k.restarts, forced=k.forced,
        )  # fmt: skip

    # -- restart, scale, tap -------------------------------------------------------------

    async def restart(self, kernel_id: str, timeout: float = 5.0) -> TerminationReport:
        """Stop a running kernel and start a new instance that keeps its inbox and state.

        Each actor stops its body as on ``terminate`` (the message in hand finished,
        cancelled after ``timeout``) and runs a new instance in place: what is queued for
        it, its outboxes and ``ctx.state`` stay. An actor that does not answer in time is
        killed and replaced, and what it held is counted (in doubt) as on a death. A
        paused kernel comes back paused.
        """
        k = self._require_running(kernel_id, "restart")
        was = k.state
        self._move(k, "terminate")
        k.terminating = True
        new: tuple[Any, ...] = ()
        if k.reconfigured:
            from ray import cloudpickle

            params = cloudpickle.dumps(check_params(k.id, k.spec, k.params))  # type: ignore[no-untyped-call]
            new = (k.kernel_bytes, params, k.queue_size, not k.drop_state)
            k.reconfigured = k.drop_state = False
        calls = [asyncio.ensure_future(a.restart.remote(timeout, *new)) for a in k.actors]
        await asyncio.wait(calls, timeout=2 * timeout + STOP_GRACE_S)
        gone: list[int] = []
        failure: BaseException | None = None
        for i, call in enumerate(calls):
            if call.done() and not call.cancelled() and call.exception() is None:
                result = call.result()
                k.forced = k.forced or bool(result["forced"])
                k.probes[i] = _with_output(result["probe"])
                continue
            if call.done() and not call.cancelled():
                error = call.exception()
                if not isinstance(error, self._ray.exceptions.RayActorError):
                    failure = failure or error  # the set-up hook raised
                    continue
            call.cancel()
            self._kill([k.actors[i]])
            log.warning("kernel %r: an actor did not restart in time; replaced it", k.id)
            k.forced = True
            k.saved_state.update(self._died(k, i).get("state") or {})
            gone.append(i)
        forced = k.forced
        self._finish(k)
        self._move(k, "relaunch")
        k.restarted()
        k.error = k.error_tb = None
        try:
            if failure is not None:
                raise failure
            if gone:
                await self._replace(k, gone)
        except Exception as exc:
            cause = getattr(exc, "cause", exc)
            k.error = f"{type(cause).__name__}: {cause}"
            await self._stop_failed(k)  # what its actors hold is counted, as on a failure
            raise KernelLaunchError(k.id, k.error) from exc
        if was is not S.LAUNCHED:
            await asyncio.gather(*(a.activate.remote(was is S.ACTIVE) for a in k.actors))
            self._move(k, "activate")
            if was is S.DEACTIVATED:
                self._move(k, "deactivate")
        return TerminationReport(kernel_id, graceful=not forced, forced=forced, left_in_inbox=0)

    async def _replace(self, k: _RayKernel, indices: list[int]) -> None:
        """New actors for the replicas at ``indices`` (theirs died), wired as the old."""
        state = dict(k.saved_state)
        k.saved_state.clear()
        for index in indices:
            fresh: list[Any] = []
            hosts = await self._spawn(k, range(index, index + 1), state, [], fresh)
            k.actors[index], k.hosts[index] = fresh[0], hosts[0]
        await self._wire_anew(k, indices)

    async def _wire_anew(self, k: _RayKernel, indices: Iterable[int]) -> None:
        """Wire the new actors at ``indices`` as those they replace were: into every queue
        that feeds the kernel (an outbox may still hold some for one rewired), producers
        retargeted to them, and onto every queue it feeds."""
        fresh = {i: k.actors[i] for i in indices}
        for edge in self._every_edge():
            if edge.consumer == k.id:
                self._wire_consumer(edge, fresh.values())
                for actor in self._actors_of(edge.producer):
                    self._pending += [
                        actor.retarget.remote(edge.id, i, a) for i, a in fresh.items()
                    ]
            if edge.producer == k.id and edge in self._edges:
                self._wire_producer(edge, fresh.values())
        await self._flush_wiring()

    async def _rescale(self, k: _RayKernel, replicas: int, timeout: float) -> None:
        """New actors get their share of each queue; what was queued for one that leaves
        is handed to the others."""
        feeding = [e.producer for e in self._every_edge() if e.consumer == k.id]
        await self._answering((k.id, *feeding), f"scale {k.id!r}")
        if replicas > k.replicas:
            await self._add_replicas(k, replicas)
        else:
            await self._remove_replicas(k, replicas, timeout)

    async def _add_replicas(self, k: _RayKernel, replicas: int) -> None:
        old = k.replicas
        fresh: list[Any] = []
        k.replicas = replicas
        try:
            # Each actor keeps its own ``ctx.state``: a new one starts empty (a copy of
            # another's would count what that one counted twice).
            hosts = await self._spawn(k, range(old, replicas), {}, [], fresh)
        except Exception as exc:
            k.replicas = old
            self._kill(fresh)
            cause = getattr(exc, "cause", exc)
            raise UserInputError(
                f"kernel {k.id!r} refuses {replicas} replicas: its set-up hook raised "
                f"{type(cause).__name__}: {cause}",
                hint=f"it keeps running as {old}",
            ) from exc
        for edge in self._edges:
            if edge.consumer == k.id:
                self._wire_consumer(edge, fresh)
            if edge.producer == k.id:
                self._wire_producer(edge, fresh)
        await self._flush_wiring()
        for edge in self._edges:
            if edge.consumer == k.id:
                for producer in self._kernels[edge.producer].actors:
                    for index, actor in enumerate(fresh, start=old):
                        await producer.add_target.remote(edge.id, index, actor)
        k.actors.extend(fresh)
        k.hosts.extend(hosts)
        k.probes.extend([None] * len(fresh))
        await asyncio.gather(*(a.set_replicas.remote(replicas) for a in k.actors))
        if k.state is not S.LAUNCHED:
            active = k.state is S.ACTIVE
            await asyncio.gather(*(a.activate.remote(active) for a in fresh))

    async def _remove_replicas(self, k: _RayKernel, replicas: int, timeout: float) -> None:
        leaving = k.actors[replicas:]
        # Producers stop sending to them (a batch in flight still arrives); their bodies
        # stop; what is queued for them, then what still arrives, goes to the others.
        removals = asyncio.gather(*(
            producer.remove_target.remote(edge.id, index)
            for edge in self._every_edge() if edge.consumer == k.id
            for producer in self._actors_of(edge.producer)
            for index in range(replicas, len(k.actors))
        ))  # fmt: skip
        await asyncio.gather(*(a.stop_for_scale.remote(timeout) for a in leaving))
        turn = 0
        while True:
            settled = removals.done()
            moved = await asyncio.gather(*(a.hand_over.remote() for a in leaving))
            for batch in moved:
                if batch:
                    await k.actors[turn % replicas].take_over.remote(batch)
                    turn += 1
            if settled:
                break
            await asyncio.sleep(0.02)
        await removals
        results = await asyncio.gather(
            *(a.terminate.remote(timeout, "left") for a in leaving), return_exceptions=True
        )
        for i, result in enumerate(results, start=replicas):
            probe = k.probes[i] if isinstance(result, BaseException) else result["probe"]
            self._fold(k, _with_output(probe) if probe else None,
                       died=isinstance(result, BaseException))  # fmt: skip
        self._kill(leaving)
        del k.actors[replicas:], k.hosts[replicas:], k.probes[replicas:]
        k.replicas = replicas
        await asyncio.gather(*(a.set_replicas.remote(replicas) for a in k.actors))

    def tap(self, kernel_id: str, port: str = "out", capacity: int = 256) -> Tap:
        """A ``Tap`` fed with what every replica sends on ``port`` (read a few times a
        second); detach it with ``untap``. Like the local one it never slows the kernel."""
        from ringctl.engine.local.ports import Tap

        k = self._require(kernel_id, "tap")
        declared = k.spec.ports
        # Undeclared: the default port and those wired in the topology.
        ports = (
            set(declared)
            if declared is not None
            else {"out"} | {e.port for e in self._edges if e.producer == kernel_id}
        )
        check_tap(k.id, k.spec, port, ports, known=ports)
        tap = Tap(capacity)
        tap_id = f"{kernel_id}.{port}#{id(tap)}"
        attaching = self._attaching.setdefault(k.id, [])
        for actor in k.actors:  # attached before anything the driver sends it after this
            attaching.append(actor.tap_attach.remote(port, tap_id, capacity))
        reader = asyncio.get_running_loop().create_task(self._read_tap(k, port, tap_id, tap))
        self._taps[id(tap)] = (tap_id, reader)
        return tap

    async def _read_tap(self, k: _RayKernel, port: str, tap_id: str, tap: Tap) -> None:
        while True:
            for actor in list(k.actors):
                with contextlib.suppress(Exception):
                    tap.offer_many(await actor.tap_take.remote(port, tap_id, tap.capacity, 1024))
            await asyncio.sleep(POLL_S)

    def untap(self, kernel_id: str, port: str, tap: Tap) -> None:
        """Stop reading the tap and detach it from the actors."""
        held = self._taps.pop(id(tap), None)
        if held is None:
            return
        tap_id, reader = held
        reader.cancel()
        k = self._kernels.get(kernel_id)
        for actor in k.actors if k is not None else ():
            actor.untap.remote(tap_id)

    def reconfigure(
        self, kernel_id: str, func: RingKernel, *, params: Any, queue_size: int | None,
        keep_state: bool = True,
    ) -> None:  # fmt: skip
        """Give the kernel's next instance (``restart``) new code, params or queue size.

        Checked first: bad params raise ``KernelLaunchError`` and nothing changes. With
        ``keep_state`` false the next instance starts with an empty ``ctx.state``. The
        queues already wired keep their capacity (a changed queue is a rewire).
        """
        k = self._require(kernel_id, "restart")
        spec = as_kernel(func, kernel_id)
        args = check_launch(
            kernel_id, spec, replicas=k.replicas, queue_size=queue_size, params=params
        )
        from ray import cloudpickle

        k.kernel_bytes = cloudpickle.dumps(spec)  # type: ignore[no-untyped-call]
        k.spec, k.params, k.queue_size = spec, args.params, args.queue_size
        k.reconfigured = True
        k.drop_state = k.drop_state or not keep_state
        if not keep_state:
            k.saved_state.clear()

    def _kill(self, actors: Iterable[Any]) -> None:
        for actor in actors:
            with contextlib.suppress(Exception):
                self._ray.kill(actor)

    def _every_edge(self) -> list[_Edge]:
        return [*self._edges, *self._retired]

    def _actors_of(self, kernel_id: str) -> list[Any]:
        k = self._kernels.get(kernel_id)
        return k.actors if k is not None else []

    async def _answering(self, kernel_ids: Iterable[str], action: str) -> None:
        """Refuse ``action`` before it changes anything unless every actor of these
        kernels (those still running) answers within ``ANSWER_WAIT_S``."""
        asked = {
            asyncio.ensure_future(actor.node.remote()): kid
            for kid in dict.fromkeys(kernel_ids)
            if (k := self._kernels.get(kid)) is not None and k.state in RUNNING
            for actor in k.actors
        }
        if not asked:
            return
        _, pending = await asyncio.wait(asked, timeout=ANSWER_WAIT_S)
        if pending:
            busy = sorted({asked[call] for call in pending})
            raise RunFailedError(
                f"cannot {action}: {', '.join(map(repr, busy))} did not answer within "
                f"{ANSWER_WAIT_S:g} s (its kernel holds its actor's event loop); nothing "
                "was changed",
                hint="try again once it is free; ringctl ps NAME shows what each kernel does",
            )

    async def rewire(
        self, connect: Sequence[Wire] = (), disconnect: Sequence[tuple[str, str, str]] = ()
    ) -> None:
        """Connect ``(producer, port, consumer, capacity, backpressure, fanout)`` queues and
        disconnect ``(producer, port, consumer)`` ones, producers running.

        The consumers' queues are made first; then each producer actor switches each port
        in one call (nothing awaited in between), so each message it sends goes where it
        went before or where it goes now: never both, never nowhere. What an outbox held
        for a disconnected queue still goes to that queue's consumer, which processes it;
        the queue is no longer listed among the topology's queues but stays in the
        accounting.
        """
        for producer, _port, consumer, *_ in connect:
            self._require_running(producer, "connect")
            self._require_running(consumer, "connect")
        wired = {e.id: e for e in self._edges}
        dropping = {f"{p}.{port} -> {c}" for p, port, c in disconnect}
        for producer, port, consumer in disconnect:
            self._require(producer)
            if f"{producer}.{port} -> {consumer}" not in wired:
                raise UserInputError(f"queue {producer}.{port} -> {consumer} is not wired")
        new = [self._edge(*wire) for wire in connect]
        for e in new:
            if e.id in wired and e.id not in dropping:
                raise UserInputError(f"queue {e.id} is already wired")
        involved = [p for p, *_ in disconnect] + [x for e in new for x in (e.producer, e.consumer)]
        await self._answering(involved, "rewire the queues")
        await self._flush_wiring()
        # Consumers first: a queue exists before any producer sends on it.
        await asyncio.gather(*(
            actor.add_in_edge.remote(e.id, e.capacity, e.backpressure)
            for e in new for actor in self._kernels[e.consumer].actors
        ))  # fmt: skip
        ports: dict[tuple[str, str], tuple[list[str], list[_Edge]]] = {}
        for producer, port, consumer in disconnect:
            ports.setdefault((producer, port), ([], []))[0].append(
                f"{producer}.{port} -> {consumer}"
            )
        for e in new:
            ports.setdefault((e.producer, e.port), ([], []))[1].append(e)
        self._rewired_at = time.monotonic()
        switches = []
        for (producer, port), (cut, wire) in ports.items():
            p = self._kernels[producer]
            if p.state not in RUNNING:
                continue  # stopped: its actors send nothing more
            args = [(e.id, e.capacity, self._kernels[e.consumer].actors, e.fanout) for e in wire]
            switches += [actor.rewire_port.remote(port, cut, args) for actor in p.actors]
        await asyncio.gather(*switches)
        self._retired += [e for e in self._edges if e.id in dropping]
        self._edges = [e for e in self._edges if e.id not in dropping]
        again = {e.id for e in new}
        self._retired = [e for e in self._retired if e.id not in again]
        self._edges += new

    async def retune(
        self, producer: str, port: str, consumer: str, *, capacity: int | None,
        backpressure: str, fanout: str | None,
    ) -> None:  # fmt: skip
        """Change a wired queue's capacity and backpressure (its queue in each consumer
        actor, its outbox in each producer actor) and its port's fanout, in place."""
        edge_id = f"{producer}.{port} -> {consumer}"
        index = next((i for i, e in enumerate(self._edges) if e.id == edge_id), None)
        if index is None:
            raise UserInputError(f"queue {edge_id} is not wired")
        size = capacity if capacity is not None else self._require(consumer).queue_size
        if size < 1:
            raise ValueError(f"queue {edge_id}: capacity must be at least 1, got {size}")
        edge = _Edge(edge_id, producer, port, consumer, size, str(backpressure), fanout)
        await self._answering((producer, consumer), f"retune queue {edge_id}")
        await self._flush_wiring()
        actors = {id(a): a for kid in (producer, consumer) for a in self._actors_of(kid)}
        await asyncio.gather(*(
            a.retune_edge.remote(edge_id, port, size, edge.backpressure, fanout)
            for a in actors.values()
        ))  # fmt: skip
        self._edges[index] = edge

    def inflight(self, kernel_id: str) -> int:
        """Messages queued for the kernel, held for it in producers' outboxes or on their
        way (pushed, not yet seen arrived), as of the actors' last probes. Until every
        probe involved was asked after the last rewire, at least 1: not known yet."""
        k = self._require(kernel_id)
        into = [e for e in self._every_edge() if e.consumer == kernel_id]
        involved = [self._kernels[kid] for kid in {kernel_id, *(e.producer for e in into)}
                    if kid in self._kernels]  # fmt: skip
        stale = any(
            (p or {}).get("asked_at", 0.0) <= self._rewired_at
            for x in involved if x.state in (*RUNNING, S.TERMINATING)
            for p in x.probes if p is not None
        )  # fmt: skip
        held = int(sum(p["inbox_depth"] for p in k.probes if p))
        arrived = {e.id: dict(self._edge_from.get(e.id, {})) for e in into}
        for p in k.probes:
            for edge_id, st in ((p or {}).get("edges") or {}).items():
                if edge_id in arrived:
                    _add_from(arrived, edge_id, st)
        for e in into:
            producer = self._kernels.get(e.producer)
            for p in producer.probes if producer is not None else ():
                out = ((p or {}).get("outboxes") or {}).get(e.id)
                if p and out:
                    came = arrived[e.id].get(str(p.get("uid", "")), 0)
                    held += int(out["pending"]) + max(0, int(out["pushed"]) - came)
        return max(held, 1) if stale else held

    # -- phase 1 -------------------------------------------------------------------------

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
        # A clear error here, before any actor starts, with the local engine's words.
        spec, args = self._launching(
            kernel_id, func, replicas=replicas, queue_size=queue_size, params=params
        )
        resources = dict(resources or {})
        wants_gpu = resources.get("num_gpus", 0) > 0
        requested = backend or spec.backend or "cpu"
        if wants_gpu and requested != "cpu":
            choice_backend, note = "cuda", None  # the GPU is on the actor's node, not ours
        else:
            choice = resolve_backend(kernel_id, requested, device)
            choice_backend, note = choice.backend, choice.note
        self._ensure_ray()
        from ray import cloudpickle

        k = _RayKernel(
            id=kernel_id,
            spec=spec,
            kernel_bytes=cloudpickle.dumps(spec),  # type: ignore[no-untyped-call]
            params=params if params is not None else {},
            replicas=args.replicas,
            backend=choice_backend,
            device="cuda:0" if choice_backend == "cuda" else None,
            note=note,
            queue_size=args.queue_size,
            resources=resources,
            entry=entry or spec.qualified_name,
        )
        try:
            await self._start_actors(k)
        except Exception as exc:
            self._kill(k.actors)
            if isinstance(exc, TimeoutError):
                raise self._unplaced(k) from exc
            cause = getattr(exc, "cause", exc)
            raise KernelLaunchError(
                kernel_id, f"{type(cause).__name__}: {cause}",
                hint="the kernel's actor failed in set-up; see the Ray worker log above",
            ) from exc  # fmt: skip
        self._add(k)
        if self._poller is None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _start_actors(self, k: _RayKernel) -> None:
        state: dict[str, Any] = dict(k.saved_state)
        k.saved_state.clear()
        for probe in k.probes:
            if probe:
                state.update(probe.get("state") or {})
        if k.drop_state:  # reconfigured to start afresh
            state = {}
        k.reconfigured = k.drop_state = False
        metrics = [dict((p or {}).get("metrics") or {}) for p in k.probes]
        k.actors = []
        k.hosts = await self._spawn(k, range(k.replicas), state, metrics, k.actors)
        k.probes = [None] * k.replicas

    async def _spawn(
        self, k: _RayKernel, replicas: range, state: dict[str, Any],
        metrics: list[dict[str, Any]], into: list[Any],
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Start an actor for each of ``replicas`` (appended to ``into`` as they start,
        so a caller can kill them on failure), placed and set up; returns where each runs."""
        params = check_params(k.id, k.spec, k.params)
        # Each producer replica may have a window of pushes waiting for space in an inbox:
        # room for many, so the driver's probes and stops never queue behind them.
        options: dict[str, Any] = {"max_concurrency": 1000}
        # Unasked, a replica reserves no CPU: kernels mostly wait on their inbox, and any
        # reservation would cap the replicas a machine takes (nine at 0.25 on 2 CPUs).
        options["num_cpus"] = k.resources.get("num_cpus", 0)
        if k.resources.get("num_gpus"):
            options["num_gpus"] = k.resources["num_gpus"]
        # Any other key is a Ray custom resource (``ray start --resources``): pins a kernel
        # to the nodes that declare it.
        custom = {n: v for n, v in k.resources.items() if n not in ("num_cpus", "num_gpus")}
        if custom:
            options["resources"] = custom
        paths = _search_path()
        from ray import cloudpickle

        # Pickled here and unpickled in the actor once the search path is in place: a
        # params model or a state value from the topology's own modules cannot be read
        # before that (Ray would fail the actor's construction).
        params_bytes = cloudpickle.dumps(params)  # type: ignore[no-untyped-call]
        state_bytes = cloudpickle.dumps(state)  # type: ignore[no-untyped-call]
        actors = [
            self._actor_class.options(**options).remote(
                k.id,
                r,
                k.replicas,
                k.kernel_bytes,
                params_bytes,
                k.backend,
                k.queue_size,
                paths,
                state_bytes,
                # A relaunched replica goes on from its predecessor's metrics.
                metrics[r] if r < len(metrics) else {},
            )
            for r in replicas
        ]
        into.extend(actors)
        # Placed and constructed first (bounded: Ray would wait forever for resources),
        # then the kernel's own set-up hook, which may take as long as it needs.
        await asyncio.wait_for(
            asyncio.gather(*(a.node.remote() for a in actors)), self.placement_timeout
        )
        infos = await asyncio.gather(*(a.setup.remote() for a in actors))
        # The node's address as Ray knows it (`ray status`), not what the worker's host
        # name resolves to: they differ where a node was started with --node-ip-address.
        addresses = {n["NodeID"]: n["NodeManagerAddress"] for n in self._ray.nodes()}
        return [
            {**info, "node": addresses.get(info.get("node_id"), info["node"])} for info in infos
        ]

    def _unplaced(self, k: _RayKernel) -> KernelLaunchError:
        asked = {"num_cpus": 0.0, **k.resources}
        wants = ", ".join(f"{name}={value:g}" for name, value in asked.items())
        free = self._ray.available_resources()
        has = ", ".join(
            f"{name} {free.get(name, 0):g}"
            for name in ("CPU" if n == "num_cpus" else "GPU" if n == "num_gpus" else n
                         for n in asked)
        )  # fmt: skip
        return KernelLaunchError(
            k.id,
            f"its actors were not placed within {self.placement_timeout:g} s "
            f"(each replica asks for {wants}; free in the cluster now: {has})",
            hint="lower the kernel's resources: or its replicas, or add a node that has them",
        )

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
        p, c = self._require(producer), self._require(consumer)
        if p.state is not S.LAUNCHED:
            raise KernelStateError(producer, "connect", p.state, (S.LAUNCHED,))
        edge = self._edge(producer, port, consumer, capacity, backpressure, fanout)
        if any(e.id == edge.id for e in self._edges):
            raise UserInputError(f"queue {edge.id} is already wired")
        self._edges.append(edge)
        self._wire_consumer(edge, c.actors)
        self._wire_producer(edge, p.actors)

    def _edge(
        self, producer: str, port: str, consumer: str, capacity: int | None, backpressure: str,
        fanout: str | None,
    ) -> _Edge:  # fmt: skip
        """A queue ``producer.port -> consumer`` (the consumer's queue size by default)."""
        size = capacity or self._kernels[consumer].queue_size
        return _Edge(f"{producer}.{port} -> {consumer}", producer, port, consumer, size,
                     str(backpressure), fanout)  # fmt: skip

    def _wire_consumer(self, edge: _Edge, actors: Iterable[Any]) -> None:
        self._pending += [
            a.add_in_edge.remote(edge.id, edge.capacity, edge.backpressure) for a in actors
        ]

    def _wire_producer(self, edge: _Edge, actors: Iterable[Any]) -> None:
        c = self._kernels[edge.consumer]
        self._pending += [
            a.add_out_edge.remote(edge.port, edge.id, edge.capacity, c.actors, edge.fanout)
            for a in actors
        ]

    async def _flush_wiring(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)

    # -- phase 2, pause, resume ----------------------------------------------------------

    async def _obey(self, k: _RayKernel, action: Action) -> None:
        if action == "activate":
            await self._flush_wiring()
        await asyncio.gather(*(getattr(a, action).remote() for a in k.actors))

    # -- termination and restarts --------------------------------------------------------

    async def terminate(self, kernel_id: str, timeout: float = 5.0) -> TerminationReport:
        k = self._require(kernel_id, "terminate")
        self._move(k, "terminate")
        k.terminating = True
        left = 0
        results = await self._stop_actors(k, timeout, "left")
        for i, result in enumerate(results):
            if isinstance(result, BaseException):
                # The actor is gone (killed: it did not answer; or it died), and what its
                # last probe saw queued with it: left (a forced stop) or lost.
                killed = isinstance(result, _Unresponsive)
                k.forced = k.forced or killed
                left += self._died(k, i, "left" if killed else "lost").get("inbox_depth", 0)
                continue
            k.forced = k.forced or bool(result["forced"])
            left += int(result["left"]) + int(result["unsent"])
            k.probes[i] = _with_output(result["probe"])
        self._finish(k)
        return TerminationReport(k.id, not k.forced, k.forced, left, 0, k.error)

    async def _stop_actors(
        self, k: _RayKernel, timeout: float, reason: str
    ) -> list[dict[str, Any] | BaseException]:
        """Each actor's ``terminate`` report, or why there is none. An actor that does not
        answer in time (a kernel that blocks its event loop) is killed: ``_Unresponsive``."""
        calls = [asyncio.ensure_future(a.terminate.remote(timeout, reason)) for a in k.actors]
        if not calls:
            return []
        await asyncio.wait(calls, timeout=2 * timeout + STOP_GRACE_S)
        results: list[dict[str, Any] | BaseException] = []
        for actor, call in zip(k.actors, calls, strict=True):
            if not call.done():
                call.cancel()
                self._kill([actor])
                log.warning("kernel %r: an actor did not stop in time; killed it", k.id)
                results.append(_Unresponsive())
            elif call.cancelled():
                results.append(asyncio.CancelledError())
            else:
                results.append(call.exception() or call.result())
        return results

    def _finish(self, k: _RayKernel) -> None:
        if k.state is S.TERMINATED:
            return
        if k.state in RUNNING:
            self._move(k, "terminate")
        k.completed = k.error is None and not k.terminating
        self._move(k, "finish")

    def stop_now(self) -> None:
        """Nothing to do here: kernels run in their actors, never on the supervisor's
        loop, and ``terminate`` kills an actor that does not stop within its timeout."""

    async def terminate_all(self, timeout: float = 10.0) -> list[TerminationReport]:
        running = [k.id for k in self._kernels.values() if k.state in RUNNING]
        reports = await asyncio.gather(*(self.terminate(kid, timeout) for kid in running))
        for k in self._kernels.values():
            if k.state is S.TERMINATING:
                self._finish(k)
        await self._final_probes()
        self._final = True
        return list(reports)

    async def _final_probes(self) -> None:
        """Read the actors of kernels that ended earlier once more: a producer may have
        pushed to one after it stopped (its closed queue counted those as lost)."""
        calls = [
            (k, i, actor.probe.remote())
            for k in self._kernels.values()
            if k.state is S.TERMINATED
            for i, actor in enumerate(k.actors)
            if i < len(k.probes) and k.probes[i] is not None
        ]
        futures = [asyncio.ensure_future(c) for _, _, c in calls]
        if futures:
            await asyncio.wait(futures, timeout=PROBE_WAIT_S)
        for (k, i, _), call in zip(calls, futures, strict=True):
            if call.done() and not call.cancelled() and call.exception() is None:
                k.probes[i] = _with_output(call.result())
            else:
                call.cancel()

    async def relaunch(self, kernel_id: str) -> None:
        """A new actor (per replica) for a TERMINATED kernel, wired like the old one."""
        k = self._require(kernel_id, "relaunch")
        self._move(k, "relaunch")
        self._ensure_ray()
        for probe in k.probes:
            self._fold(k, probe)
        self._kill(k.actors)
        k.restarted()
        k.error = k.error_tb = None
        try:
            await self._start_actors(k)
        except Exception as exc:
            failure = self._unplaced(k) if isinstance(exc, TimeoutError) else None
            k.error = failure.reason if failure else f"{type(exc).__name__}: {exc}"
            self._move(k, "finish")
            raise failure or KernelLaunchError(k.id, k.error) from exc
        await self._wire_anew(k, range(len(k.actors)))

    def remove(self, kernel_id: str) -> None:
        """Forget a TERMINATED kernel so that its id can be launched anew. The queues into
        it go, with their counts (use it once it processed all they accepted); those out
        of it stay with their consumers, and in the accounting."""
        k = self._require(kernel_id)
        if k.state is not S.TERMINATED:
            raise KernelStateError(kernel_id, "remove", k.state, (S.TERMINATED,))
        for probe in k.probes:  # what its outboxes counted stays on their queues
            self._fold(k, probe)
        into = {e.id: e for e in self._every_edge() if e.consumer == kernel_id}
        for e in into.values():
            for actor in self._actors_of(e.producer):
                if e.producer != kernel_id:
                    self._pending.append(actor.forget_out_edge.remote(e.port, e.id))
        for table in (self._edge_base, self._edge_from):
            for edge_id in into:
                table.pop(edge_id, None)
        self._stale_edges -= set(into)
        self._dead_outboxes = [d for d in self._dead_outboxes if d.edge not in into]
        out = [e for e in self._edges if e.producer == kernel_id and e.id not in into]
        self._edges = [e for e in self._edges if e.id not in into and e not in out]
        self._retired = [e for e in self._retired if e.id not in into] + out
        self._kill(k.actors)
        del self._kernels[kernel_id]
        self._attaching.pop(kernel_id, None)

    def close_inbox(self, kernel_id: str, reason: str = "lost") -> int:
        """What is still queued for the kernel. Its actors closed their queues when they
        were stopped (with the reason the stop gave); its producers are told that it will
        not run again, so they count what they hold for it, and send it later, as lost
        instead of waiting for a replacement that never comes."""
        k = self._require(kernel_id)
        if k.state is S.TERMINATED:
            for edge in self._every_edge():
                if edge.consumer == kernel_id:
                    for actor in self._actors_of(edge.producer):
                        actor.close_edge.remote(edge.id)
        return int(sum((p or {}).get("inbox_depth", 0) for p in k.probes))

    def accounting(self) -> Accounting:
        """The law's terms per edge, from the actors' last probes plus what replaced
        actors counted; a producer's outbox is part of its edge."""
        per_edge = self._edge_totals()
        rows = [
            QueueAccount(
                name=e.id,
                producer=e.producer,
                port=e.port,
                consumer=e.consumer,
                accepted=t["messages"] + sum(t[key] for key in _OUTBOX_SUMS),
                delivered=t["delivered"],
                dropped=t["drops"],
                lost=t["lost"] + t["out_lost"],
                left=t["left"] + t["out_left"],
                in_doubt=t["in_doubt"] + t["out_doubt"],
                queued=t["depth"] + t["pending"],
            )
            for e in self._every_edge()
            for t in (per_edge.get(e.id, _zero_edge()),)
        ]
        errors = {k.id: self._totals(k)[2] for k in self._kernels.values()}
        return build_accounting(rows, errors=errors)

    def _edge_totals(self) -> dict[str, dict[str, Any]]:
        totals: dict[str, dict[str, Any]] = {
            edge_id: dict(base) for edge_id, base in self._edge_base.items()
        }
        arrived = {edge_id: dict(by) for edge_id, by in self._edge_from.items()}
        for k in self._kernels.values():
            for p in k.probes:
                for edge_id, st in ((p or {}).get("edges") or {}).items():
                    agg = totals.setdefault(edge_id, _zero_edge())
                    for key in _EDGE_SUMS:
                        agg[key] += st.get(key, 0)
                    agg["high_water"] = max(agg["high_water"], st.get("high_water", 0))
                    _add_from(arrived, edge_id, st)
                for edge_id, out in ((p or {}).get("outboxes") or {}).items():
                    agg = totals.setdefault(edge_id, _zero_edge())
                    agg["pending"] += out.get("pending", 0)
                    agg["out_lost"] += out.get("lost", 0)
                    agg["out_left"] += out.get("left", 0)
        for dead in self._dead_outboxes:
            # What it held and still arrived is the consumer's (delivered, or queued
            # there); the rest never arrived: lost (or left) once the consumer's count is
            # final and exact, in doubt while it may still grow or may be stale.
            came = max(0, arrived.get(dead.edge, {}).get(dead.uid, 0) - dead.pushed)
            rest = dead.pending - min(came, dead.pending)
            sure = self._final and dead.edge not in self._stale_edges
            term = ("out_left" if dead.term == "left" else "out_lost") if sure else "out_doubt"
            totals.setdefault(dead.edge, _zero_edge())[term] += rest
        return totals

    async def close(self) -> None:
        for _, reader in self._taps.values():
            reader.cancel()
        self._taps.clear()
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
        await self.terminate_all(timeout=self.shutdown_timeout)
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self._ray is not None:
            for k in self._kernels.values():
                self._kill(k.actors)
            if self._started_ray:
                self._ray.shutdown()
                self._started_ray = False

    # -- messages from and to the outside (the spec's runtime.send / receive) ------------

    async def send(self, kernel_id: str, msg: Any) -> None:
        await self.send_batch(kernel_id, [msg])

    async def send_batch(self, kernel_id: str, msgs: Iterable[Any]) -> None:
        k = self._require(kernel_id)
        if k.state not in RUNNING:
            raise KernelStateError(kernel_id, "send", k.state, RUNNING)
        attaching = self._attaching.pop(k.id, None)
        if attaching:  # a tap asked for since the last send: on the port first
            await asyncio.gather(*attaching, return_exceptions=True)
        await k.actors[0].send_external.remote(list(msgs))

    async def receive(
        self, kernel_id: str, timeout: float | None = None, *, port: str = "out"
    ) -> Any:
        batch = await self.receive_batch(kernel_id, 1, timeout, port=port)
        return batch[0]

    async def receive_batch(
        self, kernel_id: str, max_items: int = 1024, timeout: float | None = None,
        *, port: str = "out",
    ) -> list[Any]:  # fmt: skip
        k = self._require(kernel_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for actor in k.actors:
                batch = await actor.receive_output.remote(port, max_items, 0.0)
                if batch:
                    return list(batch)
            if k.error is not None:
                raise KernelFailedError(k.id, RuntimeError(k.error))
            if k.state is S.TERMINATED:
                raise KernelStateError(k.id, "receive", k.state, RUNNING)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError()
            await asyncio.sleep(0.01)

    # -- the poller and the questions it answers -----------------------------------------

    async def _poll(self) -> None:
        ray = self._ray
        # (kernel, replica) -> (the actor asked, its probe in flight, the kernel's restarts
        # then): an actor whose loop is blocked keeps its probe pending, and the others go
        # on being read meanwhile. A probe asked before a restart may show the old body's
        # end: it is not read.
        asked: dict[tuple[_RayKernel, int], tuple[Any, asyncio.Future[Any], int, float]] = {}
        while True:
            live = [k for k in self._kernels.values() if k.state in (*RUNNING, S.TERMINATING)]
            # A kernel that ended with messages in its outboxes still delivers them.
            flushing = [k for k in self._kernels.values() if self._unsent(k)]
            for k in (*live, *flushing):
                for i, actor in enumerate(k.actors):
                    if (k, i) not in asked:
                        call = asyncio.ensure_future(actor.probe.remote())
                        asked[(k, i)] = (actor, call, k.restarts, time.monotonic())
            if asked:
                await asyncio.wait([c for _, c, _, _ in asked.values()], timeout=PROBE_WAIT_S)
                for (k, i), (actor, call, restarts, at) in list(asked.items()):
                    if not call.done():
                        continue
                    del asked[(k, i)]
                    if (
                        (k.state not in (*RUNNING, S.TERMINATING) and not self._unsent(k))
                        or i >= len(k.actors)
                        or k.actors[i] is not actor
                        or call.cancelled()
                        or (restarts != k.restarts and not call.exception())
                    ):
                        continue  # ended, or replaced since it was asked
                    error = call.exception()
                    if isinstance(error, ray.exceptions.RayActorError):
                        if k.state is S.TERMINATED:  # its outboxes died with it
                            self._died(k, i)
                        else:
                            self._actor_died(k, i, error)
                    elif error is not None:
                        log.warning("probe of %s failed: %s", k.id, error)
                    else:
                        k.probes[i] = {**_with_output(call.result()), "asked_at": at}
                for k in live:
                    self._check_done(k)
            self._sample(time.monotonic())
            total = sum(sum(self._totals(k)[:2]) for k in self._kernels.values())
            self._idle_history = [*self._idle_history[-1:], (self._idle_now(), total)]
            await asyncio.sleep(POLL_S)

    def _sample(self, now: float) -> None:
        """Feed the rate windows (the poller is this engine's timer; snapshots only read)."""
        for k in self._kernels.values():
            m_in, m_out, _ = self._totals(k)
            k.sample(m_in, m_out, now)

    def _consumer(self, edge_id: str) -> str | None:
        for e in self._every_edge():
            if e.id == edge_id:
                return e.consumer
        return None

    def _fold(
        self, k: _RayKernel, probe: dict[str, Any] | None, *, died: bool = False,
        term: str = "lost",
    ) -> None:  # fmt: skip
        """Keep what a replica counted before its actor goes away; when it died (or was
        killed: ``term="left"``), what its queues held at that last probe goes with it.

        That probe is up to a poll old. What its inbox held then is ``term`` if the
        kernel could not have taken any since (killed on a stop, or paused since before
        the probe); otherwise it may have taken and handled some before it died, and
        nobody can tell: in doubt. What its outboxes held is settled against what the
        consumers say arrived from it (``_edge_totals``)."""
        if probe:
            k.base["in"] += probe["messages_in"]
            k.base["out"] += probe["messages_out"]
            k.base["errors"] += probe["errors"]
            k.base["drops"] += probe["drops"]
            idle = term == "left" or (not probe.get("active", True) and k.state is S.DEACTIVATED)
            for edge_id, st in (probe.get("edges") or {}).items():
                base = self._edge_base.setdefault(edge_id, _zero_edge())
                for key in _EDGE_SUMS:
                    base[key] += st.get(key, 0)
                _add_from(self._edge_from, edge_id, st)
                if died:
                    base[term if idle else "in_doubt"] += base["depth"]
                    self._stale_edges.add(edge_id)
                base["depth"] = 0
            for edge_id, out in (probe.get("outboxes") or {}).items():
                # Whatever the outbox still held goes with the actor, counted on its edge.
                base = self._edge_base.setdefault(edge_id, _zero_edge())
                base["out_lost"] += out.get("lost", 0)
                base["out_left"] += out.get("left", 0)
                if died:
                    self._dead_outboxes.append(_DeadOutbox(
                        edge_id, str(probe.get("uid", "")), out.get("pushed", 0),
                        out.get("pending", 0), term,
                    ))  # fmt: skip
                else:
                    base["out_lost"] += out.get("pending", 0)

    def _died(self, k: _RayKernel, i: int, term: str = "lost") -> dict[str, Any]:
        """Replica ``i``'s actor is gone: what its last probe counted is folded in as on a
        death (``_fold``), and that probe returned (``{}`` when there was none)."""
        probe, k.probes[i] = k.probes[i], None
        self._fold(k, probe, died=True, term=term)
        return probe or {}

    def _actor_died(self, k: _RayKernel, index: int, exc: BaseException) -> None:
        # Its inbox and outboxes died with it: counted (from its last probe) as lost.
        # Producers keep their batches for it until the restart retargets them.
        probe = self._died(k, index)
        k.saved_state.update(probe.get("state") or {})  # a restart resumes from it
        held = probe.get("inbox_depth", 0) + probe.get("pending_out", 0)
        paused = not probe.get("active", True) and k.state is S.DEACTIVATED
        if k.error is None and not k.terminating:
            k.error = f"actor of replica {index} died ({type(exc).__name__}); " + (
                f"{held} queued messages lost"
                if paused
                else f"{held} messages it held at its last report are lost or in doubt"
            )
            k.error_tb = str(exc)
        if k.terminating or k.state not in RUNNING:
            return
        self._move(k, "terminate")
        self._stop_replicas(k)

    def _stop_replicas(self, k: _RayKernel) -> None:
        """Stop a failed kernel's other replicas in the background, then mark it TERMINATED."""
        task = asyncio.get_running_loop().create_task(self._stop_failed(k))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _check_done(self, k: _RayKernel) -> None:
        probes = [p for p in k.probes if p is not None]
        if k.state is S.TERMINATED or not probes:
            return
        errors = [p for p in probes if p.get("error")]
        if errors and k.error is None:
            k.error = errors[0]["error"]
            k.error_tb = errors[0].get("traceback")
            log.error("kernel %r failed:\n%s", k.id, k.error_tb)
        if errors and k.state in RUNNING:
            self._move(k, "terminate")
            self._stop_replicas(k)
            return
        if len(probes) == k.replicas and all(p["done"] for p in probes) and k.state in RUNNING:
            k.completed = k.error is None
            self._move(k, "finish")

    async def _stop_failed(self, k: _RayKernel) -> None:
        results = await self._stop_actors(k, 0.5, "lost")
        for i, result in enumerate(results):
            if isinstance(result, _Unresponsive):
                self._died(k, i)
            if not isinstance(result, BaseException):
                # A restart replaces these actors: what they still held is lost, and counted
                # on its edges (the inbox by its queues, the outboxes by the actor).
                k.probes[i] = _with_output(result["probe"])
        self._finish(k)

    def _totals(self, k: _RayKernel) -> tuple[int, int, int]:
        probes = [p for p in k.probes if p]
        return (
            k.base["in"] + sum(p["messages_in"] for p in probes),
            k.base["out"] + sum(p["messages_out"] for p in probes),
            k.base["errors"] + sum(p["errors"] for p in probes),
        )

    def _unsent(self, k: _RayKernel) -> bool:
        """An ended kernel whose outboxes still hold messages (as of its last probe)."""
        return k.state is S.TERMINATED and any(p and p["pending_out"] for p in k.probes)

    def is_idle(self, kernel_id: str) -> bool:
        k = self._require(kernel_id)
        if k.state is S.TERMINATING or self._unsent(k):
            return False  # its actors are being stopped, or still deliver: not settled
        if k.state in (S.TERMINATED, S.LAUNCHED, S.DEACTIVATED):
            return k.state is S.TERMINATED or all(
                not p or (p["inbox_depth"] == 0 and p["pending_out"] == 0) for p in k.probes
            )
        return all(
            p is not None
            and p["inbox_depth"] == 0
            and p["pending_out"] == 0
            and (p["waiting"] or p["done"])
            for p in k.probes
        )

    def _idle_now(self) -> bool:
        return all(self.is_idle(kid) for kid in self._kernels)

    def is_quiescent(self, kernel_ids: Sequence[str] | None = None) -> bool:
        """Idle in the last two polls with no message counted in between."""
        if kernel_ids is not None:
            return all(self.is_idle(kid) for kid in kernel_ids)
        h = self._idle_history
        return len(h) == 2 and h[0][0] and h[1][0] and h[0][1] == h[1][1]

    def queued(self, kernel_id: str) -> int:
        return int(sum((p or {}).get("inbox_depth", 0) for p in self._require(kernel_id).probes))

    def snapshot(self) -> RuntimeSnapshot:
        now = time.monotonic()
        kernels = tuple(self._snapshot_kernel(k, now) for k in self._kernels.values())
        edge_stats = self._edge_totals()
        queues = tuple(
            QueueSnapshot(
                name=e.id, producer=e.producer, port=e.port, consumer=e.consumer,
                capacity=e.capacity, backpressure=e.backpressure,
                **{key: t[key] for key in (*_EDGE_SUMS, "high_water")},
            )
            for e in self._edges
            for t in ({**_zero_edge(), "blocked_s": 0.0, **edge_stats.get(e.id, {})},)
        )  # fmt: skip
        return RuntimeSnapshot(now, kernels, queues, quiescent=self._idle_now())

    def _snapshot_kernel(self, k: _RayKernel, now: float) -> KernelSnapshot:
        probes = [p for p in k.probes if p]
        m_in, m_out, errors = self._totals(k)
        inbound = [t for e, t in self._edge_totals().items() if self._consumer(e) == k.id]
        p99s = [p["latency_p99_us"] for p in probes if p.get("latency_p99_us") is not None]
        p50s = [p["latency_p50_us"] for p in probes if p.get("latency_p50_us") is not None]
        metrics = merge_metrics(p.get("metrics") or {} for p in probes)
        return KernelSnapshot(
            id=k.id,
            state=k.state.name,
            backend=k.backend,
            device=k.device,
            replicas=k.replicas,
            messages_in=m_in,
            messages_out=m_out,
            errors=errors,
            drops=k.base["drops"] + sum(p["drops"] for p in probes),
            lost=sum(t["lost"] + t["out_lost"] for t in inbound),
            left=sum(t["left"] + t["out_left"] for t in inbound),
            in_doubt=sum(t["in_doubt"] + t["out_doubt"] for t in inbound),
            inbox_depth=sum(p["inbox_depth"] for p in probes),
            inbox_capacity=sum(p["inbox_capacity"] for p in probes) or k.queue_size,
            inbox_high_water=max((p["inbox_high_water"] for p in probes), default=0),
            latency_p50_us=max(p50s) if p50s else None,
            latency_p99_us=max(p99s) if p99s else None,
            rate_in=round(k.rate_in.rate, 1),
            rate_out=round(k.rate_out.rate, 1),
            restarts=k.restarts,
            last_error=k.error,
            completed=k.completed,
            waiting=sum(1 for p in probes if p["waiting"]),
            blocked=sum(1 for p in probes if p["blocked"]),
            last_progress_s=round(now - k.progress_at, 3),
            entry=k.entry,
            node=",".join(sorted({str(host["node"]) for host in k.hosts})) or None,
            backend_note=k.note,
            metrics=metrics,
        )


def _with_output(probe: dict[str, Any]) -> dict[str, Any]:
    """Write the kernel output an actor shipped with its probe to the run's kernel log."""
    from ringctl.engine.local import output

    for r in probe.pop("output", None) or ():
        output.emit(str(r.get("kernel")), int(r.get("replica") or 0), str(r.get("stream")),
                    str(r.get("text")), r.get("level"), r.get("ts"))  # fmt: skip
    return probe
