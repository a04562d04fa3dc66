"""One translation unit per C++ persistent kernel: the loop, its records, the user's handler.

The records become C structs generated from the kernel's NumPy dtypes (named ``In`` and
``Out``), the control-block and ring-header word indices come from ``layout.py``, and the
user's source is pasted in under a ``#line`` directive, so the compiler reports its errors
at the user's file and line. Pure Python: nothing here needs a compiler.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources
from typing import Any, Final

import numpy as np

from ringctl.engine.local.persistent import layout
from ringctl.kernel.native import NativeHandler
from ringctl.kernel.persistent import PersistentKernel

__all__ = [
    "NativeCompileError",
    "first_error",
    "record_struct",
    "source_key",
    "translation_unit",
]

#: NumPy scalar kinds and sizes -> the C type spelled the same on both compilers.
_C_TYPES: Final[dict[tuple[str, int], str]] = {
    ("i", 1): "signed char",
    ("i", 2): "short",
    ("i", 4): "int",
    ("i", 8): "long long",
    ("u", 1): "unsigned char",
    ("u", 2): "unsigned short",
    ("u", 4): "unsigned int",
    ("u", 8): "unsigned long long",
    ("f", 4): "float",
    ("f", 8): "double",
    ("b", 1): "bool",
}
_WORDS: Final = (
    "CMD", "ACK", "HEARTBEAT", "TERMINATED", "IN", "OUT", "ERRORS", "POS",
    "HEAD", "TAIL", "RING_CLOSED", "CONSUMER_GONE", "DISCARDED", "STOP_TERMINATED",
)  # fmt: skip
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class NativeCompileError(Exception):
    """The compiler rejected a handler; the message ends with its first error, file:line."""


def _field(name: str, dtype: np.dtype[Any], where: str) -> tuple[str, int]:
    """``(declaration, alignment)`` of one field, or a ``TypeError`` saying what to change."""
    count = 1
    base = dtype
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        if len(shape) != 1:
            raise TypeError(f"{where}: field {name!r} is a {len(shape)}-D array; use 1-D")
        count = shape[0]
    ctype = _C_TYPES.get((base.kind, base.itemsize))
    if ctype is None:
        raise TypeError(
            f"{where}: field {name!r} has type {base}, which C++ handlers cannot read "
            "(use signed or unsigned integers, float32, float64 or bool)"
        )
    if not _IDENT.match(name):
        raise TypeError(f"{where}: field name {name!r} is not a C identifier")
    return (f"{ctype} {name}[{count}];" if dtype.subdtype else f"{ctype} {name};"), base.itemsize


def record_struct(type_name: str, dtype: np.dtype[Any]) -> str:
    """A C struct laid out exactly as ``dtype`` (explicit padding; checked by a static_assert).

    Every field must sit at a multiple of its own size and the record's size must be a
    multiple of its largest field's: what ``np.dtype([...], align=True)`` gives.
    """
    where = f"record {type_name} ({dtype})"
    fields: dict[str, Any] = dict(dtype.fields or {})
    lines = [f"struct {type_name} {{"]
    offset = 0
    widest = 1
    for pad, (name, spec) in enumerate(sorted(fields.items(), key=lambda kv: kv[1][1])):
        ftype, foff = spec[0], spec[1]
        decl, align = _field(name, ftype, where)
        if foff % align:
            raise TypeError(
                f"{where}: field {name!r} sits at byte {foff}, not a multiple of its size "
                f"{align}; declare the dtype with align=True"
            )
        if foff > offset:
            lines.append(f"  unsigned char rc_pad{pad}[{foff - offset}];")
        elif foff < offset:
            raise TypeError(f"{where}: field {name!r} overlaps the field before it")
        lines.append(f"  {decl}")
        offset = foff + ftype.itemsize
        widest = max(widest, align)
    if dtype.itemsize % widest:
        raise TypeError(
            f"{where}: its size {dtype.itemsize} is not a multiple of {widest}; declare "
            "the dtype with align=True"
        )
    if dtype.itemsize > offset:
        lines.append(f"  unsigned char rc_tail[{dtype.itemsize - offset}];")
    lines.append("};")
    lines.append(
        f'static_assert(sizeof({type_name}) == {dtype.itemsize}, "ringctl: {type_name} size");'
    )
    return "\n".join(lines)


def _text(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text()


def _words() -> str:
    consts = [f"#define RC_{w} {getattr(layout, w)}" for w in _WORDS]
    consts += [f"#define RC_{c.name} {int(c)}" for c in layout.Command]
    return "\n".join(consts)


def translation_unit(kernel: PersistentKernel, handler: NativeHandler, user_source: str) -> str:
    """The whole program for ``kernel``: prelude, records, the user's file, the loop."""
    out = record_struct("Out", kernel.output) if kernel.output is not None else ""
    if kernel.is_sink:
        call = f"#define RC_SINK 1\n#define RC_HANDLE(rec, state) {handler.function}(rec, state)"
    else:
        call = f"#define RC_HANDLE(rec, out, state) {handler.function}(rec, out, state)"
    path = str(handler.source).replace("\\", "\\\\").replace('"', '\\"')
    return "\n".join(
        [
            "// Generated by ringctl: the persistent loop around a C++ handler.",
            _words(),
            _text("prelude.h"),
            record_struct("In", kernel.input),
            out,
            f'#line 1 "{path}"',
            user_source,
            '#line 1 "ringctl-loop.h"',
            call,
            _text("loop.h"),
        ]
    )


def source_key(text: str, *parts: str) -> str:
    """A short hash naming a build of ``text`` with ``parts`` (compiler, flags)."""
    h = hashlib.sha256(text.encode())
    for p in parts:
        h.update(b"\0" + p.encode())
    return h.hexdigest()[:24]


#: ``file:line:col: error: ...`` (g++, nvcc) or ``file(line): error: ...`` (NVRTC).
_DIAG = re.compile(r"^\S[^\n]*?(?::\d+(?::\d+)?|\(\d+\)):[^\n]*\berror\b[^\n]*$", re.MULTILINE)


def first_error(output: str) -> str:
    """The compiler's first ``file:line: ... error ...`` line (else its first line)."""
    m = _DIAG.search(output)
    if m is not None:
        return m.group(0).strip()
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[0].strip() if lines else "the compiler failed without a message"
