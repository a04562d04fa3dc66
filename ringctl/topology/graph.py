"""Checks on the wiring of a schema-valid topology, and the order to launch it in.

Pure functions over a ``Wiring``: no file, no import, no I/O. Problems come back as
data paths (``("queues", 2, "to")``) and the caller turns them into file positions, so
these checks work the same on a topology built in code. ``Wiring`` is what the checks
read of a topology: the pydantic ``Topology`` is one, and so is the plain view that
``ringctl validate`` builds from its compiled schema without importing pydantic.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ringctl.topology.errors import did_you_mean
from ringctl.topology.loader import DataPath

__all__ = [
    "EdgeWiring",
    "KernelWiring",
    "Problem",
    "Wiring",
    "check_graph",
    "find_cycles",
    "launch_order",
]


class KernelWiring(Protocol):
    """What the checks read of one kernel's spec."""

    @property
    def depends_on(self) -> Sequence[str]: ...
    @property
    def replicas(self) -> int: ...
    @property
    def backend(self) -> str | None: ...
    @property
    def effective_backend(self) -> str: ...
    @property
    def persistent(self) -> object | None: ...


class EdgeWiring(Protocol):
    """What the checks read of one queue."""

    @property
    def from_(self) -> str: ...
    @property
    def to(self) -> str: ...
    @property
    def feedback(self) -> bool: ...
    @property
    def producer(self) -> str: ...
    @property
    def port(self) -> str: ...
    @property
    def label(self) -> str: ...


class SmokeWiring(Protocol):
    @property
    def expect(self) -> Mapping[str, object]: ...


class Wiring(Protocol):
    """What the checks read of a topology."""

    @property
    def engine(self) -> str: ...
    @property
    def kernels(self) -> Mapping[str, KernelWiring]: ...
    @property
    def queues(self) -> Sequence[EdgeWiring]: ...
    @property
    def smoke(self) -> SmokeWiring | None: ...


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem at a data path; ``key`` asks for the position of the key, not the value."""

    path: DataPath
    message: str
    hint: str | None = None
    key: bool = False


def describe_path(path: Sequence[str | int]) -> str:
    """``("queues", 1, "capacity")`` -> ``queues[1].capacity``, as a user would name it."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step}" if text else str(step)
    return text


def _unknown_kernel_hint(name: str, known: Sequence[str]) -> str:
    guess = did_you_mean(name, known)
    if guess is not None:
        return f"did you mean '{guess}'?"
    shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
    return f"the kernels in this file are: {shown}"


def check_graph(
    topology: Wiring, where: Callable[[DataPath], str] = describe_path
) -> list[Problem]:
    """Every wiring problem: unknown kernels, self-loops, duplicates, cycles.

    ``where`` names a place for messages that point back to an earlier one ("first at
    line 12"); by default it spells the data path.
    """
    return list(_graph_problems(topology, where))


