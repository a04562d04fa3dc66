"""Every checked-in topology loads, resolves, and does what its header says.

Each file is run here with the runtime directly (launch in the file's order, wire,
activate, wait for the sources, drain), and its own ``smoke.expect`` is checked: the
same promise ``ringctl smoke`` makes, without depending on the CLI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ringctl import RingKernelRuntime
from ringctl.orchestrator.loading import runnable_kernels
from ringctl.topology import launch_order, load_topology, resolve_entries

TOPOLOGIES = sorted((Path(__file__).resolve().parents[2] / "topologies").glob("*.yaml"))
REQUIRED = {"quickstart", "sensor-anomaly", "spectrum", "pagerank", "fan-in-out"}


def _endless(path: Path) -> bool:
    """A topology meant to run until stopped says how long CI runs it (smoke.duration)."""
    smoke = load_topology(path).smoke
    return smoke is not None and smoke.duration is not None


FINITE = [p for p in TOPOLOGIES if not _endless(p)]
ENDLESS = [p for p in TOPOLOGIES if _endless(p)]


def test_the_required_topologies_exist() -> None:
    assert {p.stem for p in TOPOLOGIES} >= REQUIRED


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.stem)
def test_topology_is_documented_and_finite(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("#"), "a header comment says what it shows"
    assert f"ringctl up topologies/{path.name}" in text
    assert f"ringctl smoke topologies/{path.name}" in text
    topology = load_topology(path)
    assert topology.name == path.stem
    assert topology.python_path == [".."]
    assert topology.smoke is not None and topology.smoke.expect
    if path in FINITE:
        for kernel_id in topology.source_kernels:
            params = topology.kernels[kernel_id].params
            finite = params.get("count", params.get("batches")) is not None
            assert finite, f"{kernel_id} is finite, or the file sets smoke.duration"
    resolve_entries(topology)  # entries import, params fit their models


async def run_topology(path: Path, wait_until: Callable[..., Awaitable[None]]) -> dict[str, Any]:
    topology = load_topology(path)
    kernels = runnable_kernels(topology)
    assert topology.smoke is not None
    async with RingKernelRuntime() as rt:
        order = launch_order(topology)
        for kernel_id in order:
            spec = topology.kernels[kernel_id]
            await rt.launch(
                kernel_id,
                kernels[kernel_id],
                params=spec.params,
                replicas=spec.replicas,
                backend=spec.effective_backend,
            )
        for edge in topology.queues:
            rt.connect(
                edge.producer,
                edge.consumer,
                port=edge.port,
                capacity=edge.effective_capacity,
                backpressure=edge.effective_backpressure,
                fanout=edge.fanout,
            )
        for kernel_id in order:
            await rt.activate(kernel_id)
        timeout = topology.smoke.timeout
        await asyncio.gather(
            *(rt.wait_finished(k, timeout=timeout) for k in topology.source_kernels)
        )
        await wait_until(rt.is_quiescent, timeout)
        snap = {k.id: k for k in rt.snapshot().kernels}
    for kernel_id, expect in topology.smoke.expect.items():
        k = snap[kernel_id]
        where = f"{path.name}: {kernel_id}"
        if expect.min_messages_in is not None:
            assert k.messages_in >= expect.min_messages_in, where
        if expect.min_messages_out is not None:
            assert k.messages_out >= expect.min_messages_out, where
        if expect.max_errors is not None:
            assert k.errors <= expect.max_errors, (where, k.last_error)
        if expect.max_drops is not None:
            assert k.drops <= expect.max_drops, where
        if expect.must_complete:
            assert k.completed, where
    return {kernel_id: k.metrics for kernel_id, k in snap.items()}


@pytest.mark.parametrize("path", FINITE, ids=lambda p: p.stem)
async def test_topology_meets_its_smoke_expectations(
    path: Path, wait_until: Callable[..., Awaitable[None]]
) -> None:
    metrics = await run_topology(path, wait_until)
    if path.stem == "quickstart":
        n = 100_000
        assert metrics["total"]["total"] == (n - 1) * n * (2 * n - 1) // 6 == 333328333350000
    elif path.stem == "fan-in-out":
        n = 200_000
        want = (n - 1) * n * (2 * n - 1) // 6 + n * (n - 1)
        assert want == 2666686666500000
        assert metrics["total_a"]["total"] + metrics["total_b"]["total"] == want
    elif path.stem == "sensor-anomaly":
        assert metrics["stats"]["samples"] == 200 * 1024
        assert 0.9 * metrics["sensor"]["injected"] < metrics["alerts"]["anomalies"]
        assert metrics["alerts"]["anomalies"] <= metrics["sensor"]["injected"]
    elif path.stem == "sensor-records":
        records = 100 * 1024 * 8
        assert metrics["readings"]["records"] == records
        assert metrics["ewma_z"]["records_in"] == metrics["ewma_z"]["records_out"] == records
        assert metrics["flag"]["records_in"] == records  # ring to ring from ewma_z
        flagged = metrics["alert_log"]["anomalies"]
        assert metrics["flag"]["records_out"] == flagged
        injected = metrics["readings"]["injected"]
        assert 0.9 * injected < flagged <= injected + 5  # |z| > 5 of noise is rare
    elif path.stem == "pagerank":
        assert metrics["pagerank"]["residual"] < 1e-3
        assert metrics["store"]["keys"] == 10
    elif path.stem == "spectrum":
        assert [metrics["spectrum"][f"peak_bin_ch{c}"] for c in range(4)] == [16, 15, 14, 13]


@pytest.mark.parametrize("path", ENDLESS, ids=lambda p: p.stem)
async def test_an_endless_topology_runs_for_its_smoke_duration_and_drains(path: Path) -> None:
    from ringctl.orchestrator.loading import plan_from_file
    from ringctl.orchestrator.smoke import smoke_plan

    result = await smoke_plan(plan_from_file(path))
    assert result.ok, result.failures
    assert result.outcome == "stopped"  # by smoke.duration, then drained
