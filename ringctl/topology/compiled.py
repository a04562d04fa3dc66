"""The topology schema compiled for a fast start: pydantic's own core schema, kept in a cache.

Importing pydantic and building the models in ``schema.py`` costs more than the rest of
``ringctl validate`` together. What they compile to, though, is a pydantic-core schema:
plain data, apart from the model classes and the validator functions it names. This
module turns that schema into JSON (models become typed dicts, each validator function
becomes the name of its twin in ``rules.py``, defaults that are models become their
values) and keeps it in the cache directory, where the next ``ringctl validate`` reads it
and builds a validator with pydantic-core alone.

The cache is keyed by everything the schema is made from (the modules that define it and
this one, by size and modification time as Python's own bytecode cache does; ringctl's,
pydantic-core's and Python's versions), so an upgrade or an edit compiles anew. The
whole key is kept in the file and compared when it is read; its name holds a digest. A
cache that is missing, unreadable, unwritable or damaged costs speed and nothing else:
the caller falls back to the models. ``RINGCTL_CACHE_DIR`` overrides the directory
(default ``$XDG_CACHE_HOME/ringctl``, else ``~/.cache/ringctl``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ringctl._version import __version__
from ringctl.caches import cache_dir
from ringctl.topology.rules import RULES

if TYPE_CHECKING:
    from pydantic_core import SchemaValidator

__all__ = [
    "CompileError",
    "cache_dir",
    "cached",
    "compile_schema",
    "load_validator",
    "store",
]

#: Model validators and their plain-dict twins in ``rules.py``, by qualified name. A
#: validator missing here makes compiling fail (and a test fail), never pass silently.
MODEL_RULES: Final[Mapping[str, str]] = {
    "PersistentSpec._ring_power_of_two": "persistent_rule",
    "MetricBounds._some_bound": "bounds_rule",
    "Topology._apply_defaults": "topology_rule",
}
#: The modules the compiled schema is made from; their sources are part of the key.
_SOURCES: Final = ("schema.py", "rules.py", "compiled.py", "../checks.py")
_PREFIX: Final = "topology-schema-"
_RULE: Final = "$rule"
_KEY: Final = "key"
#: Schemas kept in the folder: this installation's and a few others' (virtualenvs,
#: versions) that share it; older ones are removed when a new one is written.
_KEEP: Final = 4


class CompileError(Exception):
    """The schema names something that has no plain-data form."""


def compile_schema() -> dict[str, Any]:
    """The topology's core schema as JSON-ready data (imports pydantic and the models)."""
    from ringctl.topology.schema import Topology

    plain: dict[str, Any] = _plain(Topology.__pydantic_core_schema__)
    return plain


def cached() -> bool:
    """Whether this installation's schema is in the cache (it may still be damaged)."""
    found = _cache_file()
    return found is not None and found[0].is_file()


def load_validator() -> SchemaValidator | None:
    """A validator for topology data from the cached schema; ``None`` on any miss."""
    found = _cache_file()
    if found is None:
        return None
    path, key = found
    try:
        with path.open("rb") as fh:
            if os.fstat(fh.fileno()).st_uid != os.geteuid():
                return None  # a shared folder: only a schema this user wrote is trusted
            stored = json.load(fh, object_hook=_resolve)
        if stored[_KEY] != key:
            return None
        from pydantic_core import SchemaValidator

        return SchemaValidator(stored["schema"])
    except Exception:  # missing, unreadable or damaged: the models will do
        return None


def store() -> bool:
    """Compile the schema and write it to the cache; whether it was written."""
    import tempfile

    found = _cache_file()
    if found is None:
        return False
    path, key = found
    try:
        text = json.dumps({_KEY: key, "schema": compile_schema()}, separators=(",", ":"))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except (OSError, CompileError):  # a full disk or a read-only home costs speed only
        return False
    _prune(path.parent)
    return True


def _prune(folder: Path) -> None:
    """Keep the newest few schemas (installations may share the folder) and no stale temp."""
    import time

    def age(path: Path) -> float:
        try:
            return time.time() - path.stat().st_mtime
        except OSError:
            return 0.0

    schemas = sorted(folder.glob(_PREFIX + "*.json"), key=age)
    stale = schemas[_KEEP:] + [p for p in folder.glob(".tmp-*") if age(p) > 3600]
    for old in stale:
        with contextlib.suppress(OSError):
            old.unlink()


