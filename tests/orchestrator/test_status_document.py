"""The status document the supervisor writes is the one ``StatusDocument`` defines."""

from __future__ import annotations

import asyncio
import json
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


async def test_the_reader_reads_back_every_field_the_supervisor_wrote() -> None:
    """ps, the dashboard and metrics read the document into the classes it was written
    from: a whole document comes back as it was sent."""
    sup = Supervisor(plan_from_file(TOPOLOGIES / "crash_backlog.yaml"))
    await sup.up()
    await sup.run(duration=1.0, down_timeout=2.0)
    await sup.runtime.close()
    doc = json.loads(json.dumps(sup.status(fresh=True)))
    assert doc["down"] is not None and doc["accounting"]["kernels"]
    assert parse_status(doc).as_dict() == doc
    # An older supervisor's document: what it sends is read, what it lacks is unknown.
    partial = {
        "kernels": [{"id": "k", "lost": 3, "left": 2, "in_doubt": 4}],
        "queues": [{"delivered": 7, "in_doubt": 1}],
    }
    st = parse_status(partial)
    assert (st.kernels[0].lost, st.kernels[0].left, st.queues[0].delivered) == (3, 2, 7)
    assert (st.kernels[0].in_doubt, st.queues[0].in_doubt) == (4, 1)
    assert (st.kernels[0].messages_in, st.queues[0].depth, st.down) == (None, None, None)


def test_the_definition_refuses_a_key_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        StatusDocument.check({"name": "x", "kernels": [{"id": "k", "mesages_in": 1}]})
    with pytest.raises(ValueError, match="not int"):
        KernelDoc.check({"id": "k", "replicas": "2"})
    assert QueueDoc.check({"from": "a.out", "to": "b"}).source == "a.out"
