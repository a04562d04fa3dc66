"""The math on its own: NumPy against references, Numba against NumPy, properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from kernels.compute.graph import (
    dense_pagerank,
    from_edges,
    pagerank,
    pagerank_step,
    random_graph,
)
from kernels.compute.linalg import matmul, random_weights, vector_add
from kernels.compute.spectrum import frequencies, power_spectrum
from kernels.compute.stats import (
    anomalies,
    ewma,
    ewma_reference,
    linear_scan,
    resolve_ewma_impl,
    zscore,
)
from kernels.compute.synth import SensorStream

IMPLS = ["numba", "scan", "python"]

# -- EWMA -------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("rows", [1, 2, 127, 128, 129, 1000, 20_000])
def test_ewma_matches_the_textbook_loop(impl: str, rows: int) -> None:
    if impl == "python" and rows > 1000:
        pytest.skip("the pure-Python loop is the oracle, not a contender")
    x = np.random.default_rng(rows).normal(size=(rows, 3)).astype(np.float32)
    want_mean, want_var = ewma_reference(x, 0.05)
    got = ewma(x, 0.05, impl=impl)  # type: ignore[arg-type]
    assert got.mean.dtype == np.float32
    np.testing.assert_allclose(got.mean, want_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.var, want_var, rtol=1e-5, atol=1e-5)


def test_ewma_stats_are_prior_to_each_sample() -> None:
    # A spike must be judged against the estimate from before it.
    x = np.array([[0.0], [0.0], [100.0]])
    got = ewma(x, 0.5, impl="numba")
    assert got.mean[2, 0] == 0.0
    assert got.last_mean[0] == 50.0


@settings(max_examples=60, deadline=None)
@given(
    x=arrays(
        np.float64,
        st.tuples(st.integers(1, 300), st.integers(1, 4)),
        elements=st.floats(-1e3, 1e3, allow_nan=False),
    ),
    cuts=st.lists(st.integers(0, 300), max_size=4),
    alpha=st.floats(0.001, 1.0),
    impl=st.sampled_from(["numba", "scan"]),
)
def test_ewma_in_chunks_equals_one_pass(
    x: np.ndarray, cuts: list[int], alpha: float, impl: str
) -> None:
    whole = ewma(x, alpha, impl=impl)  # type: ignore[arg-type]
    bounds = sorted({0, x.shape[0], *(c for c in cuts if c < x.shape[0])})
    means, variances = [], []
    m = v = None
    for a, b in itertools.pairwise(bounds):
        part = ewma(x[a:b], alpha, m, v, impl=impl)  # type: ignore[arg-type]
        m, v = part.last_mean, part.last_var
        means.append(part.mean)
        variances.append(part.var)
    scale = 1.0 + np.abs(x).max() ** 2
    np.testing.assert_allclose(np.concatenate(means), whole.mean, atol=1e-9 * scale)
    np.testing.assert_allclose(np.concatenate(variances), whole.var, atol=1e-9 * scale)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(1, 2000),
    decay=st.floats(0.0, 1.0),
    block=st.sampled_from([2, 3, 16, 128]),
)
def test_linear_scan_matches_the_recurrence(rows: int, decay: float, block: int) -> None:
    u = np.random.default_rng(rows).normal(size=(rows, 2))
    y0 = np.array([1.0, -2.0])
    want = np.empty_like(u)
    y = y0.copy()
    for t in range(rows):
        y = decay * y + u[t]
        want[t] = y
    np.testing.assert_allclose(linear_scan(u, decay, y0, np, block), want, atol=1e-9 * rows)


def test_ewma_rejects_bad_alpha_and_impl() -> None:
    with pytest.raises(ValueError, match="alpha"):
        ewma(np.ones((2, 1)), 0.0)
    with pytest.raises(ValueError, match="cuda"):
        resolve_ewma_impl("cuda_raw", np)


def test_ewma_auto_prefers_numba_on_the_cpu() -> None:
    assert resolve_ewma_impl("auto", np) == "numba"


def test_ewma_of_an_empty_batch_keeps_the_state() -> None:
    got = ewma(np.empty((0, 2), np.float32), 0.1, np.ones(2), np.zeros(2))
    assert got.mean.shape == (0, 2)
    np.testing.assert_array_equal(got.last_mean, np.ones(2))


# -- anomaly detection -------------------------------------------------------------------


def test_detector_finds_the_injected_anomalies() -> None:
    """EWMA + z-score over the seeded sensor stream, streamed batch by batch."""
    stream = SensorStream(channels=8, seed=7, anomaly_rate=1e-3, anomaly_magnitude=8.0)
    m = v = None
    warmup = 200
    found: set[tuple[int, int]] = set()
    truth: set[tuple[int, int]] = set()
    t0 = 0
    for _ in range(50):
        x, mask = stream.next_batch(1024)
        res = ewma(x, 0.02, m, v)
        m, v = res.last_mean, res.last_var
        z = zscore(x, res.mean, res.var)
        rows, cols, _ = anomalies(z, 5.0, skip_rows=warmup - t0)
        found |= {(int(r) + t0, int(c)) for r, c in zip(rows, cols, strict=True)}
        tr, tc = np.nonzero(mask)
        truth |= {(int(r) + t0, int(c)) for r, c in zip(tr, tc, strict=True) if r + t0 >= warmup}
        t0 += x.shape[0]
    assert len(truth) > 300
    hits = len(found & truth)
    # A spike inflates the variance estimate for ~1/alpha samples, hiding the odd spike
    # that follows close behind: recall is high, not perfect. False alarms are rare.
    assert hits / len(truth) > 0.93, "recall"
    assert hits / len(found) > 0.98, "precision"


def test_sensor_stream_is_reproducible() -> None:
    a = SensorStream(channels=3, seed=1).next_batch(500)
    b = SensorStream(channels=3, seed=1).next_batch(500)
    c = SensorStream(channels=3, seed=2).next_batch(500)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].dtype == np.float32 and a[0].shape == (500, 3)


def test_anomalies_skip_the_warmup_rows() -> None:
    z = np.zeros((10, 2))
    z[1, 0] = 9.0
    z[5, 1] = -9.0
    rows, cols, zs = anomalies(z, 5.0, skip_rows=3)
    assert rows.tolist() == [5] and cols.tolist() == [1] and zs.tolist() == [-9.0]


# -- spectrum ----------------------------------------------------------------------------


def test_power_spectrum_is_numpy_fft_directly() -> None:
    x = np.random.default_rng(0).normal(size=(256, 3))
    got = power_spectrum(x, window="none", detrend=False)
    want = np.abs(np.fft.rfft(x, axis=0)) ** 2 / 256
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_power_spectrum_averages_hann_windowed_frames() -> None:
    x = np.random.default_rng(1).normal(size=(1000, 2)).astype(np.float32)
    got = power_spectrum(x, nfft=128)
    w = np.hanning(128)
    frames = x[: 7 * 128].astype(np.float64).reshape(7, 128, 2)
    frames = (frames - frames.mean(axis=1, keepdims=True)) * w[None, :, None]
    want = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0) / (w * w).sum()
    assert got.shape == (65, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_power_spectrum_finds_each_channels_line() -> None:
    stream = SensorStream(channels=4, seed=3, period=32.0, noise=0.1, anomaly_rate=0.0)
    x, _ = stream.next_batch(4096)
    power = power_spectrum(x, nfft=512)
    peaks = frequencies(512)[power.argmax(axis=0)]
    want = 1.0 / (32.0 * (1.0 + np.arange(4) / 4))
    np.testing.assert_allclose(peaks, want, atol=1.0 / 512)


def test_white_noise_power_is_its_variance() -> None:
    x = np.random.default_rng(2).normal(scale=2.0, size=(1 << 16,))
    power = power_spectrum(x, nfft=256)
    assert power.shape == (129,)
    assert abs(power[1:-1].mean() - 4.0) < 0.1


def test_power_spectrum_needs_a_frame() -> None:
    with pytest.raises(ValueError, match="frame"):
        power_spectrum(np.ones((10, 1)), nfft=16)


# -- linear algebra ----------------------------------------------------------------------


def test_vector_add_and_seeded_matmul() -> None:
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(vector_add(a, a), 2 * a)
    w = random_weights(3, 4, seed=5)
    np.testing.assert_array_equal(w, random_weights(3, 4, seed=5))
    np.testing.assert_allclose(matmul(a, w), a @ w)


# -- PageRank ----------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["numpy", "numba"])
def test_pagerank_converges_to_the_dense_eigenvector(impl: str) -> None:
    g = random_graph(60, 1.5, seed=4)
    assert len(g.dangling) > 0  # the dangling-node path is exercised
    rank, iterations = pagerank(g, impl=impl)  # type: ignore[arg-type]
    assert iterations < 200
    np.testing.assert_allclose(rank, dense_pagerank(g), atol=1e-10)
    assert abs(rank.sum() - 1.0) < 1e-12


def test_pagerank_of_a_known_graph() -> None:
    # 0 -> 1 -> 2 -> 0 is symmetric: every node gets a third, whatever the damping.
    g = from_edges(3, np.array([0, 1, 2]), np.array([1, 2, 0]))
    rank, _ = pagerank(g, damping=0.9)
    np.testing.assert_allclose(rank, [1 / 3] * 3, atol=1e-12)
    # A star into node 0 concentrates rank there.
    star = from_edges(4, np.array([1, 2, 3]), np.array([0, 0, 0]))
    rank, _ = pagerank(star)
    assert rank.argmax() == 0
    np.testing.assert_allclose(rank, dense_pagerank(star), atol=1e-10)


def test_pagerank_numba_equals_numpy_on_a_large_graph() -> None:
    g = random_graph(20_000, 8.0, seed=0)
    r = np.random.default_rng(0).random(g.n)
    r /= r.sum()
    np.testing.assert_allclose(
        pagerank_step(g, r, impl="numba"), pagerank_step(g, r, impl="numpy"), rtol=1e-12
    )


def test_from_edges_drops_self_loops_and_duplicates() -> None:
    g = from_edges(3, np.array([0, 0, 0, 1]), np.array([1, 1, 0, 2]))
    assert g.edges == 2
    assert g.indptr.tolist() == [0, 0, 1, 2]
    assert g.dangling.tolist() == [2]
    with pytest.raises(ValueError, match="endpoints"):
        from_edges(2, np.array([0]), np.array([5]))