def _graph_problems(topology: Wiring, where: Callable[[DataPath], str]) -> Iterator[Problem]:
    known = list(topology.kernels)
    known_set = set(known)

    # depends_on: names must exist, no self-dependency, no repeats.
    depends: dict[str, list[str]] = {}
    for kernel_id, spec in topology.kernels.items():
        seen: set[str] = set()
        depends[kernel_id] = []
        for index, dep in enumerate(spec.depends_on):
            path: DataPath = ("kernels", kernel_id, "depends_on", index)
            if dep == kernel_id:
                yield Problem(
                    path,
                    f"kernel '{kernel_id}' depends on itself",
                    f"remove '{kernel_id}' from its own depends_on",
                )
            elif dep not in known_set:
                yield Problem(
                    path,
                    f"kernel '{kernel_id}' depends on '{dep}', which is not a kernel here",
                    _unknown_kernel_hint(dep, known),
                )
            elif dep in seen:
                yield Problem(path, f"kernel '{kernel_id}' lists '{dep}' twice in depends_on")
            else:
                depends[kernel_id].append(dep)
            seen.add(dep)

    # queues: endpoints must exist, no kernel wired to itself, no edge twice.
    first_edge: dict[tuple[str, str, str], int] = {}
    flows: dict[str, list[tuple[str, int]]] = {kernel_id: [] for kernel_id in known}
    for index, edge in enumerate(topology.queues):
        ok = True
        for field, written, kernel_id in (
            ("from", edge.from_, edge.producer),
            ("to", edge.to, edge.to),
        ):
            if kernel_id not in known_set:
                ok = False
                message = f"queue {field} '{written}': there is no kernel '{kernel_id}'"
                hint = _unknown_kernel_hint(kernel_id, known)
                yield Problem(("queues", index, field), message, hint)
        if edge.producer == edge.to:
            yield Problem(
                ("queues", index),
                f"queue {edge.label} wires kernel '{edge.to}' to itself",
                "a kernel cannot feed its own inbox through a queue; remove this edge",
            )
            continue
        signature = (edge.producer, edge.port, edge.to)
        if signature in first_edge:
            first = ("queues", first_edge[signature])
            yield Problem(
                ("queues", index),
                f"duplicate queue {edge.label} (first at {where(first)})",
                "remove one; to carry more messages, raise its capacity",
            )
            continue
        first_edge[signature] = index
        if ok and not edge.feedback:
            flows[edge.producer].append((edge.to, index))

    for cycle in find_cycles(known, depends):
        start, nxt = cycle[0], cycle[1]
        index = topology.kernels[start].depends_on.index(nxt)
        yield Problem(
            ("kernels", start, "depends_on", index),
            "dependency cycle: " + " -> ".join(cycle),
            "depends_on must not loop; remove one of these dependencies",
        )

    successors = {k: [to for to, _ in v] for k, v in flows.items()}
    for cycle in find_cycles(known, successors):
        start, nxt = cycle[0], cycle[1]
        index = next(i for to, i in flows[start] if to == nxt)
        yield Problem(
            ("queues", index),
            "queue cycle: " + " -> ".join(cycle),
            "if the loop is intended, mark one of its queues `feedback: true`; "
            "otherwise remove one of them",
        )

    yield from _check_persistent(topology)

    if topology.smoke is not None:
        for kernel_id in topology.smoke.expect:
            if kernel_id not in known_set:
                yield Problem(
                    ("smoke", "expect", kernel_id),
                    f"smoke.expect names '{kernel_id}', which is not a kernel here",
                    _unknown_kernel_hint(kernel_id, known),
                    key=True,
                )


