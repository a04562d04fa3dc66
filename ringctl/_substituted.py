"""Strings that came from environment variables, and the values they stand for.

YAML decides a scalar's type from how it is written, before ``${VAR}`` is replaced, so
``rate: "${RATE:-1000}"`` is a string. The loader marks such strings (``Substituted``)
and ``typed`` reads them again as YAML would have read the text written in their place:
``1000`` an int, ``0.5`` a float, ``true`` a boolean, ``null`` or ``~`` nothing. Where a
kernel declares a params model, its field types decide instead (pydantic converts
``"1000"`` for an int field and keeps it for a string field); only ``null`` is read as
nothing there, so ``"${LIMIT:-null}"`` can default an optional field to unset.
"""

from __future__ import annotations

from typing import Any

__all__ = ["typed"]


def typed(value: Any, *, all_scalars: bool = True) -> Any:
    """``value`` with each string that came from ``${VAR}`` read as a YAML scalar
    (recursively through dicts and lists); everything else as it is.

    ``all_scalars=False``: only ``null`` / ``~`` are read (as ``None``); other strings stay.
    Such a string knows how it reads (``ringctl.topology.loader.Substituted.read``), so
    this module imports nothing and every layer may use it: the engines read a kernel's
    params with it when no params model says what a value is.
    """
    read = getattr(value, "read_substituted", None)
    if read is not None:
        return read(all_scalars)
    if isinstance(value, dict):
        return {k: typed(v, all_scalars=all_scalars) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v, all_scalars=all_scalars) for v in value]
    return value
