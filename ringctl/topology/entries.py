"""Where kernel entries are looked for, and whether their packages exist: no import, no pydantic.

``ringctl validate`` without ``--import`` checks entries this way. Only an entry's
top-level package is looked up (``importlib``'s finders, on the topology's search path
then ``sys.path``): finding ``pkg.sub`` would import ``pkg``, which runs user code.
``importer.py`` imports entries for real and turns what is missing here into errors.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["EntryError", "Missing", "Searchable", "missing_entries", "search_path", "split_entry"]


class EntryError(Exception):
    """Why one ``entry`` string could not be turned into an object."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class _HasEntry(Protocol):
    @property
    def entry(self) -> str: ...


class Searchable(Protocol):
    """What the look-up reads of a topology."""

    @property
    def base_dir(self) -> Path: ...
    @property
    def python_path(self) -> Sequence[str]: ...
    @property
    def kernels(self) -> Mapping[str, _HasEntry]: ...


@dataclass(frozen=True, slots=True)
class Missing:
    """A kernel whose entry is malformed (``error``) or whose package is not found."""

    kernel_id: str
    module: str
    package: str
    error: EntryError | None = None


def search_path(topology: Searchable) -> list[tuple[Path, str]]:
    """Folders entries are imported from, in order, each with why it is there.

    The topology's own folder, then its ``python_path`` (relative to the file), then
    the current folder (docs/topology.md, "Finding kernels").
    """
    base = topology.base_dir.resolve()
    folders: list[tuple[Path, str]] = [(base, "the topology's folder")]
    for entry in topology.python_path:
        folders.append(((base / entry).resolve(), f"python_path '{entry}'"))
    folders.append((Path.cwd().resolve(), "the current folder"))
    unique: dict[Path, str] = {}
    for folder, why in folders:
        unique.setdefault(folder, why)  # the first reason a folder is there
    return list(unique.items())


def split_entry(entry: str) -> tuple[str, str]:
    """``module:attribute`` -> (module, attribute); raises ``EntryError`` otherwise."""
    module_name, colon, attribute = entry.partition(":")
    if not colon or not module_name or not attribute:
        raise EntryError(
            f"entry '{entry}' is not `module:attribute`",
            "write e.g. `kernels.math:square`: the module, a colon, then the function",
        )
    return module_name, attribute


def missing_entries(topology: Searchable) -> list[Missing]:
    """Every kernel whose entry cannot be found, in file order; nothing is imported."""
    paths = [str(folder) for folder, _ in search_path(topology)] + sys.path
    missing: list[Missing] = []
    found: dict[str, bool] = {}
    for kernel_id, spec in topology.kernels.items():
        try:
            module_name, _ = split_entry(spec.entry)
        except EntryError as exc:
            missing.append(Missing(kernel_id, "", "", exc))
            continue
        top = module_name.partition(".")[0]
        if top not in found:
            found[top] = _package_exists(top, paths)
        if not found[top]:
            missing.append(Missing(kernel_id, module_name, top))
    return missing


def _package_exists(name: str, paths: list[str]) -> bool:
    """Whether a top-level module ``name`` can be imported; nothing is imported to tell."""
    import importlib.machinery
    import importlib.util

    if name in sys.modules or name in sys.builtin_module_names:
        return True
    if importlib.machinery.PathFinder.find_spec(name, paths) is not None:
        return True
    try:  # other finders (frozen modules, editable installs); a dotless name has no parent
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
