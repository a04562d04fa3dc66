"""YAML with positions: plain data for pydantic plus a map back to the text.

PyYAML's loaders throw positions away and quietly keep the last of two equal keys, and
its full loader will build Python objects from tags. So we stop at the node graph
(``compose``: no constructor ever runs, so no tag is ever executed), build the plain
data ourselves, and keep every node, so that an error found much later (by pydantic,
by the graph checks, by a kernel's params model) still points at a line and a column.
libyaml's composer is used where it is installed: it is several times faster, which is
what keeps a 5,000-kernel file well under the budget in ``benchmarks/validate_bench.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ringctl.topology.errors import Diagnostic

__all__ = ["Loaded", "DataPath", "SourceMap", "interpolate", "load_yaml", "parse_yaml"]

#: A place in the data: mapping keys and list indexes from the top, as pydantic's ``loc``.
DataPath = tuple[str | int, ...]

try:  # libyaml is optional for PyYAML; the pure-Python composer gives the same nodes.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

_TAG: Final = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ, _MERGE, _TIMESTAMP = (_TAG + t for t in ("map", "seq", "merge", "timestamp"))
_SCALAR_TAGS: Final = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP})

# `${NAME}`, `${NAME:-default}`, and `$${` for a literal `${`. The body may not hold `}`.
_INTERPOLATION: Final = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_VAR_BODY: Final = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.S)

_constructor = yaml.constructor.SafeConstructor()


@dataclass
class SourceMap:
    """Where each piece of the data was written: a path in, a ``(line, column)`` out.

    Built once while loading; lookups walk the node graph from the top, so the cost of
    positions is paid only for the errors that are reported.
    """

    file: str
    root: Node | None
    #: ``id(mapping node)`` -> key -> (key node, value node), merges already applied.
    mappings: dict[int, dict[str, tuple[Node, Node]]] = field(default_factory=dict)

    def node_at(self, path: DataPath, *, key: bool = False) -> tuple[Node | None, int]:
        """The deepest node along ``path`` and how many steps of it were found.

        With ``key``, a path that ends on a mapping key gives the key's node rather
        than its value's (an unknown field is reported where its name is written).
        """
        node = self.root
        depth = 0
        for depth_index, step in enumerate(path):
            if node is None:
                break
            last = depth_index == len(path) - 1
            if isinstance(node, MappingNode):
                entry = self.mappings.get(id(node), {}).get(str(step))
                if entry is None:
                    break
                node = entry[0] if key and last else entry[1]
            elif isinstance(node, SequenceNode) and isinstance(step, int):
                if not 0 <= step < len(node.value):
                    break
                node = node.value[step]
            else:
                break
            depth += 1
        return node, depth

    def position(self, path: DataPath, *, key: bool = False) -> tuple[int, int]:
        """1-based ``(line, column)`` of the node at ``path`` (or of its nearest ancestor)."""
        node, _ = self.node_at(path, key=key)
        if node is None:
            return 1, 1
        return node.start_mark.line + 1, node.start_mark.column + 1

    def diagnostic(
        self, path: DataPath, message: str, hint: str | None = None, *, key: bool = False
    ) -> Diagnostic:
        line, column = self.position(path, key=key)
        return Diagnostic(self.file, line, column, message, hint)

    def contains(self, path: DataPath) -> bool:
        return self.node_at(path)[1] == len(path)


@dataclass
class Loaded:
    """The plain data of one file, its source map, and what was wrong at the YAML level.

    ``spoiled`` are the paths whose value the loader already reported (a duplicate key,
    a refused tag, an unset variable): later checks stay quiet at and below them, so
    one mistake gives one error.
    """

    data: Any
    source: SourceMap
    problems: list[Diagnostic] = field(default_factory=list)
    spoiled: list[DataPath] = field(default_factory=list)

    def is_spoiled(self, path: DataPath) -> bool:
        return any(path[: len(bad)] == bad for bad in self.spoiled)


def load_yaml(path: str | Path, *, env: Mapping[str, str] | None = None) -> Loaded:
    """Read ``path`` and turn it into data with positions; never raises for bad content.

    Problems with the file itself (missing, unreadable, not text) come back as a
    ``Loaded`` with ``data=None`` and one diagnostic without a line.
    """
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return _failed(name, "no such file", "check the path; it is relative to the current folder")
    except IsADirectoryError:
        return _failed(name, "is a folder, not a topology file", f"try {name.rstrip('/')}/*.yaml")
    except PermissionError:
        return _failed(name, "cannot be read: permission denied")
    except OSError as exc:
        return _failed(name, f"cannot be read: {exc.strerror or exc}")
    return parse_yaml(raw, name, env=env)


def parse_yaml(raw: bytes | str, file: str, *, env: Mapping[str, str] | None = None) -> Loaded:
    """Like ``load_yaml`` for text already in memory (``file`` names it in diagnostics)."""
    if isinstance(raw, bytes):
        text_or_problem = _decode(raw, file)
        if isinstance(text_or_problem, Diagnostic):
            return Loaded(None, SourceMap(file, None), [text_or_problem])
        text = text_or_problem
    else:
        text = raw
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        return Loaded(None, SourceMap(file, None), [_yaml_error(exc, file, text)])
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        message = f"the file is not YAML text: {exc.reason} (character {exc.character!r})"
        return Loaded(None, SourceMap(file, None), [Diagnostic(file, line, column, message)])
    except RecursionError:
        return Loaded(
            None, SourceMap(file, None), [Diagnostic(file, 1, 1, "the file nests too deeply")]
        )
    if root is None:
        return Loaded(
            None,
            SourceMap(file, None),
            [
                Diagnostic(
                    file,
                    1,
                    1,
                    "the file is empty: a topology needs at least 'version', 'name' and 'kernels'",
                    "start from `version: 1`, `name: ...`, `kernels: {...}`; see docs/topology.md",
                )
            ],
        )
    builder = _Builder(file, os.environ if env is None else env)
    try:
        data = builder.build(root, ())
    except RecursionError:
        builder.report(root, (), "the file nests too deeply")
        data = None
    source = SourceMap(file, root, builder.mappings)
    return Loaded(data, source, builder.problems, builder.spoiled)


def interpolate(value: str, env: Mapping[str, str]) -> tuple[str, list[tuple[int, str, str]]]:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in ``value``.

    Returns the new string and ``(offset, message, hint)`` for each bad reference. As in
    a shell, ``:-`` also replaces a variable that is set but empty.
    """
    if "$" not in value:
        return value, []
    problems: list[tuple[int, str, str]] = []
    parts: list[str] = []
    last = 0
    for match in _INTERPOLATION.finditer(value):
        parts.append(value[last : match.start()])
        last = match.end()
        text = match.group(0)
        if text == "$${":
            parts.append("${")
            continue
        body = match.group("body")
        if body is None:
            problems.append(
                (
                    match.start(),
                    "unterminated '${' in a string",
                    "close it with '}', or write '$${' for a literal '${'",
                )
            )
            parts.append(text)
            continue
        var = _VAR_BODY.fullmatch(body)
        if var is None:
            problems.append(
                (
                    match.start(),
                    f"'{text}' is not a variable reference",
                    "write ${NAME} or ${NAME:-default}, or '$${' for a literal '${'",
                )
            )
            parts.append(text)
            continue
        name, default = var.group("name"), var.group("default")
        found = env.get(name)
        if found is not None and (found or default is None):
            parts.append(found)
        elif default is not None:
            parts.append(default)
        else:
            problems.append(
                (
                    match.start(),
                    f"environment variable {name} is not set",
                    f"set it, or give a default: ${{{name}:-value}}",
                )
            )
    parts.append(value[last:])
    return "".join(parts), problems


