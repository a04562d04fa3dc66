"""Shared fixtures: a realistic status document, a frame renderer, a document generator."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from ringctl.dashboard import render

SAMPLE = Path(__file__).with_name("sample_status.json")

Frame = Callable[..., str]


@pytest.fixture
def status() -> dict[str, Any]:
    """Five kernels: busy source, stalled square, backpressured scale, idle sink, failed audit."""
    document: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    return copy.deepcopy(document)


def draw(document: Mapping[str, Any] | None, width: int = 120, **kwargs: Any) -> str:
    """What a person sees: the view printed to a plain ``width``-column console."""
    console = Console(file=StringIO(), width=width, color_system=None, legacy_windows=False)
    console.print(render(document, **kwargs))
    out = console.file
    assert isinstance(out, StringIO)
    return out.getvalue()


@pytest.fixture
def frame() -> Frame:
    return draw


def synthetic(n: int, *, stalled_at: int | None = None) -> dict[str, Any]:
    """A running topology of ``n`` kernels in a chain (one queue per hop)."""
    kernels = []
    for i in range(n):
        kernels.append(
            {
                "id": f"k{i:04d}",
                "state": "ACTIVE",
                "backend": "cpu",
                "device": None,
                "replicas": 1,
                "messages_in": 1000 * i,
                "messages_out": 1000 * i,
                "rate_in": 10.0 * i,
                "rate_out": 10.0 * i,
                "inbox_depth": 0,
                "inbox_capacity": 1024,
                "inbox_high_water": 8,
                "drops": 0,
                "errors": 0,
                "restarts": 0,
                "latency_p50_us": 2.0,
                "latency_p99_us": 9.0,
                "last_error": None,
                "completed": False,
                "waiting": 1,
                "blocked": 0,
                "last_progress_s": 0.1,
            }
        )
    if stalled_at is not None:
        kernels[stalled_at].update(inbox_depth=500, waiting=0, last_progress_s=30.0)
    queues = [
        {
            "from": f"k{i:04d}.out",
            "to": f"k{i + 1:04d}",
            "depth": 0,
            "capacity": 1024,
            "backpressure": "block",
            "messages": 1000 * i,
            "drops": 0,
            "high_water": 8,
            "blocked_s": 0.0,
        }
        for i in range(n - 1)
    ]
    return {
        "name": f"chain{n}",
        "state": "running",
        "uptime_s": 60.0,
        "kernels": kernels,
        "queues": queues,
    }


@pytest.fixture
def make_chain() -> Callable[..., dict[str, Any]]:
    return synthetic
