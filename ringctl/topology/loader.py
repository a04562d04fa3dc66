"""YAML with positions: plain data for pydantic plus a map back to the text.

PyYAML's loaders throw positions away and quietly keep the last of two equal keys, and
its full loader will build Python objects from tags. So we stop at the parser's events
(``yaml.parse``: no constructor ever runs, so no tag is ever executed), build the nodes
and the plain data ourselves, and keep every position, so that an error found much later
(by pydantic, by the graph checks, by a kernel's params model) still points at a line and
a column. libyaml's parser is used where it is installed: it is several times faster, which is
what keeps a 5,000-kernel file well under the budget in ``benchmarks/validate_bench.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AnyStr, Final

import yaml
from yaml.nodes import ScalarNode

from ringctl.topology.errors import Diagnostic

__all__ = [
    "DataPath",
    "Loaded",
    "SourceMap",
    "interpolate",
    "load_yaml",
    "parse_yaml",
    "scalar_value",
]

#: A place in the data: mapping keys and list indexes from the top, as pydantic's ``loc``.
DataPath = tuple[str | int, ...]

try:  # libyaml is optional for PyYAML; the pure-Python composer gives the same nodes.
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

_TAG: Final = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_TAG + t for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ, _MERGE, _TIMESTAMP = (_TAG + t for t in ("map", "seq", "merge", "timestamp"))
_SCALAR_TAGS: Final = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP})

# `${NAME}`, `${NAME:-default}`, and `$${` for a literal `${`. The body may not hold `}`.
_INTERPOLATION: Final = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_VAR_BODY: Final = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.S)

_constructor = yaml.constructor.SafeConstructor()
_CONSTRUCT: Final = {
    _INT: _constructor.construct_yaml_int,
    _FLOAT: _constructor.construct_yaml_float,
    _BOOL: _constructor.construct_yaml_bool,
}


class _Loader(_BaseLoader):
    """PyYAML's safe loader with YAML 1.2 booleans: only ``true`` and ``false``.

    YAML 1.1 also reads ``on``, ``off``, ``yes``, ``no``, ``y`` and ``n`` as booleans, so
    ``from: on`` would name the kernel ``True``. Topology files name things a lot; only
    the spellings nobody writes by accident mean a boolean.
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }


_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


_NULLS: Final = frozenset({"null", "Null", "NULL", "~"})


class Substituted(str):
    """A string value of a topology file in which ``${...}`` was replaced: its type is
    decided where it is used (``ringctl._substituted.typed`` calls ``read_substituted``)."""

    __slots__ = ()

    def read_substituted(self, all_scalars: bool) -> Any:
        """The value as YAML reads the text unquoted (``all_scalars=False``: only null)."""
        text = str(self)
        if text in _NULLS:
            return None
        if not text:  # `${VAR:-}`: an empty string, as written, not YAML's empty null
            return ""
        return scalar_value(text) if all_scalars else text


def scalar_value(text: str) -> Any:
    """``text`` as this loader reads an unquoted scalar: an int, float, boolean or string."""
    tag = _resolve(text)
    if tag == _NULL:
        return None
    try:
        return _CONSTRUCT[tag](ScalarNode(tag, text)) if tag in _CONSTRUCT else text
    except (ValueError, KeyError, yaml.YAMLError):
        return text


def _resolve(value: str) -> str:
    """The tag YAML gives ``value`` written unquoted."""
    for tag, regexp in _Loader.yaml_implicit_resolvers.get(value[:1] if value else "", ()):
        if regexp.match(value):
            return str(tag)
    return _STR


class Node:
    """Where one value was written, and for a mapping or a list, where its parts were.

    ``items`` is, for a mapping, key -> (key node, value node) with merges applied; for
    a list, the item nodes; for a scalar, ``None``. Lines and columns count from 0.
    """

    __slots__ = ("column", "items", "line")

    def __init__(self, line: int, column: int, items: Any = None) -> None:
        self.line = line
        self.column = column
        self.items = items


