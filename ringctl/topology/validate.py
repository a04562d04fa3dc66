"""``load_topology``: file -> YAML with positions -> pydantic models -> graph checks.

Each stage reports everything it finds; a later stage runs only on what the earlier
one could make sense of (graph checks need a schema-valid topology), and stays quiet
where an earlier stage already spoke, so one mistake gives one error.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from ringctl.topology.errors import Diagnostic, TopologyError, did_you_mean, in_file_order
from ringctl.topology.graph import check_graph, describe_path
from ringctl.topology.loader import DataPath, Loaded, SourceMap, load_yaml
from ringctl.topology.schema import (
    ENDPOINT_PATTERN,
    ENTRY_PATTERN,
    KERNEL_ID_PATTERN,
    NAME_PATTERN,
    PATH_PATTERN,
    SUPPORTED_VERSIONS,
    Topology,
)
from ringctl.topology.unions import EXPECTED, merge_union_errors

__all__ = ["check_loaded", "describe_path", "load_topology", "pydantic_diagnostics"]


def load_topology(path: str | Path, *, env: Mapping[str, str] | None = None) -> Topology:
    """Read, interpolate and check a topology file; raise ``TopologyError`` with every problem.

    ``env`` replaces ``os.environ`` for ``${VAR}`` interpolation (tests, and callers that
    want a file to mean the same thing everywhere).
    """
    return check_loaded(load_yaml(path, env=env), path)


def check_loaded(loaded: Loaded, path: str | Path) -> Topology:
    """``load_topology`` for a file already read with ``load_yaml`` (not read twice)."""
    if loaded.data is None and loaded.problems:
        raise TopologyError(loaded.problems)
    source = loaded.source
    problems = list(loaded.problems)
    if not isinstance(loaded.data, dict):
        if isinstance(loaded.data, list):
            found = "a list"
        elif loaded.data is None:
            found = "only null"
        else:
            found = f"the value {loaded.data!r}"
        problems.append(
            source.diagnostic(
                (),
                f"a topology file is a mapping (version: 1, name: ..., kernels: ...); "
                f"this one holds {found}",
                "see docs/topology.md for the format",
            )
        )
        raise TopologyError(problems)

    # `x-...` keys at the top hold YAML anchors for reuse (as in docker compose files).
    data = {key: value for key, value in loaded.data.items() if not key.startswith("x-")}
    try:
        topology = Topology.model_validate(data)
    except ValidationError as exc:
        for diagnostic_path, diagnostic in pydantic_diagnostics(exc, source, Topology):
            if not loaded.is_spoiled(diagnostic_path):
                problems.append(diagnostic)
        raise TopologyError(in_file_order(problems or [source.diagnostic((), str(exc))])) from None
    if problems:
        raise TopologyError(in_file_order(problems))

    topology._source_path = Path(path)
    topology._source = source

    def where(data_path: DataPath) -> str:
        return f"line {source.position(data_path)[0]}"

    for p in check_graph(topology, where):
        problems.append(source.diagnostic(p.path, p.message, p.hint, key=p.key))
    if problems:
        raise TopologyError(in_file_order(problems))
    return topology


def pydantic_diagnostics(
    exc: ValidationError,
    source: SourceMap,
    model: type[BaseModel],
    prefix: DataPath = (),
    subject: str | None = None,
) -> list[tuple[DataPath, Diagnostic]]:
    """pydantic's errors as positioned diagnostics that say what was found and expected.

    ``prefix`` is where ``model``'s data sits in the file (a kernel's ``params``), and
    ``subject`` how messages name that place when it is not the file's top level.
    """
    out: list[tuple[DataPath, Diagnostic]] = []
    errors = [dict(error) for error in exc.errors(include_url=False)]
    for error in merge_union_errors(errors, lambda loc: source.contains((*prefix, *loc))):
        loc: tuple[str | int, ...] = tuple(error["loc"])
        # pydantic marks an invalid dict key by appending "[key]" to its path; a key
        # the user really named "[key]" shows up as a plain path step instead.
        at_key = (
            len(loc) >= 2
            and loc[-1] == "[key]"
            and error["type"] not in ("extra_forbidden", "missing")
        )
        if at_key:
            loc = loc[:-1]
        path: DataPath = (*prefix, *loc)
        message, hint, key, parent = _explain(error, loc, at_key, model, prefix, subject)
        position_path = path[:-1] if parent else path
        out.append((path, source.diagnostic(position_path, message, hint, key=key)))
    return out


_PATTERN_RULES: dict[str, tuple[str, str]] = {
    NAME_PATTERN: (
        "name {value!r} is not valid",
        "use lowercase letters, digits and '-', starting with a letter or digit",
    ),
    KERNEL_ID_PATTERN: (
        "kernel id {value!r} is not valid",
        "use lowercase letters, digits, '-' and '_', starting with a letter or digit",
    ),
    ENDPOINT_PATTERN: (
        "{name}: {value!r} is not `kernel` or `kernel.port`",
        "a port is a Python-style name, e.g. `square` or `split.evens`",
    ),
    PATH_PATTERN: (
        "{name}: {value!r} holds a NUL character, which no folder name can",
        "remove the \\0 (or \\x00) escape from the path",
    ),
}


#: pydantic's bound errors: the operator shown, and the bound's key in the error's ``ctx``.
_BOUNDS: Final = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}


def _explain(
    error: Mapping[str, Any],
    loc: tuple[str | int, ...],
    at_key: bool,
    model: type[BaseModel],
    prefix: DataPath,
    subject: str | None,
) -> tuple[str, str | None, bool, bool]:
    """(message, hint, position at the key?, position at the parent?) for one error."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    full = (*prefix, *loc)
    name = describe_path(full) if full else (subject or "the file")
    if subject and not loc:
        name = subject

    if kind == "missing":
        field = loc[-1]
        owner = describe_path(full[:-1])
        where = f" in {owner}" if owner else ""
        return f"missing required field '{field}'{where}", _missing_hint(field), True, True
    if kind == "extra_forbidden":
        field = str(loc[-1])
        owner = describe_path(full[:-1])
        where = f" in {owner}" if owner else " at the top level"
        known = _fields_at(model, loc[:-1])
        guess = did_you_mean(field, known) if known else None
        if guess is not None:
            hint: str | None = f"did you mean '{guess}'?"
        elif known:
            hint = "known fields: " + ", ".join(known)
        else:
            hint = None
        return f"unknown field '{field}'{where}", hint, True, False
    if kind == "string_too_long":
        too_long = f"'{value}'" if at_key else name
        message = f"{too_long} is too long (at most {ctx.get('max_length')} characters)"
        return message, None, at_key, False
    if at_key:
        if kind == "string_pattern_mismatch" and ctx.get("pattern") == KERNEL_ID_PATTERN:
            rule, why = _PATTERN_RULES[KERNEL_ID_PATTERN]
            return rule.format(name=name, value=value), why, True, False
        return f"key {value!r} in {describe_path(full[:-1])}: {error['msg']}", None, True, False
    if kind == "literal_error":
        if loc == ("version",) and not prefix:
            versions = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
            message = (
                f"version {value!r} is not one this ringctl reads (it reads version {versions})"
            )
            hint = "write `version: 1`, or upgrade ringctl if the file is newer"
            return message, hint, False, False
        expected = str(ctx.get("expected", ""))
        options = [part.strip().strip("'") for part in expected.replace(" or ", ",").split(",")]
        guess = did_you_mean(str(value), options) if isinstance(value, str) else None
        hint = f"did you mean '{guess}'?" if guess else None
        return f"{name} must be {expected}; got {_show(value)}", hint, False, False
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern")
        if pattern == ENTRY_PATTERN:
            return _entry_message(name, str(value))
        if pattern in _PATTERN_RULES:
            rule, why = _PATTERN_RULES[pattern]
            if pattern == KERNEL_ID_PATTERN and loc and loc[-1] == "to" and "." in str(value):
                message = f"{name}: '{value}' names a port; a queue goes into a kernel's one inbox"
                return message, f"write `to: {str(value).partition('.')[0]}`", False, False
            return rule.format(name=name, value=value), why, False, False
    if kind in _BOUNDS:
        op, bound = _BOUNDS[kind][0], ctx.get(_BOUNDS[kind][1])
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"{name} must be {op} {bound}; got {_show(value)}", None, False, False
    if kind == "too_short" and loc == ("kernels",):
        return "a topology needs at least one kernel", "add one under `kernels:`", False, False
    expected_kind = ctx.get("expected") if kind == "union_shape" else EXPECTED.get(kind)
    if expected_kind is not None:
        return f"{name} must be {expected_kind}; got {_show(value)}", None, False, False
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith("must be "):
        return f"{name} {message}", None, False, False
    return f"{name}: {message}", None, False, False