class _Builder:
    """Turns a node graph into dicts, lists and scalars, noting problems as it goes."""

    def __init__(self, file: str, env: Mapping[str, str]) -> None:
        self.file = file
        self.env = env
        self.problems: list[Diagnostic] = []
        self.spoiled: list[DataPath] = []
        self.mappings: dict[int, dict[str, tuple[Node, Node]]] = {}
        # An alias is the same node object as its anchor: build it once and share the
        # result, so `&a` / `*a` chains cannot blow up in size (the "billion laughs").
        self._built: dict[int, Any] = {}
        self._building: set[int] = set()

    def report(self, node: Node, path: DataPath, message: str, hint: str | None = None) -> None:
        mark = node.start_mark
        self.problems.append(Diagnostic(self.file, mark.line + 1, mark.column + 1, message, hint))
        self.spoiled.append(path)

    def build(self, node: Node, path: DataPath) -> Any:
        key = id(node)
        if key in self._built:
            return self._built[key]
        if key in self._building:
            self.report(node, path, "an alias refers to a node that contains it (a cycle)")
            return None
        self._building.add(key)
        try:
            if isinstance(node, MappingNode):
                value: Any = self._mapping(node, path)
            elif isinstance(node, SequenceNode):
                value = self._sequence(node, path)
            else:
                value = self._scalar(node, path)
        finally:
            self._building.discard(key)
        self._built[key] = value
        return value

    def _check_tag(self, node: Node, path: DataPath, allowed: frozenset[str] | str) -> bool:
        tag = node.tag
        if tag in allowed if isinstance(allowed, frozenset) else tag == allowed:
            return True
        shown = "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag
        if "python/" in tag:
            self.report(
                node,
                path,
                f"the tag {shown} is refused: topology files are plain data, "
                "and tags that build Python objects are never executed",
                "remove the tag; kernels are named with `entry: module:attribute`",
            )
        else:
            self.report(
                node,
                path,
                f"the tag {shown} is not supported in topology files",
                "remove the tag; use plain strings, numbers, booleans, lists and mappings",
            )
        return False

    def _mapping(self, node: MappingNode, path: DataPath) -> dict[str, Any]:
        if not self._check_tag(node, path, _MAP):
            return {}
        entries: dict[str, tuple[Node, Node]] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                self.report(
                    key_node,
                    path,
                    "a mapping key must be a plain string, not a list or mapping",
                )
                continue
            if not self._check_tag(key_node, path, _SCALAR_TAGS):
                continue
            # Keys stay the text as written: `on:` or `no:` name a kernel, not a boolean.
            name = str(key_node.value)
            if name in entries:
                first = entries[name][0].start_mark.line + 1
                self.report(
                    key_node,
                    (*path, name),
                    f"duplicate key '{name}' (first at line {first})",
                    "YAML keeps only one of them; remove or rename one",
                )
                continue
            entries[name] = (key_node, value_node)
        for merged in merges:
            self._merge(merged, path, entries)
        self.mappings[id(node)] = entries
        return {name: self.build(value, (*path, name)) for name, (_, value) in entries.items()}

    def _merge(self, node: Node, path: DataPath, entries: dict[str, tuple[Node, Node]]) -> None:
        """``<<: *defaults``: keys written next to the merge win, then the first merged."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, MappingNode):
                self.report(source, path, "'<<' (a merge key) takes a mapping or a list of them")
                continue
            self.build(source, path)  # indexes it and reports its own problems once
            for name, pair in self.mappings.get(id(source), {}).items():
                entries.setdefault(name, pair)

    def _sequence(self, node: SequenceNode, path: DataPath) -> list[Any]:
        if not self._check_tag(node, path, _SEQ):
            return []
        return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]

    def _scalar(self, node: Node, path: DataPath) -> Any:
        assert isinstance(node, ScalarNode)
        if not self._check_tag(node, path, _SCALAR_TAGS):
            return None
        tag = node.tag
        if tag == _STR:
            return self._string(node, path)
        if tag == _TIMESTAMP:
            # A date is only ever a description or a param here: keep the text written.
            return str(node.value)
        try:
            if tag == _INT:
                return _constructor.construct_yaml_int(node)
            if tag == _FLOAT:
                return _constructor.construct_yaml_float(node)
            if tag == _BOOL:
                return _constructor.construct_yaml_bool(node)
            return None
        except (ValueError, KeyError, yaml.YAMLError):
            kind = tag[len(_TAG) :]
            self.report(node, path, f"{node.value!r} is not a valid {kind}")
            return None

    def _string(self, node: ScalarNode, path: DataPath) -> str:
        value = str(node.value)
        expanded, problems = interpolate(value, self.env)
        for offset, message, hint in problems:
            mark = node.start_mark
            column = mark.column + 1
            # The exact column is known only where the text is the value as written.
            if node.style in (None, "") and "\n" not in value:
                column += offset
            elif node.style == "'" and "\n" not in value and "'" not in value:
                column += offset + 1
            self.problems.append(Diagnostic(self.file, mark.line + 1, column, message, hint))
            self.spoiled.append(path)
        return expanded


def _failed(file: str, message: str, hint: str | None = None) -> Loaded:
    return Loaded(None, SourceMap(file, None), [Diagnostic(file, None, None, message, hint)])


def _decode(raw: bytes, file: str) -> str | Diagnostic:
    if b"\x00" in raw[:8192] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        line, column = _line_column_bytes(raw, raw.index(b"\x00"))
        return Diagnostic(
            file,
            line,
            column,
            "this is not a text file (it contains NUL bytes); a topology is YAML text",
            "check that the path names the .yaml file",
        )
    try:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            return raw.decode("utf-16")
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _line_column_bytes(raw, exc.start)
        return Diagnostic(
            file,
            line,
            column,
            f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded)",
            "save the file as UTF-8",
        )


def _line_column(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _line_column_bytes(raw: bytes, index: int) -> tuple[int, int]:
    line = raw.count(b"\n", 0, index) + 1
    return line, index - (raw.rfind(b"\n", 0, index) + 1) + 1


def _yaml_error(exc: yaml.MarkedYAMLError, file: str, text: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = exc.problem or "invalid YAML"
    message = f"invalid YAML: {problem}"
    if exc.context and exc.context_mark is not None:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    elif exc.context:
        message += f" ({exc.context})"
    hint = None
    char = _char_at(text, line, column)
    if char == "\t":
        hint = "YAML indents with spaces, not tabs"
    elif "another document" in (problem or ""):
        hint = "a topology file holds one document: remove the '---' line and what follows"
    elif "mapping values are not allowed" in problem:
        hint = "a ':' inside a value needs quotes, or the line above is indented wrongly"
    elif "found undefined alias" in problem:
        hint = "define the anchor (&name) before using the alias (*name)"
    elif "duplicate" in problem:
        hint = "remove or rename one of them"
    return Diagnostic(file, line, column, message, hint)


def _char_at(text: str, line: int, column: int) -> str | None:
    lines = text.split("\n")
    if 0 < line <= len(lines) and 0 < column <= len(lines[line - 1]):
        return lines[line - 1][column - 1]
    return None
