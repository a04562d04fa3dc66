"""``ringctl validate``'s fast path: prove a file valid without importing pydantic.

The file is read by the same loader, validated by the compiled schema (``compiled.py``),
and its wiring and entries are checked by the same functions as on the full path, over a
plain view of the validated data. Only a file with nothing to report passes here; for
anything else (a problem, a cold cache) ``quick_validate`` answers ``None`` and the caller
takes ``load_topology``, whose models word every problem with its position. So this
path can make validation faster, never different.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringctl.topology.compiled import load_validator, store
from ringctl.topology.entries import missing_entries
from ringctl.topology.errors import Diagnostic, TopologyError
from ringctl.topology.graph import check_graph
from ringctl.topology.loader import Loaded, load_yaml
from ringctl.topology.rules import queue_label, split_endpoint

__all__ = ["Summary", "check_file", "quick_validate"]


@dataclass(frozen=True, slots=True)
class Summary:
    """What ``validate`` reports of a valid file."""

    name: str
    kernels: int
    queues: int
    engine: str


# Plain classes, not dataclasses: this module is on a path that must start fast.


class _Kernel:
    __slots__ = ("backend", "default_backend", "depends_on", "entry", "persistent", "replicas")

    def __init__(self, spec: Mapping[str, Any], default_backend: str) -> None:
        self.entry: str = spec["entry"]
        self.depends_on: Sequence[str] = spec["depends_on"]
        self.replicas: int = spec["replicas"]
        self.backend: str | None = spec["backend"]
        self.persistent: object | None = spec["persistent"]
        self.default_backend = default_backend

    @property
    def effective_backend(self) -> str:
        return self.backend if self.backend is not None else self.default_backend


class _Edge:
    __slots__ = ("feedback", "from_", "port", "producer", "to")

    def __init__(self, edge: Mapping[str, Any]) -> None:
        self.from_: str = edge["from_"]
        self.to: str = edge["to"]
        self.feedback: bool = edge["feedback"]
        self.producer, self.port = split_endpoint(self.from_)

    @property
    def label(self) -> str:
        return queue_label(self.producer, self.port, self.to)


class _Smoke:
    __slots__ = ("expect",)

    def __init__(self, smoke: Mapping[str, Any]) -> None:
        self.expect: Mapping[str, object] = smoke["expect"]


class _View:
    """The validated data, shaped as ``graph.Wiring`` and ``entries.Searchable``."""

    __slots__ = ("base_dir", "engine", "kernels", "name", "python_path", "queues", "smoke")

    def __init__(self, data: Mapping[str, Any], path: Path) -> None:
        default_backend = data["defaults"]["backend"]
        self.name: str = data["name"]
        self.engine: str = data["engine"]
        self.kernels: Mapping[str, _Kernel] = {
            kernel_id: _Kernel(spec, default_backend) for kernel_id, spec in data["kernels"].items()
        }
        self.queues: Sequence[_Edge] = [_Edge(edge) for edge in data["queues"]]
        self.smoke = _Smoke(data["smoke"]) if data["smoke"] is not None else None
        self.python_path: Sequence[str] = data["python_path"]
        self.base_dir = path.parent


def quick_validate(loaded: Loaded, path: str | Path) -> Summary | None:
    """The summary of a file with nothing to report; ``None`` means: ask the models.

    ``loaded`` is the file as ``load_yaml`` read it, so that the models, when they are
    asked, check the same data without reading the file again (``validate.check_loaded``).
    """
    if loaded.problems or not isinstance(loaded.data, dict):
        return None
    validator = load_validator()
    if validator is None:
        return None
    data = {key: value for key, value in loaded.data.items() if not key.startswith("x-")}
    try:
        view = _View(validator.validate_python(data), Path(path))
    except Exception:  # a validation error, or a shape this path did not expect
        return None
    if check_graph(view) or missing_entries(view):
        return None
    return Summary(view.name, len(view.kernels), len(view.queues), view.engine)


def check_file(
    path: str | Path, *, import_entries: bool, compile_handlers: Any = None
) -> tuple[Summary | None, list[Diagnostic]]:
    """What ``ringctl validate`` reports of one file: its summary, or every problem.

    A file with nothing to report is proven so from the compiled schema when it can be
    (``import_entries`` needs the models for params). Whenever the models were built,
    the schema is compiled into the cache for the next run (missing or damaged: anew).
    """
    loaded = load_yaml(path)
    summary = None if import_entries else quick_validate(loaded, path)
    if summary is not None:
        return summary, []
    try:
        summary = _check_with_models(loaded, path, import_entries, compile_handlers)
    except TopologyError as exc:
        return None, list(exc.diagnostics)
    finally:
        if load_validator() is None:
            store()
    return summary, []


def _check_with_models(
    loaded: Loaded, path: str | Path, import_entries: bool, compile_handlers: Any
) -> Summary:
    from ringctl.topology.importer import find_entries, resolve_entries
    from ringctl.topology.validate import check_loaded

    topology = check_loaded(loaded, path)
    if import_entries:
        resolve_entries(topology, compile_handlers=compile_handlers)
    else:
        find_entries(topology)
    return Summary(topology.name, len(topology.kernels), len(topology.queues), topology.engine)