@dataclass
class SourceMap:
    """Where each piece of the data was written: a path in, a ``(line, column)`` out.

    Built while loading; lookups walk the nodes from the top, so the cost of positions
    is paid only for the errors that are reported.
    """

    file: str
    root: Node | None

    def node_at(self, path: DataPath, *, key: bool = False) -> tuple[Node | None, int]:
        """The deepest node along ``path`` and how many steps of it were found.

        With ``key``, a path that ends on a mapping key gives the key's node rather
        than its value's (an unknown field is reported where its name is written).
        """
        node = self.root
        for depth, step in enumerate(path):
            items = None if node is None else node.items
            if isinstance(items, dict) and (entry := items.get(str(step))) is not None:
                node = entry[0] if key and depth == len(path) - 1 else entry[1]
            elif isinstance(items, list) and isinstance(step, int) and 0 <= step < len(items):
                node = items[step]
            else:
                return node, depth
        return node, len(path)

    def position(self, path: DataPath, *, key: bool = False) -> tuple[int, int]:
        """1-based ``(line, column)`` of the node at ``path`` (or of its nearest ancestor)."""
        node, _ = self.node_at(path, key=key)
        if node is None:
            return 1, 1
        return node.line + 1, node.column + 1

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
    if not name:  # Path("") would be the current folder
        return _unread("''", "the file name is empty", "pass the path of a topology file")
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return _unread(name, "no such file", "check the path; it is relative to the current folder")
    except IsADirectoryError:
        return _unread(name, "is a folder, not a topology file", f"try {name.rstrip('/')}/*.yaml")
    except PermissionError:
        return _unread(name, "cannot be read: permission denied")
    except OSError as exc:
        return _unread(name, f"cannot be read: {exc.strerror or exc}")
    return parse_yaml(raw, name, env=env)


def _unread(file: str, message: str, hint: str | None = None) -> Loaded:
    return _failed(Diagnostic(file, None, None, message, hint))


