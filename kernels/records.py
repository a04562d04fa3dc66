"""The message types kernels here send each other, besides bare arrays and numbers.

Frozen dataclasses with slots: cheap to create per batch, pickle for the Ray engine, and
read by attribute so a sink can tell a record from a payload without guessing at dicts.
Arrays inside are never copied on send; do not mutate them after sending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Keyed is ringctl's own (ringctl.authoring): the join and map helpers there know it.
from ringctl.authoring import Keyed

__all__ = ["Anomalies", "Keyed", "MovingStats", "PageRankStep"]


@dataclass(frozen=True, slots=True)
class MovingStats:
    """A batch of samples with the EWMA estimates from before each sample (see ``ewma``)."""

    #: Stream index of the batch's first row.
    t0: int
    x: Any
    mean: Any
    var: Any

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(frozen=True, slots=True)
class Anomalies:
    """The anomalies one batch held: stream indices, channels and z-scores (host arrays)."""

    t0: int
    samples: int
    index: Any
    channel: Any
    z: Any

    def __len__(self) -> int:
        return int(self.index.shape[0])


@dataclass(frozen=True, slots=True)
class PageRankStep:
    """What one PageRank iteration reports: how much the ranks moved, and the leaders."""

    iteration: int
    residual: float
    top_nodes: Any
    top_ranks: Any
    #: The whole rank vector (host array), only when the kernel was asked to emit it.
    rank: Any = None

    def __len__(self) -> int:
        return 1
