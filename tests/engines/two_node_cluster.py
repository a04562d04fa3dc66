"""Run the quickstart on a two-node Ray cluster simulated on this machine (own process).

``test_ray_two_nodes.py`` runs this file in a subprocess, because a process can join
only one Ray cluster (``ray.init`` once) and the rest of the session shares another.
Each node declares a custom resource (``node_a`` on the head, ``node_b`` on the second
node) and the kernels ask for one, so where each actor runs is decided, not left to the
scheduler: ``source`` and ``total`` on the head, both ``square`` replicas on the other.
Prints one JSON document: the result, the sink's metrics and where each replica ran.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PLACE = {"source": "node_a", "square": "node_b", "total": "node_a"}

for key, value in {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # nodes bind to loopback
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}.items():
    os.environ[key] = value
sys.path.insert(0, str(REPO))


async def run(address: str) -> dict[str, Any]:
    from ringctl.engine.ray.engine import RayRuntime
    from ringctl.orchestrator.loading import plan_from_file
    from ringctl.orchestrator.supervisor import Supervisor

    plan = plan_from_file(REPO / "topologies" / "quickstart.yaml", engine="ray")
    # The file asks for no resources; pin each kernel to a node by its custom resource.
    plan = dataclasses.replace(
        plan,
        kernels=[
            dataclasses.replace(k, resources={"num_cpus": 0.5, PLACE[k.id]: 1})
            for k in plan.kernels
        ],
    )
    runtime = RayRuntime(address=address)
    sup = Supervisor(plan, runtime)
    try:
        await sup.up()
        placement = {k.id: runtime.actor_info(k.id) for k in plan.kernels}
        result = await sup.run(down_timeout=20.0)
    finally:
        await runtime.close()
    status = sup.status(fresh=True)
    return {
        "outcome": result.outcome,
        "metrics": {k["id"]: k["metrics"] for k in status["kernels"]},
        "rows": {k["id"]: k["node"] for k in status["kernels"]},
        "placement": placement,
    }


def main() -> None:
    import ray
    from ray.cluster_utils import Cluster

    temp = tempfile.mkdtemp(prefix="rc-2n-", dir="/tmp")
    # Ray's test cluster records its address under the default temp dir, which a fresh
    # machine may not have: keep that file in our private directory too.
    os.environ["RAY_TMPDIR"] = temp
    os.makedirs(os.path.join(temp, "ray"), exist_ok=True)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "resources": {"node_a": 4}, "temp_dir": temp,
                        "include_dashboard": False},
    )  # fmt: skip
    try:
        cluster.add_node(num_cpus=2, resources={"node_b": 4}, temp_dir=temp)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level="WARNING")
        nodes = {
            next(r for r in n["Resources"] if r.startswith("node_")): n["NodeID"]
            for n in ray.nodes()
            if n["Alive"]
        }
        report = asyncio.run(run(cluster.address))
        report["nodes"] = nodes
        print(json.dumps(report))
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
