"""Exponentially weighted moving mean/variance, and z-scores against them.

The EWMA is a first-order linear recurrence per channel, ``y[t] = decay * y[t-1] + u[t]``,
which NumPy cannot vectorise directly. Three implementations give the same numbers:

- ``numba``: the plain loop, compiled (``@njit(cache=True)``). Fastest on the CPU by far
  (see ``benchmarks/kernels_bench.py``), so ``impl="auto"`` picks it there when Numba
  imports.
- ``scan``: a blocked scan written only with ``xp`` operations (a triangular matrix of
  decay powers times blocks of the input, then the same scan over the block ends), so it
  runs unchanged on NumPy and CuPy. Only non-negative powers of ``decay`` appear, so
  nothing overflows however long the batch; powers that underflow to zero are exact
  enough. This is the GPU default: a handful of batched matmuls instead of a Python loop.
- ``cuda_raw``: a CuPy ``RawKernel`` with one thread per channel running the loop; an
  alternative on the GPU for narrow batches (few channels leave most of the GPU idle,
  so the benchmark decides).

Statistics are "prior": row ``t`` of the output holds the estimate from samples before
``t``, which is what a detector must compare sample ``t`` against (an outlier must not
vouch for itself). Accumulation is in float64 whatever the input; outputs take the
input's float type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any, Literal

import numpy as np

from kernels.compute.backend import is_cupy, numba_available

__all__ = [
    "EwmaImpl",
    "EwmaResult",
    "anomalies",
    "ewma",
    "ewma_reference",
    "linear_scan",
    "resolve_ewma_impl",
    "warm_up_ewma",
    "zscore",
]

EwmaImpl = Literal["auto", "numba", "scan", "cuda_raw", "python"]

#: Rows per block of the blocked scan; 128 keeps the triangular matmul cheap (n * 128
#: multiply-adds per channel) while needing only two levels up to 16k rows, three beyond.
SCAN_BLOCK = 128


@dataclass(frozen=True, slots=True)
class EwmaResult:
    """Prior mean/variance per row, and the state after the last row (to carry forward)."""

    mean: Any
    var: Any
    last_mean: Any
    last_var: Any


def _out_dtype(x: Any) -> Any:
    return np.result_type(x.dtype, np.float32)


def _as_2d(x: Any) -> Any:
    return x.reshape(x.shape[0], 1) if x.ndim == 1 else x


def _initial_state(x2: Any, mean0: Any, var0: Any, xp: ModuleType) -> tuple[Any, Any]:
    channels = x2.shape[1]
    if mean0 is None:
        # No history: start at the first sample with zero variance, so the first rows
        # carry no information (callers skip them with a warm-up).
        m = x2[0].astype(xp.float64) if x2.shape[0] else xp.zeros(channels, xp.float64)
    else:
        m = xp.asarray(mean0, dtype=xp.float64).reshape(channels).copy()
    v = (
        xp.zeros(channels, xp.float64)
        if var0 is None
        else xp.asarray(var0, dtype=xp.float64).reshape(channels).copy()
    )
    return m, v


@lru_cache(maxsize=64)
def _np_decay_matrix(n: int, decay: float) -> np.ndarray:
    matrix: np.ndarray = _decay_matrix(n, decay, np)
    return matrix


def _decay_matrix(n: int, decay: float, xp: ModuleType) -> Any:
    j = xp.arange(n, dtype=xp.float64)
    power = j[:, None] - j[None, :]
    lower = power >= 0
    # Mask before exponentiating so no negative power is ever formed (decay may be 0).
    return xp.where(lower, xp.power(float(decay), xp.where(lower, power, 0.0)), 0.0)


def linear_scan(u: Any, decay: float, y0: Any, xp: ModuleType = np, block: int = SCAN_BLOCK) -> Any:
    """``y[t] = decay * y[t-1] + u[t]`` along axis 0 of a 2-D ``u``, with ``y[-1] = y0``.

    Written with ``xp`` only, so the same code runs on NumPy and CuPy.
    """
    n, channels = u.shape
    if n == 0:
        return u.copy()
    mat = _np_decay_matrix(min(n, block), decay) if xp is np else None
    if n <= block:
        lmat = mat if mat is not None else _decay_matrix(n, decay, xp)
        powers = xp.power(float(decay), xp.arange(1, n + 1, dtype=xp.float64))
        return lmat @ u + powers[:, None] * y0[None, :]
    nblocks = -(-n // block)
    pad = nblocks * block - n
    if pad:
        u = xp.concatenate([u, xp.zeros((pad, channels), dtype=u.dtype)])
    lmat = mat if mat is not None else _decay_matrix(block, decay, xp)
    local = xp.matmul(lmat, u.reshape(nblocks, block, channels))
    # The state entering each block is itself a scan over the blocks' local end values.
    ends = linear_scan(local[:, -1, :], decay**block, y0, xp, block)
    entering = xp.concatenate([y0[None, :], ends[:-1]])
    powers = xp.power(float(decay), xp.arange(1, block + 1, dtype=xp.float64))
    y = local + powers[None, :, None] * entering[:, None, :]
    return y.reshape(nblocks * block, channels)[:n]


def _ewma_scan(x2: Any, alpha: float, m0: Any, v0: Any, xp: ModuleType) -> tuple[Any, ...]:
    decay = 1.0 - alpha
    xf = x2.astype(xp.float64)
    post_mean = linear_scan(alpha * xf, decay, m0, xp)
    prior_mean = xp.concatenate([m0[None, :], post_mean[:-1]])
    d = xf - prior_mean
    post_var = linear_scan(decay * alpha * d * d, decay, v0, xp)
    prior_var = xp.concatenate([v0[None, :], post_var[:-1]])
    return prior_mean, prior_var, post_mean[-1].copy(), post_var[-1].copy()


def _ewma_python(x2: Any, alpha: float, m: Any, v: Any, om: Any, ov: Any) -> None:
    rows, channels = x2.shape
    for t in range(rows):
        for c in range(channels):
            mc = m[c]
            d = x2[t, c] - mc
            om[t, c] = mc
            ov[t, c] = v[c]
            m[c] = mc + alpha * d
            v[c] = (1.0 - alpha) * (v[c] + alpha * d * d)


_numba_ewma: Callable[..., None] | None = None


def _numba_kernel() -> Callable[..., None]:
    global _numba_ewma
    if _numba_ewma is None:
        import numba  # lazily: importing numba costs ~0.3 s

        _numba_ewma = numba.njit(cache=True, nogil=True, fastmath=False)(_ewma_python)
    return _numba_ewma


_CUDA_SOURCE = r"""
extern "C" __global__
void ewma_seq(const float* x, const double alpha, double* m, double* v,
              float* om, float* ov, const long long rows, const int channels) {
    int c = blockDim.x * blockIdx.x + threadIdx.x;
    if (c >= channels) return;
    double mc = m[c], vc = v[c];
    for (long long t = 0; t < rows; ++t) {
        long long i = t * channels + c;
        double d = (double)x[i] - mc;
        om[i] = (float)mc;
        ov[i] = (float)vc;
        mc += alpha * d;
        vc = (1.0 - alpha) * (vc + alpha * d * d);
    }
    m[c] = mc;
    v[c] = vc;
}
"""

_raw_kernels: dict[int, Any] = {}


def _cuda_raw_kernel(cp: ModuleType) -> Any:
    device = int(cp.cuda.Device().id)
    kernel = _raw_kernels.get(device)
    if kernel is None:
        kernel = cp.RawKernel(_CUDA_SOURCE, "ewma_seq")
        _raw_kernels[device] = kernel
    return kernel


def resolve_ewma_impl(impl: EwmaImpl, xp: ModuleType, dtype: Any = np.float32) -> EwmaImpl:
    """What ``auto`` means here: Numba on the CPU when it imports, the scan on the GPU."""
    if impl != "auto":
        if impl == "numba" and is_cupy(xp):
            raise ValueError("impl 'numba' runs on the CPU; use 'scan' or 'cuda_raw' on cuda")
        if impl == "cuda_raw" and not is_cupy(xp):
            raise ValueError("impl 'cuda_raw' needs the cuda backend")
        return impl
    if is_cupy(xp):
        return "scan"
    return "numba" if numba_available() else "scan"


def ewma(
    x: Any,
    alpha: float,
    mean0: Any = None,
    var0: Any = None,
    *,
    xp: ModuleType = np,
    impl: EwmaImpl = "auto",
) -> EwmaResult:
    """Prior EWMA mean/variance of ``x`` (rows are time, columns channels).

    Feed ``last_mean``/``last_var`` back as ``mean0``/``var0`` for the next batch: the
    result is then the same as one pass over the concatenated stream.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    x2 = _as_2d(xp.asarray(x))
    out_dtype = _out_dtype(x2)
    m, v = _initial_state(x2, mean0, var0, xp)
    which = resolve_ewma_impl(impl, xp, x2.dtype)
    if x2.shape[0] == 0:
        empty = xp.zeros(x2.shape, dtype=out_dtype)
        return EwmaResult(empty, empty.copy(), m, v)
    if which == "scan":
        pm, pv, lm, lv = _ewma_scan(x2, alpha, m, v, xp)
        return EwmaResult(pm.astype(out_dtype), pv.astype(out_dtype), lm, lv)
    if which == "cuda_raw" and x2.dtype == np.float32:
        x2 = xp.ascontiguousarray(x2)
        om = xp.empty(x2.shape, dtype=xp.float32)
        ov = xp.empty(x2.shape, dtype=xp.float32)
        rows, channels = x2.shape
        threads = 128
        blocks = -(-channels // threads)
        _cuda_raw_kernel(xp)(
            (blocks,),
            (threads,),
            (x2, np.float64(alpha), m, v, om, ov, np.int64(rows), np.int32(channels)),
        )
        return EwmaResult(om, ov, m, v)
    if which == "cuda_raw":
        pm, pv, lm, lv = _ewma_scan(x2, alpha, m, v, xp)
        return EwmaResult(pm.astype(out_dtype), pv.astype(out_dtype), lm, lv)
    om = np.empty(x2.shape, dtype=out_dtype)
    ov = np.empty(x2.shape, dtype=out_dtype)
    loop = _numba_kernel() if which == "numba" else _ewma_python
    loop(np.ascontiguousarray(x2), float(alpha), m, v, om, ov)
    return EwmaResult(om, ov, m, v)


def ewma_reference(x: Any, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The textbook loop in plain Python floats: the oracle the tests compare against."""
    x2 = _as_2d(np.asarray(x, dtype=np.float64))
    om = np.empty_like(x2)
    ov = np.empty_like(x2)
    m, v = _initial_state(x2, None, None, np)
    _ewma_python(x2, alpha, m, v, om, ov)
    return om, ov


def warm_up_ewma(xp: ModuleType, impl: EwmaImpl, dtype: Any = np.float32) -> EwmaImpl:
    """Compile (Numba) or load (CUDA) now, so the first real batch is not the slow one."""
    which = resolve_ewma_impl(impl, xp, dtype)
    sample = xp.ones((4, 2), dtype=dtype)
    ewma(sample, 0.5, xp=xp, impl=which)
    return which


_zscore_kernel: Any = None


def _cupy_zscore(cp: ModuleType) -> Any:
    # One fused pass instead of the four temporaries (sub, add, sqrt, div) CuPy would
    # otherwise launch and write back to GPU memory.
    global _zscore_kernel
    if _zscore_kernel is None:
        _zscore_kernel = cp.ElementwiseKernel(
            "T x, T m, T v, float64 eps",
            "T z",
            "z = (T)(((double)x - (double)m) / sqrt((double)v + eps))",
            "ringctl_zscore",
        )
    return _zscore_kernel


def zscore(x: Any, mean: Any, var: Any, *, eps: float = 1e-12, xp: ModuleType = np) -> Any:
    """How many standard deviations each sample sits from its prior mean."""
    x = xp.asarray(x)
    if is_cupy(xp):
        mean = xp.asarray(mean)
        return _cupy_zscore(xp)(
            x.astype(mean.dtype, copy=False), mean, xp.asarray(var, dtype=mean.dtype), eps
        )
    return (x - mean) / xp.sqrt(var + eps)


def anomalies(
    z: Any, threshold: float, *, skip_rows: int = 0, xp: ModuleType = np
) -> tuple[Any, Any, Any]:
    """Rows, channels and z of every ``|z| > threshold``, ignoring the first ``skip_rows``.

    ``skip_rows`` exists because the first samples of a stream have no variance estimate
    yet; their z-scores are meaningless, not alarming.
    """
    z2 = _as_2d(z)
    hits = xp.abs(z2) > threshold
    if skip_rows > 0:
        hits[: min(skip_rows, hits.shape[0])] = False
    rows, cols = xp.nonzero(hits)
    return rows, cols, z2[rows, cols]
