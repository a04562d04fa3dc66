"""The status document the supervisor writes is the one ``StatusDocument`` defines."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator.harness import TOPOLOGIES, Ringctl
from ringctl.dashboard import parse_status
from ringctl.orchestrator import Supervisor
from ringctl.orchestrator.loading import plan_from_file
from ringctl.orchestrator.status import KernelDoc, QueueDoc, StatusDocument


@pytest.mark.parametrize("name", ["feedback.yaml", "crash_backlog.yaml", "backoff.yaml"])
async def test_every_document_of_a_run_fits_the_definition(name: str) -> None:
    sup = Supervisor(plan_from_file(TOPOLOGIES / name))
    seen: list[dict[str, Any]] = []
    await sup.up(progress=lambda _phase: seen.append(sup.status(fresh=True)))
    runner = asyncio.create_task(sup.run(duration=1.0, down_timeout=2.0))
    while not runner.done():
        seen.append(sup.status(fresh=True))
        await asyncio.sleep(0.05)
    await runner
    await sup.runtime.close()
    seen.append(sup.status(fresh=True))
    for doc in seen:
        StatusDocument.check(doc)
    final = StatusDocument.check(seen[-1])
    assert final.accounting is not None and final.down is not None


def test_ps_json_fits_the_definition(ringctl: Ringctl) -> None:
    name = ringctl.up_detached(TOPOLOGIES / "backoff.yaml")
    doc = ringctl.status(name)
    StatusDocument.check(doc)
    ringctl("down", name, "--timeout", "2")


def test_the_readers_know_every_kernel_and_queue_field() -> None:
    """parse_status (ps, the dashboard, metrics) reads every field the definition has."""
    import dataclasses

    from ringctl.dashboard._status import KernelRow, QueueRow

    kernel_rows = {f.name for f in dataclasses.fields(KernelRow)}
    # `completed` is read into the status word (done), not a field of its own.
    assert set(KernelDoc.model_fields) - kernel_rows == {"completed"}
    queue_rows = {f.name for f in dataclasses.fields(QueueRow)} | {"from", "to"}
    aliases = {f.alias or n for n, f in QueueDoc.model_fields.items()}
    assert aliases - queue_rows == set(), aliases - queue_rows
    doc = {
        "kernels": [{"id": "k", "lost": 3, "left": 2, "in_doubt": 4}],
        "queues": [{"delivered": 7, "in_doubt": 1}],
    }
    st = parse_status(doc)
    assert (st.kernels[0].lost, st.kernels[0].left, st.queues[0].delivered) == (3, 2, 7)
    assert (st.kernels[0].in_doubt, st.queues[0].in_doubt) == (4, 1)
