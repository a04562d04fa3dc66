"""The checks of the topology format that are not types, as plain functions of plain values.

The pydantic models in ``schema.py`` call them from their validators, and the compiled
schema that ``ringctl validate`` starts with (``compiled.py``) calls them on plain dicts,
so both ways of reading a file apply one rule. This module imports nothing heavy: it is
on the path of a command that must start fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "DEFAULT_PORT",
    "MAX_INSTANCES",
    "RULES",
    "bounds_problem",
    "instances_problem",
    "not_bool",
    "queue_label",
    "raise_problem",
    "ring_problem",
    "split_endpoint",
]

DEFAULT_PORT: Final = "out"
#: Kernel instances (every kernel's replicas, added up) one topology may run.
MAX_INSTANCES: Final = 10_000
_MAX_RING: Final = 1 << 24


def not_bool(value: object) -> object:
    """Refuse a YAML boolean where a number belongs (pydantic's lax mode reads `true` as 1)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a number; got {str(value).lower()}")
    return value


def ring_problem(ring: int) -> str | None:
    """What is wrong with a persistent kernel's ring size, if anything."""
    if ring < 2 or ring & (ring - 1) or ring > _MAX_RING:
        below = 1 << max(1, ring.bit_length() - 1)
        return (
            f"ring must be a power of two between 2 and {_MAX_RING}, got {ring} "
            f"(try {below} or {below * 2})"
        )
    return None


def bounds_problem(equals: object, low: Any, high: Any) -> str | None:
    """What is wrong with a metric's ``{equals, min, max}`` bounds, if anything."""
    if equals is None and low is None and high is None:
        return "give at least one of equals, min, max"
    if low is not None and high is not None and low > high:
        return f"min ({low}) is greater than max ({high})"
    return None


def instances_problem(instances: int) -> str | None:
    """What is wrong with a topology's number of kernel instances, if anything."""
    if instances > MAX_INSTANCES:
        return (
            f"{instances} kernel instances (replicas added up) is more than one "
            f"topology may run ({MAX_INSTANCES}); lower `replicas` or split the topology"
        )
    return None


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """``kernel[.port]`` -> (kernel, port); the port defaults to ``out``."""
    kernel, _, port = endpoint.partition(".")
    return kernel, port or DEFAULT_PORT


def queue_label(producer: str, port: str, consumer: str) -> str:
    """``producer.port -> consumer``, how messages and ``ringctl ps`` name a queue."""
    return f"{producer}.{port} -> {consumer}"


def raise_problem(problem: str | None) -> None:
    """Raise a problem found as a validator does: ``ValueError`` (none: nothing to raise)."""
    if problem is not None:
        raise ValueError(problem)


# The same checks over the dicts the compiled schema validates into.


def persistent_rule(spec: Mapping[str, Any]) -> Mapping[str, Any]:
    if spec["ring"] is not None:  # None: sized in bytes at launch
        raise_problem(ring_problem(spec["ring"]))
    return spec


def bounds_rule(bounds: Mapping[str, Any]) -> Mapping[str, Any]:
    raise_problem(bounds_problem(bounds.get("equals"), bounds.get("min"), bounds.get("max")))
    return bounds


def topology_rule(topology: Mapping[str, Any]) -> Mapping[str, Any]:
    raise_problem(instances_problem(sum(spec["replicas"] for spec in topology["kernels"].values())))
    return topology


#: What the compiled schema may call, by name: nothing outside this table.
RULES: Final[Mapping[str, Any]] = {
    "not_bool": not_bool,
    "persistent_rule": persistent_rule,
    "bounds_rule": bounds_rule,
    "topology_rule": topology_rule,
}
