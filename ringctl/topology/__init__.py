"""Topology files: load and check them, order their launch, resolve their kernels.

Remember it as the path a file takes through ``ringctl up``::

    topology = load_topology("topologies/quickstart.yaml")   # YAML + schema + graph checks
    kernels = resolve_entries(topology)                        # imports; params and ports
    for kernel_id in launch_order(topology): ...               # dependencies, then sinks first

Everything wrong with a file is raised at once as a ``TopologyError`` whose
``diagnostics`` each name ``file:line:column``. Nothing here runs a kernel.
"""

from __future__ import annotations

from typing import Any

from ringctl.topology.errors import Diagnostic, TopologyError
from ringctl.topology.graph import check_graph, launch_order
from ringctl.topology.importer import resolve_entries
from ringctl.topology.schema import (
    Defaults,
    Edge,
    KernelExpectation,
    KernelSpec,
    QueueDefaults,
    Resources,
    RestartPolicy,
    Smoke,
    Topology,
)
from ringctl.topology.validate import load_topology

__all__ = [
    "Defaults",
    "Diagnostic",
    "Edge",
    "KernelExpectation",
    "KernelSpec",
    "QueueDefaults",
    "Resources",
    "RestartPolicy",
    "Smoke",
    "Topology",
    "TopologyError",
    "check_graph",
    "launch_order",
    "load_topology",
    "resolve_entries",
    "topology_json_schema",
]


def topology_json_schema() -> dict[str, Any]:
    """The JSON Schema of topology files, from the same models that validate them.

    Field names are as written in files (``from``, not ``from_``), so editors that read
    it (yaml-language-server) check files exactly as ``ringctl validate`` does, short of
    the graph checks, which a schema cannot express.
    """
    schema = Topology.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ringctl topology",
        **{k: v for k, v in schema.items() if k != "title"},
    }
