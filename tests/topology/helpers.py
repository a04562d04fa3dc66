"""Build topologies from short YAML strings, as a user would write them."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

from ringctl.topology import Topology, TopologyError, load_topology


def write(tmp_path: Path, text: str, name: str | None = None) -> Path:
    path = tmp_path / (name or f"t-{uuid.uuid4().hex[:8]}.yaml")
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Topology:
    return load_topology(write(tmp_path, text), env=env or {})


def errors(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    """``LINE:COLUMN: message`` of each diagnostic (the file name left out)."""
    try:
        load_topology(write(tmp_path, text), env=env or {})
    except TopologyError as exc:
        return [f"{d.line}:{d.column}: {d.message}" for d in exc.diagnostics]
    raise AssertionError("expected a TopologyError")
