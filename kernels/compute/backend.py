"""Array-module plumbing shared by the compute functions.

CuPy and Numba are imported here lazily, on first use, because importing either costs
hundreds of milliseconds (and CuPy may not exist at all); a kernel that never asks for
them never pays.
"""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "as_xp",
    "cupy_module",
    "gpu_available",
    "is_cupy",
    "numba_available",
    "to_numpy",
    "xp_of",
]


@cache
def cupy_module() -> ModuleType | None:
    """CuPy if it imports, else ``None`` (cached: a failed import is slow to repeat)."""
    try:
        return importlib.import_module("cupy")
    except Exception:  # ImportError, but also CUDA libraries that fail to load
        return None


def gpu_available() -> bool:
    """Whether a CUDA device is usable; ``cupy.is_available()`` never raises, unlike a probe."""
    cp = cupy_module()
    return bool(cp is not None and cp.is_available())


@cache
def numba_available() -> bool:
    try:
        importlib.import_module("numba")
    except Exception:
        return False
    return True


def is_cupy(xp: ModuleType) -> bool:
    return xp.__name__ == "cupy"


def xp_of(a: Any) -> ModuleType:
    """The array module an array belongs to, without importing CuPy for NumPy arrays."""
    if type(a).__module__.startswith("cupy"):
        cp = cupy_module()
        if cp is not None:
            return cp
    return np


def to_numpy(a: Any) -> Any:
    """A host (NumPy) view of ``a``; copies only when ``a`` lives on a GPU."""
    get = getattr(a, "get", None)
    if get is not None and type(a).__module__.startswith("cupy"):
        return get()
    return np.asarray(a)


def as_xp(a: Any, xp: ModuleType) -> Any:
    """``a`` as an array of ``xp``: a no-op when it already is one, one transfer otherwise.

    ``numpy.asarray`` of a CuPy array raises instead of copying (on purpose, to make device
    to host copies explicit), hence the explicit ``get()`` for the CPU side.
    """
    if is_cupy(xp):
        return xp.asarray(a)
    return to_numpy(a)
