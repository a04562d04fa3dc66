"""CPU and GPU paths agree (within float tolerance). Skipped where no GPU is usable."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from kernels import graph, spectrum, stats
from kernels import math as kmath
from kernels.compute.graph import pagerank, pagerank_step, random_graph
from kernels.compute.linalg import matmul, random_weights
from kernels.compute.spectrum import power_spectrum
from kernels.compute.stats import anomalies, ewma, zscore
from kernels.compute.synth import SensorStream

pytestmark = pytest.mark.gpu

Runner = Callable[..., Awaitable[Any]]


@pytest.mark.parametrize("impl", ["scan", "cuda_raw"])
@pytest.mark.parametrize("rows", [1, 64, 129, 4096, 65_536])
def test_ewma_on_the_gpu_equals_numba(cp: ModuleType, impl: str, rows: int) -> None:
    x = np.random.default_rng(rows).normal(size=(rows, 16)).astype(np.float32)
    want = ewma(x, 0.02, impl="numba")
    got = ewma(cp.asarray(x), 0.02, xp=cp, impl=impl)  # type: ignore[arg-type]
    np.testing.assert_allclose(got.mean.get(), want.mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.var.get(), want.var, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.last_mean.get(), want.last_mean, rtol=1e-9, atol=1e-9)


def test_ewma_streams_across_batches_on_the_gpu(cp: ModuleType) -> None:
    x = np.random.default_rng(0).normal(size=(3000, 4)).astype(np.float32)
    whole = ewma(x, 0.05, impl="numba")
    m = v = None
    parts = []
    for chunk in np.array_split(x, 7):
        r = ewma(cp.asarray(chunk), 0.05, m, v, xp=cp)
        m, v = r.last_mean, r.last_var
        parts.append(r.mean.get())
    np.testing.assert_allclose(np.concatenate(parts), whole.mean, rtol=1e-5, atol=1e-5)


def test_fused_zscore_and_detection_match(cp: ModuleType) -> None:
    x, _ = SensorStream(channels=8, seed=3).next_batch(8192)
    s = ewma(x, 0.02)
    z_cpu = zscore(x, s.mean, s.var)
    z_gpu = zscore(cp.asarray(x), cp.asarray(s.mean), cp.asarray(s.var), xp=cp)
    np.testing.assert_allclose(z_gpu.get(), z_cpu, rtol=1e-5, atol=1e-4)
    cpu = anomalies(z_cpu, 5.0, skip_rows=200)
    gpu = anomalies(z_gpu, 5.0, skip_rows=200, xp=cp)
    assert cpu[0].tolist() == gpu[0].get().tolist()
    assert cpu[1].tolist() == gpu[1].get().tolist()


@pytest.mark.parametrize("nfft", [None, 256])
def test_power_spectrum_on_the_gpu(cp: ModuleType, nfft: int | None) -> None:
    x, _ = SensorStream(channels=16, period=32.0).next_batch(4096)
    want = power_spectrum(x, nfft=nfft)
    got = power_spectrum(cp.asarray(x), xp=cp, nfft=nfft)
    np.testing.assert_allclose(got.get(), want, rtol=1e-3, atol=1e-4 * float(want.max()))


def test_matmul_on_the_gpu(cp: ModuleType) -> None:
    x = np.random.default_rng(0).normal(size=(512, 64)).astype(np.float32)
    w = random_weights(64, 32, seed=1)
    got = matmul(cp.asarray(x), cp.asarray(w), xp=cp).get()
    np.testing.assert_allclose(got, x @ w, rtol=1e-4, atol=1e-4)


def test_pagerank_cusparse_equals_the_cpu(cp: ModuleType) -> None:
    g = random_graph(50_000, 8.0, seed=2)
    dg = g.to(cp)
    r = np.random.default_rng(0).random(g.n)
    r /= r.sum()
    np.testing.assert_allclose(
        pagerank_step(dg, cp.asarray(r)).get(), pagerank_step(g, r), rtol=1e-10, atol=1e-15
    )
    want, _ = pagerank(g)
    got, _ = pagerank(dg)
    np.testing.assert_allclose(got.get(), want, atol=1e-10)


async def test_kernels_on_cuda_equal_cpu(cp: ModuleType, run: Runner) -> None:
    x, _ = SensorStream(channels=4, period=32.0).next_batch(2048)
    cpu = await run(spectrum.spectrum, [x], params={"nfft": 256})
    gpu = await run(spectrum.spectrum, [x], params={"nfft": 256}, backend="cuda")
    np.testing.assert_allclose(gpu.outputs[0], cpu.outputs[0], rtol=1e-3, atol=1e-3)
    sq = await run(kmath.square, [np.arange(5)], backend="cuda")
    assert sq.outputs[0].get().tolist() == [0, 1, 4, 9, 16]
    pr_cpu = await run(graph.pagerank, list(range(5)), params={"nodes": 2000})
    pr_gpu = await run(graph.pagerank, list(range(5)), params={"nodes": 2000}, backend="cuda")
    assert pr_gpu.outputs[-1].residual == pytest.approx(pr_cpu.outputs[-1].residual, rel=1e-6)


async def test_ewma_on_cuda_feeds_zscore_on_cpu(cp: ModuleType, run: Runner) -> None:
    batches = [SensorStream(channels=4, seed=5).next_batch(1024)[0] for _ in range(1)]
    gpu = await run(stats.ewma_stats, batches, backend="cuda")
    cpu = await run(stats.ewma_stats, batches)
    np.testing.assert_allclose(gpu.outputs[0].mean.get(), cpu.outputs[0].mean, rtol=1e-5, atol=1e-5)
    alerts_gpu = await run(stats.zscore_detector, gpu.outputs, params={"emit_empty": True})
    alerts_cpu = await run(stats.zscore_detector, cpu.outputs, params={"emit_empty": True})
    assert alerts_gpu.outputs[0].index.tolist() == alerts_cpu.outputs[0].index.tolist()
