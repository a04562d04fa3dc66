"""Each kernel as a ten-line pipeline: list source -> kernel -> collecting sink."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kernels import flow, graph, sinks, sources, spectrum, stats
from kernels import math as kmath
from kernels.compute.spectrum import power_spectrum
from kernels.compute.stats import ewma
from kernels.compute.synth import SensorStream
from kernels.records import Anomalies, Keyed, MovingStats, PageRankStep
from ringctl import RingKernelRuntime

#: The ``run`` fixture: ``await run(kernel, messages, params=...)`` (see conftest).
Runner = Callable[..., Awaitable[Any]]
WaitUntil = Callable[..., Awaitable[None]]


# -- sources -----------------------------------------------------------------------------


async def test_counter_sends_ints_one_by_one(run: Runner) -> None:
    out = await run(sources.counter, params={"count": 1000})
    assert out.outputs == list(range(1000))
    assert out.metrics["sent"] == 1000


async def test_counter_sends_batches_with_keys(run: Runner) -> None:
    out = await run(
        sources.counter, params={"count": 10, "batch": 4, "start": 5, "step": 2, "keyed": True}
    )
    assert [m.key for m in out.outputs] == [0, 1, 2]
    values = np.concatenate([m.data for m in out.outputs])
    np.testing.assert_array_equal(values, np.arange(5, 25, 2))


async def test_sensor_sends_the_seeded_stream(run: Runner) -> None:
    out = await run(sources.sensor, params={"channels": 3, "batch": 100, "batches": 4})
    want = SensorStream(channels=3, seed=0)
    for got in out.outputs:
        np.testing.assert_array_equal(got, want.next_batch(100)[0])
    assert len(out.outputs) == 4 and out.metrics["samples"] == 400


async def test_sensor_keeps_its_rate(run: Runner) -> None:
    import time

    start = time.perf_counter()
    await run(sources.sensor, params={"channels": 1, "batch": 10, "batches": 6, "rate": 200})
    # 60 samples at 200/s: the first batch goes at once, the sixth after 0.25 s.
    assert time.perf_counter() - start >= 0.24


@pytest.mark.parametrize("suffix", [".csv", ".npy", ".jsonl"])
async def test_file_reader_reads_each_format(run: Runner, tmp_path: Path, suffix: str) -> None:
    data = np.arange(30, dtype=np.float32).reshape(10, 3)
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        path.write_text("a,b,c\n" + "".join(",".join(map(str, r)) + "\n" for r in data.tolist()))
    elif suffix == ".npy":
        np.save(path, data)
    else:
        path.write_text("".join(json.dumps({"row": r}) + "\n" for r in data.tolist()))
    out = await run(sources.file_reader, params={"path": str(path), "batch": 4})
    assert out.metrics["rows"] == 10
    if suffix == ".jsonl":
        assert [len(b) for b in out.outputs] == [4, 4, 2]
        assert out.outputs[2][1] == {"row": data[9].tolist()}
    else:
        np.testing.assert_array_equal(np.concatenate(out.outputs), data)


async def test_file_reader_fails_the_launch_for_a_missing_file(run: Runner, tmp_path: Path) -> None:
    from ringctl.exceptions import KernelLaunchError

    with pytest.raises(KernelLaunchError, match="no such file"):
        await run(sources.file_reader, params={"path": str(tmp_path / "nope.csv")})


# -- transforms --------------------------------------------------------------------------


async def test_square_keeps_ints_arrays_and_keys(run: Runner) -> None:
    msgs = [3, np.arange(4), Keyed(7, np.array([2.0]))]
    out = await run(kmath.square, msgs, replicas=2)
    assert sorted(m for m in out.outputs if isinstance(m, int)) == [9]
    arrays = [m for m in out.outputs if isinstance(m, np.ndarray)]
    np.testing.assert_array_equal(arrays[0], [0, 1, 4, 9])
    assert arrays[0].dtype == np.int64
    keyed = [m for m in out.outputs if isinstance(m, Keyed)]
    assert keyed[0].key == 7 and keyed[0].data.tolist() == [4.0]


async def test_scale_is_affine_and_keeps_integers_integer(run: Runner) -> None:
    out = await run(kmath.scale, [np.arange(3)], params={"factor": 3, "offset": 1})
    assert out.outputs[0].tolist() == [1, 4, 7] and out.outputs[0].dtype == np.int64
    out = await run(kmath.scale, [2], params={"factor": 0.5})
    assert out.outputs == [1.0]


async def test_vector_add_adds_pairs_and_counts_bad_messages(run: Runner) -> None:
    out = await run(kmath.vector_add, [(np.ones(3), np.arange(3)), "junk", (1, 2)])
    assert out.outputs[0].tolist() == [1.0, 2.0, 3.0] and out.outputs[1] == 3
    assert out.errors == 1


async def test_matmul_uses_the_seeded_weights(run: Runner) -> None:
    from kernels.compute.linalg import random_weights

    x = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    out = await run(kmath.matmul, [x], params={"in_features": 8, "out_features": 3, "seed": 9})
    np.testing.assert_allclose(out.outputs[0], x @ random_weights(8, 3, 9), rtol=1e-6)


async def test_ewma_then_zscore_flags_the_injected_spikes(run: Runner) -> None:
    stream = SensorStream(channels=4, seed=11, anomaly_rate=2e-3)
    batches, masks = zip(*(stream.next_batch(512) for _ in range(20)), strict=True)
    stats_out = await run(stats.ewma_stats, list(batches), params={"alpha": 0.02})
    assert [m.t0 for m in stats_out.outputs] == list(range(0, 20 * 512, 512))
    whole = ewma(np.concatenate(batches), 0.02)
    np.testing.assert_allclose(
        np.concatenate([m.mean for m in stats_out.outputs]), whole.mean, rtol=1e-5, atol=1e-5
    )
    alerts = await run(stats.zscore_detector, stats_out.outputs)
    found = {
        (int(i), int(c)) for a in alerts.outputs for i, c in zip(a.index, a.channel, strict=True)
    }
    rows, cols = np.nonzero(np.concatenate(masks))
    truth = {(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if r >= 200}
    assert len(found & truth) >= 0.9 * len(truth)
    assert len(found - truth) <= 2
    assert alerts.metrics["anomalies"] == len(found)


async def test_ewma_refuses_replicas(run: Runner) -> None:
    from ringctl.exceptions import KernelLaunchError

    with pytest.raises(KernelLaunchError, match="one replica"):
        await run(stats.ewma_stats, [], replicas=2)


async def test_spectrum_kernel_equals_the_function(run: Runner) -> None:
    x, _ = SensorStream(channels=2, period=32.0).next_batch(1024)
    out = await run(spectrum.spectrum, [x], params={"nfft": 256})
    np.testing.assert_allclose(out.outputs[0], power_spectrum(x, nfft=256), rtol=1e-6)
    assert out.metrics["peak_bin_ch0"] == 8  # 256 / 32


async def test_pagerank_iterates_once_per_tick_and_converges(run: Runner) -> None:
    out = await run(graph.pagerank, list(range(60)), params={"nodes": 500, "top": 3})
    steps: list[PageRankStep] = out.outputs
    assert [s.iteration for s in steps] == list(range(1, 61))
    assert steps[-1].residual < 1e-6 < steps[0].residual
    from kernels.compute.graph import pagerank as solve
    from kernels.compute.graph import random_graph

    want, _ = solve(random_graph(500, 8.0, 0))
    assert steps[-1].top_nodes.tolist() == np.argsort(-want)[:3].tolist()


async def test_join_pairs_branches_by_key(run: Runner) -> None:
    msgs = [Keyed(1, 10), Keyed(2, 5), Keyed(1, 32), Keyed(2, 1), 99]
    out = await run(flow.join, msgs)
    assert sorted((m.key, m.data) for m in out.outputs) == [(1, 42), (2, 6)]
    assert out.errors == 1
    out = await run(flow.join, msgs[:4], params={"op": "tuple"})
    assert out.outputs[0] == Keyed(1, (10, 32))


# -- sinks -------------------------------------------------------------------------------


async def test_summing_totals_numbers_and_arrays(run: Runner) -> None:
    msgs = [1, 2.5, np.arange(10), Keyed(0, np.ones((2, 2))), "not a number"]
    out = await run(sinks.summing, msgs)
    assert out.metrics["total"] == 1 + 2.5 + 45 + 4
    assert out.errors == 1


async def test_counting_counts_messages_and_items(run: Runner) -> None:
    empty = Anomalies(0, 10, np.array([1, 2]), np.array([0, 0]), np.array([9.0, 9.0]))
    out = await run(sinks.counting, [np.zeros((5, 2)), [1, 2, 3], 7, empty])
    assert out.metrics == {"messages": 4, "items": 5 + 3 + 1 + 2}


async def test_collect_writes_jsonl_and_npy(run: Runner, tmp_path: Path) -> None:
    jl = tmp_path / "out.jsonl"
    await run(sinks.collect, [1, np.arange(2), Keyed("a", 2.0)], params={"path": str(jl)})
    lines = [json.loads(line) for line in jl.read_text().splitlines()]
    assert lines == [1, [0, 1], {"key": "a", "data": 2.0}]
    npy = tmp_path / "out.npy"
    await run(sinks.collect, [np.ones((2, 3)), np.zeros((1, 3))], params={"path": str(npy)})
    np.testing.assert_array_equal(np.load(npy), [[1, 1, 1], [1, 1, 1], [0, 0, 0]])


async def test_printer_prints_summaries(run: Runner, capsys: pytest.CaptureFixture[str]) -> None:
    await run(sinks.printer, [np.arange(4), "hi", 3], params={"every": 2, "prefix": "> "})
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["> k #1: array(4,) int64 min=0 max=3", "> k #3: 3"]


async def test_key_value_store_keeps_the_latest_per_key(run: Runner, tmp_path: Path) -> None:
    snap = tmp_path / "store.json"
    steps = [PageRankStep(i, 1.0 / i, np.array([0]), np.array([0.5])) for i in (1, 2, 3)]
    out = await run(
        sinks.key_value_store,
        [*steps, Keyed("a", 1), Keyed("a", 2)],
        params={"key": "iteration", "max_keys": 3, "snapshot_path": str(snap)},
    )
    assert out.errors == 2  # Keyed has no 'iteration'
    assert out.metrics["keys"] == 3
    await run(
        sinks.key_value_store,
        [Keyed("a", 1), Keyed("b", 2), Keyed("a", 3)],
        params={"snapshot_path": str(snap)},
    )
    assert json.loads(snap.read_text()) == {"b": 2, "a": 3}


async def test_alerts_and_channel_stats(run: Runner) -> None:
    a = Anomalies(0, 100, np.array([5, 9]), np.array([1, 0]), np.array([6.0, -7.5]))
    out = await run(sinks.alerts, [a, a], params={"keep": 3})
    assert out.metrics["anomalies"] == 4 and out.metrics["last"] == "t=9 ch=0 z=-7.5"
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(5000, 2))
    stats_msg = MovingStats(0, x[2500:], x[2500:], x[2500:])
    out = await run(sinks.channel_stats, [x[:2500], stats_msg])
    assert out.metrics["samples"] == 5000
    assert out.metrics["mean"] == pytest.approx(x.mean(), abs=1e-9)
    assert out.metrics["std"] == pytest.approx(x.std(axis=0).mean(), abs=1e-9)
    assert out.metrics["min"] == x.min()


# -- a whole pipeline --------------------------------------------------------------------


async def test_counter_square_sum_pipeline(wait_until: WaitUntil) -> None:
    async with RingKernelRuntime() as rt:
        await rt.launch("total", sinks.summing)
        await rt.launch("square", kmath.square, replicas=2)
        await rt.launch("source", sources.counter, params={"count": 100_000, "batch": 1000})
        rt.connect("source", "square")
        rt.connect("square", "total")
        for kid in ("total", "square", "source"):
            await rt.activate(kid)
        await rt.wait_finished("source", timeout=10)
        await wait_until(rt.is_quiescent)
        totals = {k.id: k.metrics for k in rt.snapshot().kernels}
    n = 100_000
    assert totals["total"]["total"] == (n - 1) * n * (2 * n - 1) // 6