def _show(value: object) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _missing_hint(field: str | int) -> str | None:
    return {
        "version": "add `version: 1` at the top",
        "name": "add `name: my-topology` (lowercase letters, digits, '-')",
        "kernels": "add a `kernels:` mapping of kernel id -> {entry: module:attribute}",
        "entry": "add `entry: module:attribute`, e.g. `entry: kernels.math:square`",
        "from": "add `from: producer` (or `producer.port`)",
        "to": "add `to: consumer`",
    }.get(str(field))


def _entry_message(name: str, value: str) -> tuple[str, str | None, bool, bool]:
    if ":" not in value:
        module, _, attr = value.rpartition(".")
        example = f"{module}:{attr}" if module else "kernels.math:square"
        message = f"{name}: '{value}' has no ':' between the module and the attribute"
        return message, f"write `module:attribute`, e.g. `{example}`", False, False
    hint = "both parts are dotted Python names, e.g. `kernels.math:square`"
    return f"{name}: '{value}' is not `module:attribute`", hint, False, False


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str] | None:
    """The field names (as written in files) of the model found at ``loc``, if any."""
    annotation: Any = model
    for step in loc:
        annotation = _unwrap(annotation)
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = _field_named(annotation, str(step))  # None: no such field, no fields
        elif origin is dict and len(args) == 2:
            annotation = args[1]
        elif origin is list and args:
            annotation = args[0]
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [info.alias or name for name, info in annotation.model_fields.items()]
    return None


def _field_named(model: type[BaseModel], written: str) -> Any:
    for name, info in model.model_fields.items():
        if written in (name, info.alias):
            return info.annotation
    return None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation
