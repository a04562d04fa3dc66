"""One error per value for a union that failed, instead of one per member, in pydantic's words.

When no member of a union (``number | {equals, min, max}``) accepts a value, pydantic
reports every member's error and names the member in the error's path
(``metrics.m.function-before[not_bool(), union[int,float]].int``). A user wrote one
value: this keeps the errors of the members whose shape the value has (a mapping's
``min > max``), drops "must be a number; got a mapping" from the others, and when no
member fits at all, says what the value may be in one error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final

__all__ = ["EXPECTED", "merge_union_errors"]

#: The names pydantic gives union members in an error's path: a schema's own name
#: (``function-after[_some_bound(), MetricBounds]``) or a plain type (``int``).
_MEMBER: Final = re.compile(r"[a-z][a-z-]*\[.*\]|int|float|str|bool|bytes|list|dict|none")
#: What each kind of type error expects, in the user's words (shared with validate.py).
EXPECTED: Final = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "finite_number": "a finite number",
}
#: Errors that only say the value is not of a member's type.
_SHAPE_KINDS: Final = frozenset(EXPECTED) - {"finite_number"}


def merge_union_errors(
    errors: Sequence[dict[str, Any]], in_data: Callable[[tuple[str | int, ...]], bool]
) -> list[dict[str, Any]]:
    """``errors`` (pydantic's ``exc.errors()``) with union members out of their paths.

    ``in_data(loc)`` tells whether ``loc`` is a place in the user's data: a step named
    like a union member that is not there is pydantic's, and is dropped.
    """
    out: list[dict[str, Any] | None] = []
    groups: dict[tuple[str | int, ...], list[int]] = {}
    for error in errors:
        loc = tuple(error["loc"])
        members = [i for i, step in enumerate(loc) if _is_member(loc, i, error, in_data)]
        if not members:
            out.append(error)
            continue
        kept = tuple(step for i, step in enumerate(loc) if i not in members)
        groups.setdefault(kept[: members[0]], []).append(len(out))
        out.append({**error, "loc": kept})
    for at, indexes in groups.items():
        _merge(at, [i for i in indexes], out)
    return [error for error in out if error is not None]


def _is_member(
    loc: tuple[str | int, ...],
    index: int,
    error: dict[str, Any],
    in_data: Callable[[tuple[str | int, ...]], bool],
) -> bool:
    step = loc[index]
    if not isinstance(step, str) or not _MEMBER.fullmatch(step):
        return False
    if index == len(loc) - 1 and error["type"] in ("missing", "extra_forbidden"):
        return False  # a field's own name
    return not in_data(loc[: index + 1])


def _merge(at: tuple[str | int, ...], indexes: list[int], out: list[dict[str, Any] | None]) -> None:
    """Keep what the members whose shape fits say about the value at ``at``."""
    shape_only: list[dict[str, Any]] = []
    for i in indexes:
        error = out[i]
        assert error is not None
        if tuple(error["loc"]) == at and error["type"] in _SHAPE_KINDS:
            shape_only.append(error)
            out[i] = None
    fitting = [i for i in indexes if out[i] is not None]
    if not fitting:
        first = shape_only[0]
        what = list(dict.fromkeys(EXPECTED[e["type"]] for e in shape_only))
        if "a number" in what and "an integer" in what:
            what.remove("an integer")
        expected = " or ".join(what)
        out[indexes[0]] = {
            "type": "union_shape",
            "loc": at,
            "msg": f"must be {expected}",
            "input": first.get("input"),
            "ctx": {"expected": expected},
        }
        return
    # Two members that both fit may report the same place twice (an integer, a number).
    seen: dict[tuple[str | int, ...], int] = {}
    for i in fitting:
        error = out[i]
        assert error is not None
        loc = tuple(error["loc"])
        if loc in seen and error["type"] in _SHAPE_KINDS:
            earlier = out[seen[loc]]
            if earlier is not None and earlier["type"] in _SHAPE_KINDS:
                out[seen[loc]] = None
        seen[loc] = i
