"""Power spectrum of a batch of samples (rows are time, columns channels).

Welch-style: the batch is cut into frames of ``nfft`` rows, each frame is detrended and
windowed, and the squared magnitudes of their real FFTs are averaged. NumPy's
``numpy.fft`` on the CPU, cuFFT through ``cupy.fft`` on the GPU: the FFT libraries are
already the fast path, and Numba has no FFT, so there is no third implementation.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Literal

import numpy as np

__all__ = ["Window", "frequencies", "power_spectrum"]

Window = Literal["hann", "none"]


def power_spectrum(
    x: Any,
    *,
    xp: ModuleType = np,
    nfft: int | None = None,
    window: Window = "hann",
    detrend: bool = True,
) -> Any:
    """Mean power per frequency bin and channel, shape ``(nfft // 2 + 1, channels)``.

    Scaled by the window's energy, so a white noise of variance ``s`` gives a flat
    spectrum of about ``s`` whatever the window (Parseval, up to the one-sided fold).
    Rows past the last whole frame are ignored, as in Welch's method.
    """
    x = xp.asarray(x)
    one_d = x.ndim == 1
    x2 = x.reshape(-1, 1) if one_d else x
    rows, channels = x2.shape
    size = rows if nfft is None else nfft
    if size < 1 or rows < size:
        raise ValueError(f"need at least one frame of {size} rows, got {rows} rows")
    frames = rows // size
    work_dtype = xp.float32 if x2.dtype == np.float32 else xp.float64
    seg = x2[: frames * size].astype(work_dtype, copy=False).reshape(frames, size, channels)
    if detrend:
        seg = seg - seg.mean(axis=1, keepdims=True)
    if window == "hann":
        w = xp.hanning(size).astype(work_dtype) if size > 1 else xp.ones(1, dtype=work_dtype)
        seg = seg * w[None, :, None]
        energy = float((w * w).sum())
    else:
        energy = float(size)
    spec = xp.fft.rfft(seg, axis=1)
    power = (spec.real * spec.real + spec.imag * spec.imag).mean(axis=0) / energy
    power = power.astype(work_dtype, copy=False)
    return power[:, 0] if one_d else power


def frequencies(nfft: int, sample_rate: float = 1.0) -> np.ndarray:
    """Bin centres of ``power_spectrum`` (cycles per sample unless a rate is given)."""
    return np.fft.rfftfreq(nfft, d=1.0 / sample_rate)
