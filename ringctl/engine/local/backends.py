"""Choosing where a kernel runs: ``cpu``, ``cuda`` or ``auto``.

CuPy is imported only here and only when a kernel asks for ``cuda`` or ``auto``, so a
CPU-only topology never pays for it. ``cupy.is_available()`` never raises, which is why
it is the test (a broken driver or no device reads as "no usable GPU").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ringctl.exceptions import KernelLaunchError

__all__ = ["BackendChoice", "cuda_available", "cuda_checked", "resolve_backend"]

BACKENDS = ("cpu", "cuda", "auto")


@dataclass(frozen=True, slots=True)
class BackendChoice:
    backend: str  # "cpu" or "cuda"
    device: int | None
    note: str | None  # what the dashboard says about the choice, e.g. an auto fallback

    @property
    def device_label(self) -> str | None:
        return f"cuda:{self.device}" if self.backend == "cuda" else None


def cuda_checked() -> bool:
    """True once ``cuda_available`` has its (cached) answer, so asking costs nothing."""
    return cuda_available.cache_info().currsize > 0


@functools.cache
def cuda_available() -> tuple[bool, str]:
    """``(usable, why_not)``; cached for the process because the answer does not change."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising on import
        return False, f"cupy is not importable ({type(exc).__name__}: {exc})"
    try:
        if not cupy.is_available():
            return False, "cupy found no usable CUDA device"
    except Exception as exc:  # pragma: no cover - is_available is documented not to raise
        return False, f"cupy.is_available() failed: {exc}"
    return True, ""


def resolve_backend(kernel_id: str, requested: str, device: int | None = None) -> BackendChoice:
    """Turn the topology's ``backend`` into where the kernel actually runs.

    ``cuda`` with no usable GPU is a launch-phase error, so the two-phase launch rolls back.
    """
    if requested not in BACKENDS:
        raise KernelLaunchError(
            kernel_id,
            f"unknown backend {requested!r}",
            hint="backend is one of: cpu, cuda, auto",
        )
    if requested == "cpu":
        return BackendChoice("cpu", None, None)
    usable, why = cuda_available()
    if usable:
        return BackendChoice("cuda", device or 0, None)
    if requested == "auto":
        return BackendChoice("cpu", None, f"auto: no usable GPU ({why}), running on cpu")
    raise KernelLaunchError(
        kernel_id,
        f"backend: cuda needs a usable NVIDIA GPU, but {why}",
        hint="install ringctl[cuda13] (or [cuda12]) on a machine with a GPU, "
        "or set backend: auto to fall back to the CPU",
    )