def find_cycles(nodes: Sequence[str], successors: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one node.

    Each cycle starts at the component's first node in ``nodes`` order and is the
    shortest way back to it, so the message is stable from run to run:
    ``["alpha", "gamma", "beta", "alpha"]``.
    """
    order = {node: index for index, node in enumerate(nodes)}
    cycles = []
    for component in _strongly_connected(nodes, successors):
        if len(component) < 2:
            continue
        members = set(component)
        start = min(component, key=order.__getitem__)
        # Breadth-first from `start`, inside the component, back to `start`.
        parent: dict[str, str] = {}
        queue = deque([start])
        while start not in parent:  # the component is strongly connected: it gets there
            node = queue.popleft()
            for succ in successors.get(node, ()):
                if succ in members and succ not in parent:
                    parent[succ] = node
                    queue.append(succ)
        path = [start]
        node = parent[start]
        while node != start:
            path.append(node)
            node = parent[node]
        path.append(start)
        path.reverse()
        cycles.append(path)
    cycles.sort(key=lambda cycle: order[cycle[0]])
    return cycles


def _strongly_connected(nodes: Iterable[str], successors: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm without recursion (a 5,000-kernel chain would overflow the stack)."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index_of:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index_of[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succs = successors.get(node, [])
            recurse = False
            for position in range(child, len(succs)):
                succ = succs[position]
                if succ not in index_of:
                    work.append((node, position + 1))
                    work.append((succ, 0))
                    recurse = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index_of[succ])
            if recurse:
                continue
            if low[node] == index_of[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                caller = work[-1][0]
                low[caller] = min(low[caller], low[node])
    return components


def launch_order(topology: Wiring) -> list[str]:
    """The order the orchestrator launches (and activates) kernels in.

    ``depends_on`` is a hard rule: dependencies first. Where it leaves the order open,
    consumers come before producers, so a sink is ready before its source starts
    (architecture.md, "Ordering and shutdown"); remaining ties go by file order.

    Each kernel's rank is its distance (in non-feedback queues) to the furthest sink
    below it: sinks 0, their producers 1, and so on. A kernel that something urgent
    depends on inherits that urgency, so a dependency is never launched late just
    because it sits high in its own pipeline. Among the kernels whose dependencies are
    all launched, the lowest (urgency, rank, file position) goes next.
    """
    ids = list(topology.kernels)
    position = {kernel_id: index for index, kernel_id in enumerate(ids)}
    consumers: dict[str, list[str]] = {kernel_id: [] for kernel_id in ids}
    for edge in topology.queues:
        if edge.feedback or edge.producer == edge.to:
            continue
        if edge.producer in consumers and edge.to in consumers:
            consumers[edge.producer].append(edge.to)

    rank = _distance_to_sink(ids, consumers)

    dependents: dict[str, list[str]] = {kernel_id: [] for kernel_id in ids}
    waiting: dict[str, int] = {}
    for kernel_id, spec in topology.kernels.items():
        deps = {d for d in spec.depends_on if d in position and d != kernel_id}
        waiting[kernel_id] = len(deps)
        for dep in deps:
            dependents[dep].append(kernel_id)

    urgency = dict(rank)
    # Dependents before their dependencies (reverse of a topological order): each one's
    # urgency is final before it is passed down. Kernels on a cycle keep their own rank.
    for kernel_id in reversed(_topological(ids, dependents, dict(waiting))):
        for dependent in dependents[kernel_id]:
            urgency[kernel_id] = min(urgency[kernel_id], urgency[dependent])

    ready = [(urgency[k], rank[k], position[k], k) for k in ids if waiting[k] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        *_, kernel_id = heapq.heappop(ready)
        order.append(kernel_id)
        for dependent in dependents[kernel_id]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(
                    ready, (urgency[dependent], rank[dependent], position[dependent], dependent)
                )
    if len(order) < len(ids):  # a cycle: load_topology refuses these, but stay total
        order.extend(k for k in ids if k not in set(order))
    return order


def _topological(
    ids: list[str], dependents: Mapping[str, Iterable[str]], waiting: dict[str, int]
) -> list[str]:
    """Kahn's algorithm in file order; kernels on a cycle are left out."""
    queue = [k for k in ids if waiting[k] == 0]
    out: list[str] = []
    while queue:
        kernel_id = queue.pop()
        out.append(kernel_id)
        for dependent in dependents[kernel_id]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                queue.append(dependent)
    return out


def _distance_to_sink(ids: list[str], consumers: dict[str, list[str]]) -> dict[str, int]:
    """Longest path to a kernel with no consumer, over an acyclic queue graph."""
    outdegree = {k: len(set(consumers[k])) for k in ids}
    producers: dict[str, set[str]] = {k: set() for k in ids}
    for producer, targets in consumers.items():
        for target in targets:
            producers[target].add(producer)
    rank = dict.fromkeys(ids, 0)
    # Sinks first: a kernel's rank is final before its producers read it.
    for kernel_id in _topological(ids, producers, outdegree):
        for producer in producers[kernel_id]:
            rank[producer] = max(rank[producer], rank[kernel_id] + 1)
    return rank


def _check_persistent(topology: Wiring) -> Iterator[Problem]:
    """What a persistent kernel cannot do (yet), found without importing anything."""
    for kernel_id, spec in topology.kernels.items():
        if spec.persistent is None:
            continue
        at: DataPath = ("kernels", kernel_id, "persistent")
        if spec.effective_backend == "cuda":
            where_: DataPath = ("kernels", kernel_id, "backend") if spec.backend is not None else at
            yield Problem(
                where_,
                f"kernel '{kernel_id}': persistent kernels on backend cuda are not "
                "available yet (only the CPU loop ships)",
                "set `backend: cpu` (or `auto`) on this kernel",
            )
        if topology.engine != "local":
            yield Problem(
                at,
                f"kernel '{kernel_id}': persistent kernels run on the local engine only",
                "remove `engine: ray`, or make this kernel an ordinary one",
            )
        if spec.replicas != 1:
            yield Problem(
                ("kernels", kernel_id, "replicas"),
                f"kernel '{kernel_id}': a persistent kernel runs as one replica "
                f"(its rings have one consumer), got replicas: {spec.replicas}",
                "remove `replicas`, or split the work over several persistent kernels",
            )
        for direction, edges in (
            ("inbound", [edge for edge in topology.queues if edge.to == kernel_id]),
            ("outbound", [edge for edge in topology.queues if edge.producer == kernel_id]),
        ):
            if len(edges) > 1:
                second = topology.queues.index(edges[1])
                yield Problem(
                    ("queues", second),
                    f"kernel '{kernel_id}' is persistent and has {len(edges)} {direction} "
                    "queues; a persistent kernel reads one ring and writes one ring",
                    "join or split the stream in an ordinary kernel next to it",
                )
