"""Topology files: load and check them, order their launch, resolve their kernels.

Remember it as the path a file takes through ``ringctl up``::

    topology = load_topology("topologies/quickstart.yaml")   # YAML + schema + graph checks
    kernels = resolve_entries(topology)                        # imports; params and ports
    for kernel_id in launch_order(topology): ...               # dependencies, then sinks first

Everything wrong with a file is raised at once as a ``TopologyError`` whose
``diagnostics`` each name ``file:line:column``. Nothing here runs a kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ringctl._lazy import lazy_exports
from ringctl.topology.errors import Diagnostic, TopologyError

if TYPE_CHECKING:
    from ringctl.topology.graph import check_graph, launch_order
    from ringctl.topology.importer import resolve_entries
    from ringctl.topology.schema import (
        Defaults,
        Edge,
        KernelExpectation,
        KernelSpec,
        QueueDefaults,
        Resources,
        RestartSpec,
        Smoke,
        Topology,
    )
    from ringctl.topology.validate import load_topology

# Imported on first use: `ringctl validate` reads files through this package and must not
# pay for pydantic and the models unless it needs them (see quick.py).
_EXPORTS = {
    "Defaults": "ringctl.topology.schema",
    "Edge": "ringctl.topology.schema",
    "KernelExpectation": "ringctl.topology.schema",
    "KernelSpec": "ringctl.topology.schema",
    "QueueDefaults": "ringctl.topology.schema",
    "Resources": "ringctl.topology.schema",
    "RestartSpec": "ringctl.topology.schema",
    "Smoke": "ringctl.topology.schema",
    "Topology": "ringctl.topology.schema",
    "check_graph": "ringctl.topology.graph",
    "launch_order": "ringctl.topology.graph",
    "load_topology": "ringctl.topology.validate",
    "resolve_entries": "ringctl.topology.importer",
}

__all__ = [
    "Defaults",
    "Diagnostic",
    "Edge",
    "KernelExpectation",
    "KernelSpec",
    "QueueDefaults",
    "Resources",
    "RestartSpec",
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
    from ringctl.topology.schema import Topology

    schema = Topology.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ringctl topology",
        **{k: v for k, v in schema.items() if k != "title"},
    }


__getattr__, __dir__ = lazy_exports("ringctl.topology", _EXPORTS, globals(), __all__)
