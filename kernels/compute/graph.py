"""PageRank power iterations over a sparse graph in CSR form.

The graph is stored by *incoming* edges (row ``i`` lists the nodes that link to ``i``),
so one iteration is a sparse matrix-vector product ``s = A_in @ (r / outdeg)``: each row
is a contiguous gather-and-sum, with no scatter and no atomics. Dangling nodes (no
out-links) spread their rank evenly, which keeps the total rank at exactly 1.

Implementations: NumPy (a gather, then ``bincount`` per row), Numba (the CSR row loop,
parallel over rows; faster on the CPU, see ``benchmarks/kernels_bench.py``) and, on the
GPU, cuSPARSE through ``cupyx.scipy.sparse``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np

from kernels.compute.backend import as_xp, is_cupy, numba_available

__all__ = [
    "CsrGraph",
    "PageRankImpl",
    "dense_pagerank",
    "from_edges",
    "pagerank",
    "pagerank_step",
    "random_graph",
    "resolve_pagerank_impl",
]

PageRankImpl = Literal["auto", "numpy", "numba", "cusparse"]


@dataclass(frozen=True)
class CsrGraph:
    """Incoming-edge CSR plus what an iteration needs precomputed, on one array module."""

    n: int
    indptr: Any
    indices: Any
    #: Row id of every stored edge (the COO form of ``indptr``), for ``bincount``.
    rows: Any
    #: ``1 / outdeg`` per node, 0 for dangling nodes.
    inv_out: Any
    dangling: Any
    xp: ModuleType = np
    #: A ``cupyx.scipy.sparse.csr_matrix`` when the graph lives on a GPU.
    device_matrix: Any = None

    @property
    def edges(self) -> int:
        return int(self.indices.shape[0])

    def to(self, xp: ModuleType) -> CsrGraph:
        """The same graph on another array module (one host-to-device copy of each array)."""
        if xp is self.xp:
            return self
        names = ("indptr", "indices", "rows", "inv_out", "dangling")
        arrays = {name: as_xp(getattr(self, name), xp) for name in names}
        matrix = None
        if is_cupy(xp):
            import cupyx.scipy.sparse as cusparse  # lazily: only where a GPU is used

            # cuSPARSE wants 32-bit indices in both arrays.
            data = xp.ones(arrays["indices"].shape[0], dtype=xp.float64)
            matrix = cusparse.csr_matrix(
                (data, arrays["indices"].astype(xp.int32), arrays["indptr"].astype(xp.int32)),
                shape=(self.n, self.n),
            )
        return CsrGraph(self.n, xp=xp, device_matrix=matrix, **arrays)


def from_edges(n: int, src: np.ndarray, dst: np.ndarray) -> CsrGraph:
    """Build from an edge list ``src[k] -> dst[k]``; duplicate edges and self-loops dropped."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
        raise ValueError(f"edge endpoints must be in [0, {n})")
    keep = src != dst
    pairs = np.unique(np.stack([dst[keep], src[keep]], axis=1), axis=0)  # sorted by dst
    dst_s, src_s = pairs[:, 0], pairs[:, 1]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(dst_s, minlength=n), out=indptr[1:])
    outdeg = np.bincount(src_s, minlength=n).astype(np.float64)
    inv_out = np.divide(1.0, outdeg, out=np.zeros(n), where=outdeg > 0)
    return CsrGraph(
        n=n,
        indptr=indptr,
        indices=src_s.astype(np.int32),
        rows=dst_s.astype(np.int32),
        inv_out=inv_out,
        dangling=np.flatnonzero(outdeg == 0).astype(np.int32),
    )


def random_graph(n: int, avg_degree: float, seed: int) -> CsrGraph:
    """A reproducible directed graph whose in-degrees are skewed (a few popular nodes).

    Targets are drawn as ``floor(n * u**3)``, so low ids collect most links and the
    PageRank vector is far from uniform: a test that it converged means something.
    """
    rng = np.random.default_rng(seed)
    out_counts = rng.poisson(avg_degree, n)
    src = np.repeat(np.arange(n, dtype=np.int64), out_counts)
    u = rng.random(src.shape[0])
    dst = np.minimum((n * u**3).astype(np.int64), n - 1)
    return from_edges(n, src, dst)


