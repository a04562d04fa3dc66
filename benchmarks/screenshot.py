"""Regenerate the README's dashboard picture from a real run (``make screenshot``).

    python benchmarks/screenshot.py topologies/sensor-anomaly.yaml docs/img/dashboard.svg

Runs the topology in-process with its sources slowed to a steady rate (so the frame
shows a pipeline in flight, not a finished one), takes one status document two seconds
in, renders it with the dashboard's own view to SVG, and downs the topology.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ringctl.dashboard.view import render_svg
from ringctl.orchestrator.loading import plan_from_file
from ringctl.orchestrator.supervisor import Supervisor


async def frame(topology: str, seconds: float = 2.0) -> str:
    plan = plan_from_file(topology)
    slowed = []
    for k in plan.kernels:
        model = k.kernel.params_model
        if k.id in plan.sources and model is not None and "rate" in model.model_fields:
            current = model.model_validate(k.params or {})
            # The sensor paces rows, the counter messages: aim at ~200 messages a second.
            per_message = getattr(current, "batch", 1) if "sensor" in (k.entry or "") else 1
            params = {**(k.params or {}), "rate": 200.0 * per_message}
            for endless in ("batches", "count"):
                if endless in model.model_fields:
                    params[endless] = None
            k = dataclasses.replace(k, params=params)
        slowed.append(k)
    plan = dataclasses.replace(plan, kernels=slowed)
    sup = Supervisor(plan)
    await sup.up()
    run = asyncio.create_task(sup.run())
    await asyncio.sleep(seconds)
    status = sup.status(fresh=True)
    sup.request_stop("screenshot taken")
    await run
    return render_svg(status, width=120, title=f"ringctl top {plan.name}")


if __name__ == "__main__":
    svg = asyncio.run(frame(sys.argv[1]))
    out = Path(sys.argv[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(svg)
    print(f"wrote {out}")