def parse_yaml(raw: bytes | str, file: str, *, env: Mapping[str, str] | None = None) -> Loaded:
    """Like ``load_yaml`` for text already in memory (``file`` names it in diagnostics)."""
    text = _decode(raw, file) if isinstance(raw, bytes) else raw
    if isinstance(text, Diagnostic):
        return _failed(text)
    builder = _Builder(file, os.environ if env is None else env, text)
    try:
        root, data = builder.run(yaml.parse(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        return _failed(_yaml_error(exc, file, text))
    except yaml.reader.ReaderError as exc:
        message = f"the file is not YAML text: {exc.reason} (character {exc.character!r})"
        return _failed(Diagnostic(file, *_line_column(text, exc.position, "\n"), message))
    except _SecondDocument as exc:
        return _failed(
            Diagnostic(
                file,
                exc.line + 1,
                exc.column + 1,
                "a topology file holds one YAML document, and a second one starts here",
                "remove the '---' line and what follows, or split the file in two",
            )
        )
    if root is None:
        return _failed(
            Diagnostic(
                file,
                1,
                1,
                "the file is empty: a topology needs at least 'version', 'name' and 'kernels'",
                "start from `version: 1`, `name: ...`, `kernels: {...}`; see docs/topology.md",
            )
        )
    return Loaded(data, SourceMap(file, root), builder.problems, builder.spoiled)


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
        var = None if body is None else _VAR_BODY.fullmatch(body)
        if var is None:
            if body is None:
                message = "unterminated '${' in a string"
                hint = "close it with '}', or write '$${' for a literal '${'"
            else:
                message = f"'{text}' is not a variable reference"
                hint = "write ${NAME} or ${NAME:-default}, or '$${' for a literal '${'"
            problems.append((match.start(), message, hint))
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


class _SecondDocument(Exception):
    def __init__(self, line: int, column: int) -> None:
        self.line, self.column = line, column


class _Frame:
    """A mapping or a list being built, on the builder's explicit stack."""

    __slots__ = ("anchor", "data", "is_key", "key", "merges", "node", "path")

    def __init__(
        self, node: Node, data: Any, path: DataPath, anchor: str | None, is_key: bool
    ) -> None:
        self.node = node
        self.data = data
        self.path = path
        self.anchor = anchor
        self.key: tuple[str, Node] | None = None  # mapping: the key whose value comes next
        self.merges: list[tuple[Node, Any]] = []
        self.is_key = is_key  # a list or mapping written as a key: reported, then dropped


class _Builder:
    """Turns parser events into dicts, lists and scalars plus their nodes, noting problems.

    Working from events (not PyYAML's node graph) is what keeps big files fast: libyaml
    parses, and one pass here resolves, constructs, interpolates and checks each value.
    The stack is explicit, so deep nesting cannot overflow Python's.
    """

    def __init__(self, file: str, env: Mapping[str, str], text: str | None = None) -> None:
        self.file = file
        self.env = env
        self.text = text
        self.problems: list[Diagnostic] = []
        self.spoiled: list[DataPath] = []
        # An alias is its anchor's value, shared rather than copied, so `&a` / `*a`
        # chains cannot blow up in size (the "billion laughs").
        self.anchors: dict[str, tuple[Node, Any]] = {}
        self.open_anchors: set[str] = set()

    def report(self, at: Any, path: DataPath, message: str, hint: str | None = None) -> None:
        """A problem ``at`` a parser mark or a ``Node`` (both count lines from 0)."""
        self.problems.append(Diagnostic(self.file, at.line + 1, at.column + 1, message, hint))
        self.spoiled.append(path)

    def run(self, events: Any) -> tuple[Node | None, Any]:
        stack: list[_Frame] = []
        root: Node | None = None
        data: Any = None
        documents = 0
        events_ = yaml.events
        for event in events:
            kind = type(event)
            if kind is events_.ScalarEvent:
                mark = event.start_mark
                path = self._path_of_next(stack)
                if stack and isinstance(stack[-1].data, dict) and stack[-1].key is None:
                    self._key(stack[-1], event)
                    continue
                node = Node(mark.line, mark.column)
                value = self._scalar(event, node, path)
                if event.anchor is not None:
                    self.anchors[event.anchor] = (node, value)
            elif kind is events_.MappingStartEvent or kind is events_.SequenceStartEvent:
                mark = event.start_mark
                path = self._path_of_next(stack)
                is_map = kind is events_.MappingStartEvent
                node = Node(mark.line, mark.column, {} if is_map else [])
                tag = event.tag
                if tag not in (None, "!", _MAP if is_map else _SEQ):
                    self._bad_tag(tag, mark, path)
                is_key = bool(stack) and isinstance(stack[-1].data, dict) and stack[-1].key is None
                if is_key:
                    self.report(mark, stack[-1].path, _NOT_A_KEY)
                if event.anchor is not None:
                    self.open_anchors.add(event.anchor)
                stack.append(_Frame(node, {} if is_map else [], path, event.anchor, is_key))
                continue
            elif kind is events_.MappingEndEvent or kind is events_.SequenceEndEvent:
                frame = stack.pop()
                if frame.is_key:
                    stack[-1].key = ("", _DISCARD_NODE)
                    if frame.anchor is not None:
                        self.open_anchors.discard(frame.anchor)
                    continue
                if frame.merges:
                    self._apply_merges(frame)
                node, value = frame.node, frame.data
                if frame.anchor is not None:
                    self.open_anchors.discard(frame.anchor)
                    self.anchors[frame.anchor] = (node, value)
            elif kind is events_.AliasEvent:
                mark = event.start_mark
                path = self._path_of_next(stack)
                if event.anchor in self.open_anchors:
                    self.report(mark, path, "an alias refers to a node that contains it (a cycle)")
                    node, value = Node(mark.line, mark.column), None
                elif event.anchor not in self.anchors:
                    self.report(
                        mark,
                        path,
                        f"found undefined alias *{event.anchor}",
                        "define the anchor (&name) before using the alias (*name)",
                    )
                    node, value = Node(mark.line, mark.column), None
                else:
                    node, value = self.anchors[event.anchor]
                if stack and isinstance(stack[-1].data, dict) and stack[-1].key is None:
                    # An alias as a key: use its text if it is a scalar.
                    if node.items is None and isinstance(value, str | int | float | bool):
                        stack[-1].key = self._claim_key(stack[-1], str(value), node)
                    else:
                        self.report(mark, stack[-1].path, _NOT_A_KEY)
                        stack[-1].key = ("", _DISCARD_NODE)
                    continue
            elif kind is events_.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise _SecondDocument(event.start_mark.line, event.start_mark.column)
                continue
            else:
                continue
            # A finished value (scalar, alias, or a closed mapping / list): attach it.
            if not stack:
                root, data = node, value
                continue
            parent = stack[-1]
            if isinstance(parent.data, list):
                parent.data.append(value)
                parent.node.items.append(node)
                continue
            assert parent.key is not None
            name, key_node = parent.key
            parent.key = None
            if key_node is _MERGE_NODE:
                parent.merges.append((node, value))
            elif key_node is not _DISCARD_NODE:
                parent.data[name] = value
                parent.node.items[name] = (key_node, node)
        return root, data

    def _path_of_next(self, stack: list[_Frame]) -> DataPath:
        if not stack:
            return ()
        frame = stack[-1]
        if isinstance(frame.data, list):
            return (*frame.path, len(frame.data))
        if frame.key is not None:
            return (*frame.path, frame.key[0])
        return frame.path

    def _key(self, frame: _Frame, event: Any) -> None:
        mark = event.start_mark
        tag = event.tag
        if tag is None and event.implicit[0] and event.value == "<<":
            frame.key = ("<<", _MERGE_NODE)
            return
        if tag not in (None, "!") and tag not in _SCALAR_TAGS:
            self._bad_tag(tag, mark, frame.path)
            frame.key = ("", _DISCARD_NODE)
            return
        node = Node(mark.line, mark.column)
        # Keys stay the text as written: `on:` or `no:` name a kernel, not a boolean.
        frame.key = self._claim_key(frame, str(event.value), node)
        if event.anchor is not None:
            self.anchors[event.anchor] = (node, str(event.value))

    def _claim_key(self, frame: _Frame, name: str, node: Node) -> tuple[str, Node]:
        items = frame.node.items
        if name in items:
            first = items[name][0].line + 1
            self.report(
                node,
                (*frame.path, name),
                f"duplicate key '{name}' (first at line {first})",
                "YAML keeps only one of them; remove or rename one",
            )
            return name, _DISCARD_NODE
        return name, node

    def _apply_merges(self, frame: _Frame) -> None:
        """``<<: *defaults``: keys written next to the merge win, then the first merged."""
        sources: list[tuple[Node, Any]] = []
        for node, value in frame.merges:
            if isinstance(value, list) and isinstance(node.items, list):
                sources.extend(zip(node.items, value, strict=True))
            else:
                sources.append((node, value))
        for node, value in sources:
            if not isinstance(value, dict) or not isinstance(node.items, dict):
                self.report(
                    node, frame.path, "'<<' (a merge key) takes a mapping or a list of them"
                )
                continue
            for name, pair in node.items.items():
                if name not in frame.node.items:
                    frame.node.items[name] = pair
                    frame.data[name] = value[name]

    def _bad_tag(self, tag: str, mark: Any, path: DataPath) -> None:
        shown = "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag
        if "python/" in tag:
            message = (
                f"the tag {shown} is refused: topology files are plain data, "
                "and tags that build Python objects are never executed"
            )
            hint = "remove the tag; kernels are named with `entry: module:attribute`"
        else:
            message = f"the tag {shown} is not supported in topology files"
            hint = "remove the tag; use plain strings, numbers, booleans, lists and mappings"
        self.report(mark, path, message, hint)

    def _scalar(self, event: Any, node: Node, path: DataPath) -> Any:
        tag = event.tag
        value = event.value
        if tag is None or tag == "!":
            tag = _resolve(value) if event.implicit[0] and tag is None else _STR
        elif tag not in _SCALAR_TAGS:
            self._bad_tag(tag, event.start_mark, path)
            return None
        if tag == _STR:
            return self._string(event, value, path)
        if tag == _TIMESTAMP:
            # A date is only ever a description or a param here: keep the text written.
            return str(value)
        try:
            return _CONSTRUCT[tag](ScalarNode(tag, value)) if tag in _CONSTRUCT else None
        except (ValueError, KeyError, yaml.YAMLError):
            mark = event.start_mark
            self.report(mark, path, f"{value!r} is not a valid {tag[len(_TAG) :]}")
            return None

    def _column_of(self, event: Any, value: str, offset: int) -> int:
        """The 1-based column of ``value[offset]`` where the text shows it verbatim."""
        start, end = event.start_mark, event.end_mark
        column: int = start.column + 1
        if start.line != end.line or self.text is None:
            return column  # folded or multi-line: the scalar's start is the honest answer
        raw = self.text[start.index : end.index]
        if event.style in ("'", '"'):
            raw, column = raw[1:-1], column + 1
        return column + offset if raw == value else start.column + 1

    def _string(self, event: Any, value: str, path: DataPath) -> str:
        if "$" not in value:
            return value
        expanded, problems = interpolate(value, self.env)
        for offset, message, hint in problems:
            column = self._column_of(event, value, offset)
            self.problems.append(
                Diagnostic(self.file, event.start_mark.line + 1, column, message, hint)
            )
            self.spoiled.append(path)
        if problems or expanded == value.replace("$${", "${"):
            return expanded
        return Substituted(expanded)  # a variable's text: read as a value where it is used


_NOT_A_KEY: Final = "a mapping key must be a plain string, not a list or mapping"
_DISCARD_NODE: Final = Node(-1, -1)
_MERGE_NODE: Final = Node(-1, -1)


def _failed(problem: Diagnostic) -> Loaded:
    return Loaded(None, SourceMap(problem.file, None), [problem])


def _decode(raw: bytes, file: str) -> str | Diagnostic:
    if b"\x00" in raw[:8192] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return Diagnostic(
            file,
            *_line_column(raw, raw.index(b"\x00"), b"\n"),
            "this is not a text file (it contains NUL bytes); a topology is YAML text",
            "check that the path names the .yaml file",
        )
    try:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            return raw.decode("utf-16")
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Diagnostic(
            file,
            *_line_column(raw, exc.start, b"\n"),
            f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded)",
            "save the file as UTF-8",
        )


def _line_column(text: AnyStr, index: int, newline: AnyStr) -> tuple[int, int]:
    line = text.count(newline, 0, index) + 1
    return line, index - (text.rfind(newline, 0, index) + 1) + 1


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
    elif "mapping values are not allowed" in problem:
        hint = "a ':' inside a value needs quotes, or the line above is indented wrongly"
    elif "duplicate" in problem:
        hint = "remove or rename one of them"
    return Diagnostic(file, line, column, message, hint)


def _char_at(text: str, line: int, column: int) -> str | None:
    lines = text.split("\n")
    if 0 < line <= len(lines) and 0 < column <= len(lines[line - 1]):
        return lines[line - 1][column - 1]
    return None