def _cache_file() -> tuple[Path, str] | None:
    """The cache file for this installation, and its key."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        from pydantic_core import __version__ as core_version
    except ImportError:
        return None
    parts = [__version__, core_version, sys.version]
    here = Path(__file__).parent
    try:
        for name in _SOURCES:
            info = (here / name).stat()
            parts.append(f"{name}:{info.st_size}:{info.st_mtime_ns}")
    except OSError:
        return None
    key = "\n".join(parts)
    digest = zlib.crc32(key.encode()) << 32 | zlib.adler32(key.encode())
    return folder / f"{_PREFIX}{digest:016x}.json", key


def _resolve(node: dict[str, Any]) -> Any:
    if _RULE in node:
        name = node[_RULE]
        if len(node) != 1 or name not in RULES:
            raise ValueError(f"unknown rule {name!r} in the compiled schema")
        return RULES[name]
    return node


# Compiling: walk pydantic's core schema and give every node a plain-data form.

_DROPPED: Final = frozenset({"metadata", "serialization", "cls", "frozen"})


def _plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        kind = node.get("type")
        if kind == "model":
            return _model(node)
        if kind == "model-field":
            return _field(node)
        if kind == "default" and "default_factory" in node:
            return _default(node)
        if kind in {"function-before", "function-after", "function-wrap", "function-plain"}:
            return {
                **{k: _plain(v) for k, v in node.items() if k not in _DROPPED | {"function"}},
                "function": _function(node["function"]),
            }
        return {k: _plain(v) for k, v in node.items() if k not in _DROPPED}
    if isinstance(node, list | tuple):
        return [_plain(item) for item in node]
    if node is None or isinstance(node, str | int | float | bool):
        return node
    raise CompileError(f"no plain form for {node!r}")


def _model(node: Mapping[str, Any]) -> dict[str, Any]:
    inner = node["schema"]
    # A model with private attributes gets pydantic's own post-init, which sets them to
    # their defaults: nothing a validator needs. A post-init of the model's own may check.
    post_init = node.get("post_init")
    if post_init is not None:
        hook = getattr(node.get("cls"), post_init, None)
        if getattr(hook, "__name__", None) != "init_private_attributes":
            raise CompileError(f"model {node.get('cls')!r} has a post-init of its own")
    if inner.get("type") != "model-fields" or node.get("custom_init"):
        raise CompileError(f"model {node.get('cls')!r} is not a plain set of fields")
    if inner.get("computed_fields"):
        raise CompileError(f"model {node.get('cls')!r} has computed fields")
    config = dict(node.get("config", {}))
    out: dict[str, Any] = {
        "type": "typed-dict",
        "fields": {name: _plain(field) for name, field in inner["fields"].items()},
        "config": _plain(config),
    }
    extra = inner.get("extra_behavior", config.get("extra_fields_behavior"))
    if extra is not None:
        out["extra_behavior"] = extra
    if "extras_schema" in inner:
        out["extras_schema"] = _plain(inner["extras_schema"])
    if "ref" in node:
        out["ref"] = node["ref"]
    return out


def _field(node: Mapping[str, Any]) -> dict[str, Any]:
    schema = node["schema"]
    out: dict[str, Any] = {
        "type": "typed-dict-field",
        "schema": _plain(schema),
        "required": schema.get("type") != "default",
    }
    if "validation_alias" in node:
        out["validation_alias"] = _plain(node["validation_alias"])
    return out


def _default(node: Mapping[str, Any]) -> dict[str, Any]:
    factory = node["default_factory"]
    if node.get("default_factory_takes_data"):
        raise CompileError(f"default factory {factory!r} takes the data")
    value: Any
    if factory in (list, dict):
        value = factory()
    elif callable(getattr(factory, "model_dump", None)):
        value = factory().model_dump()
    else:
        raise CompileError(f"no plain form for default factory {factory!r}")
    kept = {k: v for k, v in node.items() if k not in _DROPPED | {"default_factory"}}
    return {**{k: _plain(v) for k, v in kept.items()}, "default": _plain(value)}


def _function(spec: Mapping[str, Any]) -> dict[str, Any]:
    function: Callable[..., Any] = spec["function"]
    if spec.get("type") != "no-info":
        raise CompileError(f"validator {function!r} takes validation info")
    qualname = getattr(function, "__qualname__", "")
    name = next((n for n, rule in RULES.items() if rule is function), MODEL_RULES.get(qualname))
    if name is None:
        raise CompileError(f"validator {qualname or function!r} has no twin in rules.py")
    return {"type": "no-info", "function": {_RULE: name}}
