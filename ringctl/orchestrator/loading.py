"""From a topology file to a launch ``Plan``: validate, import the kernels, order them."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ringctl.orchestrator.plan import EdgePlan, KernelPlan, Plan, RestartPolicy

if TYPE_CHECKING:
    from ringctl.kernel.persistent import PersistentKernel
    from ringctl.kernel.ring import RingKernel
    from ringctl.topology.schema import Topology

__all__ = ["plan_from_file", "runnable_kernels"]


def plan_from_file(
    path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    engine: str | None = None,
) -> Plan:
    """Load, validate and import a topology (raises ``TopologyError`` listing every problem).

    The topology's search path stays on ``sys.path`` afterwards: this process is about
    to run those kernels, and a kernel may import its siblings lazily.
    """
    from ringctl.topology import launch_order, load_topology
    from ringctl.topology.importer import search_path

    topology = load_topology(path, env=env)
    if (engine or topology.engine) != "local":
        _refuse_persistent_off_local(topology, engine or topology.engine)
    if any(spec.persistent is not None for spec in topology.kernels.values()):
        from ringctl.caches import loops_dir

        loops_dir()  # a folder that cannot hold compiled loops: refused before any launch
    kernels = runnable_kernels(topology)
    for folder, _label in reversed(search_path(topology)):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    plans = []
    for kernel_id in launch_order(topology):
        spec = topology.kernels[kernel_id]
        resources: dict[str, float] = {}
        if spec.resources is not None:
            r = spec.resources
            wanted = {"num_cpus": r.num_cpus, "num_gpus": r.num_gpus, **r.custom}
            resources = {k: float(v) for k, v in wanted.items() if v is not None}
        plans.append(
            KernelPlan(
                id=kernel_id,
                kernel=kernels[kernel_id],
                params=dict(spec.params),
                replicas=spec.replicas,
                # A persistent kernel's loop runs on the CPU (validation refuses cuda); `auto`
                # must not make its bridge look like a GPU kernel.
                backend="cpu" if spec.persistent is not None else spec.effective_backend,
                queue_size=spec.queue_size,
                restart=RestartPolicy(**spec.restart.model_dump()),
                entry=spec.entry,
                resources=resources,
                keep_state=spec.keep_state,
                persistent=None if spec.persistent is None else spec.persistent.model_dump(),
            )
        )
    edges = [
        EdgePlan(
            producer=e.producer,
            consumer=e.consumer,
            port=e.port,
            capacity=e.effective_capacity,
            backpressure=str(e.effective_backpressure),
            fanout=e.fanout,
            feedback=e.feedback,
        )
        for e in topology.queues
    ]
    return Plan(
        name=topology.name,
        kernels=plans,
        edges=edges,
        # Absolute (not resolved: a symlink stays as named), so that `ringctl ps` shows
        # a path that means the same from any folder.
        file=os.path.abspath(path),
        engine=engine or topology.engine,
        description=topology.description or "",
        smoke=topology.smoke,
    )


def runnable_kernels(topology: Topology) -> dict[str, RingKernel]:
    """Every kernel of ``topology`` imported and checked (``resolve_entries``), as an
    engine launches it: persistent kernels behind their bridges, in one worker group
    for the topology (nothing starts before the first launch)."""
    from ringctl.kernel.ring import RingKernel
    from ringctl.topology import resolve_entries

    entries = resolve_entries(topology)
    kernels = {kid: k for kid, k in entries.items() if isinstance(k, RingKernel)}
    persistent = {kid: k for kid, k in entries.items() if not isinstance(k, RingKernel)}
    if persistent:
        kernels.update(_bridge(topology, persistent))
    return {kid: kernels[kid] for kid in entries}  # file order


def _bridge(topology: Topology, persistent: dict[str, PersistentKernel]) -> dict[str, RingKernel]:
    from ringctl._substituted import typed
    from ringctl.engine.local.persistent.bridge import PersistentBridges
    from ringctl.kernel.persistent import LoopOptions
    from ringctl.topology.importer import search_path

    sys_path = [str(folder) for folder, _ in search_path(topology)]
    bridges = PersistentBridges(topology.name, sys_path=sys_path)
    out: dict[str, RingKernel] = {}
    for kernel_id, kernel in persistent.items():
        spec = topology.kernels[kernel_id]
        p = spec.persistent
        assert p is not None  # only persistent specs resolve to a PersistentKernel
        out[kernel_id] = bridges.kernel(
            kernel_id,
            spec.entry,
            kernel,
            params=typed(spec.params),  # init(params) reads values from ${VAR} as YAML would
            ring=p.ring,
            options=LoopOptions(spin_us=p.spin_us, nap_us=p.nap_us, batch=p.batch),
        )
    for edge in topology.queues:
        if edge.producer in persistent and edge.to in persistent:
            bridges.connect(edge.producer, edge.to)
    return out


def _refuse_persistent_off_local(topology: Topology, engine: str) -> None:
    """``--engine ray`` on a file with persistent kernels: bad input, before anything runs."""
    from ringctl.topology import TopologyError
    from ringctl.topology.loader import SourceMap

    source = topology.source_map or SourceMap(str(topology.source_path or "<topology>"), None)
    problems = [
        source.diagnostic(
            ("kernels", kernel_id, "persistent"),
            f"kernel '{kernel_id}': persistent kernels run on the local engine only, "
            f"not on {engine}",
            "run without --engine ray, or make this kernel an ordinary one",
            key=True,
        )
        for kernel_id, spec in topology.kernels.items()
        if spec.persistent is not None
    ]
    if problems:
        raise TopologyError(problems)
