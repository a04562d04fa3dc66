"""A synthetic multi-channel sensor stream with labelled, seeded anomalies.

Each channel is a slow sinusoid (its own period and phase) plus Gaussian noise; an
anomaly is a spike of ``anomaly_magnitude`` noise standard deviations, added at random
(seeded) positions. The stream is a pure function of its parameters, its seed and the
sequence of batch sizes asked for, so a test can regenerate exactly what a source sent
and check what a detector found against the labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SensorStream"]


@dataclass
class SensorStream:
    channels: int = 8
    seed: int = 0
    noise: float = 1.0
    amplitude: float = 3.0
    #: Period of channel 0 in samples; channel ``c`` uses ``period * (1 + c / channels)`` so
    #: every channel has its own spectral line.
    period: float = 1000.0
    anomaly_rate: float = 1e-3
    anomaly_magnitude: float = 8.0
    dtype: str = "float32"
    #: Index of the next sample; the stream's clock.
    t: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)
    _periods: np.ndarray = field(init=False, repr=False)
    _phases: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise ValueError(f"channels must be at least 1, got {self.channels}")
        self._rng = np.random.default_rng(self.seed)
        self._periods = self.period * (1.0 + np.arange(self.channels) / self.channels)
        self._phases = self._rng.uniform(0.0, 2.0 * np.pi, self.channels)

    def next_batch(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The next ``rows`` samples as ``(data (rows, channels), anomaly mask)``."""
        t = np.arange(self.t, self.t + rows, dtype=np.float64)[:, None]
        signal = self.amplitude * np.sin(2.0 * np.pi * t / self._periods + self._phases)
        noise = self._rng.standard_normal((rows, self.channels)) * self.noise
        mask = self._rng.random((rows, self.channels)) < self.anomaly_rate
        signs = np.where(self._rng.random((rows, self.channels)) < 0.5, -1.0, 1.0)
        spikes = mask * signs * (self.anomaly_magnitude * self.noise)
        self.t += rows
        return (signal + noise + spikes).astype(self.dtype), mask