def _spmv_rows(indptr: Any, indices: Any, w: Any, out: Any) -> None:
    for i in range(out.shape[0]):
        acc = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            acc += w[indices[k]]
        out[i] = acc


_numba_spmv: Callable[..., None] | None = None


def _numba_kernel() -> Callable[..., None]:
    global _numba_spmv
    if _numba_spmv is None:
        import numba  # lazily: importing numba costs ~0.3 s

        def spmv(indptr: Any, indices: Any, w: Any, out: Any) -> None:
            for i in numba.prange(out.shape[0]):
                acc = 0.0
                for k in range(indptr[i], indptr[i + 1]):
                    acc += w[indices[k]]
                out[i] = acc

        _numba_spmv = numba.njit(cache=True, parallel=True, nogil=True)(spmv)
    return _numba_spmv


def resolve_pagerank_impl(impl: PageRankImpl, xp: ModuleType) -> PageRankImpl:
    if is_cupy(xp):
        if impl in ("numpy", "numba"):
            raise ValueError(f"impl {impl!r} runs on the CPU; use 'cusparse' on cuda")
        return "cusparse"
    if impl == "cusparse":
        raise ValueError("impl 'cusparse' needs the cuda backend")
    if impl == "auto":
        return "numba" if numba_available() else "numpy"
    return impl


def pagerank_step(
    g: CsrGraph, r: Any, damping: float = 0.85, *, impl: PageRankImpl = "auto"
) -> Any:
    """One power iteration: ``r' = (1 - d) / n + d * (A_in @ (r / outdeg) + dangling / n)``."""
    xp = g.xp
    which = resolve_pagerank_impl(impl, xp)
    r = xp.asarray(r, dtype=xp.float64)
    w = r * g.inv_out
    if which == "cusparse":
        s = g.device_matrix @ w
    elif which == "numba":
        s = np.empty(g.n, dtype=np.float64)
        _numba_kernel()(g.indptr, g.indices, w, s)
    else:
        s = np.bincount(g.rows, weights=w[g.indices], minlength=g.n)
    dangling_mass = r[g.dangling].sum() if g.dangling.shape[0] else 0.0
    return (1.0 - damping) / g.n + damping * (s + dangling_mass / g.n)


def pagerank(
    g: CsrGraph,
    damping: float = 0.85,
    *,
    tol: float = 1e-10,
    max_iter: int = 200,
    impl: PageRankImpl = "auto",
) -> tuple[Any, int]:
    """Iterate from the uniform vector until the L1 change is below ``tol``."""
    xp = g.xp
    r = xp.full(g.n, 1.0 / g.n, dtype=xp.float64)
    for i in range(1, max_iter + 1):
        nxt = pagerank_step(g, r, damping, impl=impl)
        delta = float(xp.abs(nxt - r).sum())
        r = nxt
        if delta < tol:
            return r, i
    return r, max_iter


def dense_pagerank(g: CsrGraph, damping: float = 0.85) -> np.ndarray:
    """The exact answer from the dense Google matrix's leading eigenvector (tiny graphs)."""
    n = g.n
    adj = np.zeros((n, n))  # adj[i, j] = 1 when j links to i
    adj[np.asarray(g.rows), np.asarray(g.indices)] = 1.0
    inv_out = np.asarray(g.inv_out)
    transition = adj * inv_out[None, :]
    transition[:, inv_out == 0] = 1.0 / n
    google = damping * transition + (1.0 - damping) / n
    values, vectors = np.linalg.eig(google)
    lead: np.ndarray = np.real(vectors[:, np.argmax(np.real(values))])
    normalised: np.ndarray = lead / lead.sum()
    return normalised
