"""Dense linear algebra: element-wise add and a fixed-weight matrix multiply.

Both defer to the array library (BLAS / cuBLAS); the only thing worth owning here is
making the weights reproducible from a seed, identical on CPU and GPU.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["matmul", "random_weights", "vector_add"]


def vector_add(a: Any, b: Any, *, xp: ModuleType = np) -> Any:
    return xp.add(xp.asarray(a), xp.asarray(b))


def random_weights(rows: int, cols: int, seed: int, dtype: str = "float32") -> np.ndarray:
    """Glorot-scaled weights, generated on the host so every backend starts identical."""
    rng = np.random.default_rng(seed)
    scale = np.sqrt(2.0 / (rows + cols))
    weights: np.ndarray = (rng.standard_normal((rows, cols)) * scale).astype(dtype)
    return weights


def matmul(x: Any, w: Any, *, xp: ModuleType = np) -> Any:
    return xp.matmul(xp.asarray(x), w)
