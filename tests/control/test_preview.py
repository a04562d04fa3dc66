"""What ``ringctl tap`` shows of a message: small, JSON-safe, arrays as dtype and shape."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ringctl._preview import preview, preview_text


@dataclass
class Stats:
    t0: int
    mean: np.ndarray


class Pair(NamedTuple):
    key: str
    value: float


def test_arrays_show_dtype_shape_and_first_values() -> None:
    doc = preview(np.arange(1000, dtype=np.int64) ** 2)
    assert doc == {"type": "numpy.ndarray", "dtype": "int64", "shape": [1000],
                   "head": [0, 1, 4, 9, 16, 25]}  # fmt: skip
    assert preview_text(doc) == "ndarray int64[1000] [0, 1, 4, 9, 16, 25, …]"
    small = preview(np.array([[0.5, 1.25]], dtype=np.float32))
    assert preview_text(small) == "ndarray float32[1,2] [0.5, 1.25]"


def test_containers_dataclasses_and_named_tuples_a_few_levels_deep() -> None:
    doc = preview(Stats(3, np.zeros((2, 3))))
    assert preview_text(doc) == "Stats(t0=3, mean=ndarray float64[2,3] [0, 0, 0, 0, 0, 0])"
    assert preview_text(preview(Pair("a", 0.1))) == "Pair(key='a', value=0.1)"
    assert preview_text(preview(list(range(10)))) == "[0, 1, 2, 3, 4, 5, …] (len 10)"
    assert preview({"k": [1]}) == {"k": {"type": "list", "len": 1, "head": [1]}}
    deep: list[object] = [[[[["bottom"]]]]]
    assert "bottom" in json.dumps(preview(deep))  # cut off as a repr, still JSON


def test_everything_is_json_safe_and_long_text_is_cut() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "x" * 1000

    values = [float("nan"), b"\x00\x01", "y" * 500, Opaque(), None, True, 3]
    doc = preview(values)
    json.dumps(doc, allow_nan=False)
    assert len(preview("y" * 500)) == 201
    assert preview(Opaque())["repr"].endswith("…")
