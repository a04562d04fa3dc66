"""A message, shown small: what ``ringctl tap`` prints for each message it samples.

Pure and JSON-safe: scalars as themselves (long strings cut), arrays (NumPy, CuPy, or
anything with ``dtype`` and ``shape``) as dtype, shape and the first few values,
containers and dataclasses a few levels deep, anything else as a shortened ``repr``.
Nothing is copied off a GPU but the few values shown.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["Previewed", "preview", "preview_text"]

#: Values shown from the front of an array or a sequence.
HEAD: Final = 6
MAX_TEXT: Final = 200
MAX_DEPTH: Final = 3
MAX_FIELDS: Final = 12


@dataclasses.dataclass(frozen=True, slots=True)
class Previewed:
    """A message kept as its preview only (a tap never keeps a GPU array, nor a message
    bigger than its whole buffer, alive)."""

    doc: Any

    @classmethod
    def of(cls, value: Any) -> Previewed:
        return cls(preview(value))


def preview(value: Any, depth: int = 0) -> Any:
    """A JSON-safe stand-in for ``value`` (its shape rather than all of it)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, Previewed):
        return value.doc
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[:MAX_TEXT] + "…"
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value[:32])
        return {"type": type(value).__name__, "len": len(value), "head": raw.hex()}
    if _is_array(value):
        return _array(value)
    if depth >= MAX_DEPTH:
        return {"type": _type_name(value), "repr": _short_repr(value)}
    names: list[str] | None = None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)]
    elif isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple
        names = list(value._fields)
    if names is not None:
        fields = {n: preview(getattr(value, n), depth + 1) for n in names[:MAX_FIELDS]}
        return {"type": _type_name(value), "fields": fields}
    if isinstance(value, Mapping):
        items = list(value.items())
        doc = {str(k): preview(v, depth + 1) for k, v in items[:MAX_FIELDS]}
        if len(items) > MAX_FIELDS:
            doc["…"] = f"{len(items) - MAX_FIELDS} more"
        return doc
    if isinstance(value, list | tuple | set | frozenset):
        seq = list(value)
        return {
            "type": type(value).__name__,
            "len": len(seq),
            "head": [preview(v, depth + 1) for v in seq[:HEAD]],
        }
    return {"type": _type_name(value), "repr": _short_repr(value)}


def _is_array(value: Any) -> bool:
    return hasattr(value, "dtype") and hasattr(value, "shape") and hasattr(value, "ravel")


def _array(value: Any) -> dict[str, Any]:
    shape = [int(n) for n in value.shape]
    doc: dict[str, Any] = {"type": _type_name(value), "dtype": str(value.dtype), "shape": shape}
    try:
        head = value.ravel()[:HEAD]
        if hasattr(head, "get"):  # CuPy: copy only these few values to the host
            head = head.get()
        doc["head"] = [preview(v.item() if hasattr(v, "item") else v, MAX_DEPTH) for v in head]
    except Exception as exc:  # an exotic array type: say so rather than fail the tap
        doc["head_error"] = f"{type(exc).__name__}: {exc}"
    return doc


def _type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:
        return f"<repr failed: {type(exc).__name__}>"
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def preview_text(doc: Any) -> str:
    """One line for a person: ``ndarray int64[1000] [0, 1, 4, 9, 16, 25, …]``."""
    if isinstance(doc, dict):
        if "dtype" in doc and "shape" in doc:
            shape = ",".join(str(n) for n in doc["shape"]) or "scalar"
            name = str(doc.get("type", "array")).rsplit(".", 1)[-1]
            head = doc.get("head")
            values = ""
            if isinstance(head, list):
                total = math.prod(doc["shape"]) if doc["shape"] else 1
                more = ", …" if total > len(head) else ""
                values = " [" + ", ".join(preview_text(v) for v in head) + more + "]"
            return f"{name} {doc['dtype']}[{shape}]{values}"
        if "fields" in doc:
            name = str(doc.get("type", "")).rsplit(".", 1)[-1]
            fields = ", ".join(f"{k}={preview_text(v)}" for k, v in doc["fields"].items())
            return f"{name}({fields})"
        if "repr" in doc:
            return str(doc["repr"])
        if "head" in doc and "len" in doc:
            more = ", …" if doc["len"] > len(doc["head"]) else ""
            inner = ", ".join(preview_text(v) for v in doc["head"])
            if doc.get("type") == "list":
                return f"[{inner}{more}] (len {doc['len']})"
            return f"{doc.get('type')}({inner}{more}) (len {doc['len']})"
        return "{" + ", ".join(f"{k}: {preview_text(v)}" for k, v in doc.items()) + "}"
    if isinstance(doc, str):
        return repr(doc)
    if isinstance(doc, float):
        return f"{doc:.6g}"
    return str(doc)
