"""``native_kernel``: a persistent kernel whose handler is a C++ function in a ``.cu`` file.

The same records and lifecycle as ``@persistent_kernel``; the handler is compiled at
launch together with ringctl's loop, by the host C++ compiler for ``backend: cpu`` and
for the GPU by NVRTC. Declaring one compiles nothing and imports no compiler.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Final

import numpy as np

from ringctl.kernel.persistent import NativeHandler, PersistentKernel, StateInit, _record_dtype

__all__ = ["NativeHandler", "native_kernel", "record_struct"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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


def _no_python_call(*args: Any) -> int:
    """A C++ handler runs only inside its compiled loop."""
    raise TypeError("a native_kernel's handler is C++: it runs only inside its loop")


def native_kernel(
    *,
    source: str | Path,
    function: str,
    input: Any,
    output: Any = None,
    state: int = 0,
    init: StateInit | None = None,
    kernel_id: str | None = None,
) -> PersistentKernel:
    """Declare the C++ device function ``function`` in ``source`` as a persistent kernel.

    ``source`` is relative to the file of the module that declares the kernel. A map
    handler is ``RINGCTL_DEVICE int function(const In& rec, Out& out, double* state)``,
    a sink (no ``output``) ``RINGCTL_DEVICE int function(const In& rec, double* state)``;
    ``In`` and ``Out`` are C structs ringctl generates from the record dtypes.
    """
    in_dtype = _record_dtype(input, "input")
    out_dtype = None if output is None else _record_dtype(output, "output")
    if state < 0:
        raise ValueError(f"state must be >= 0 float64 words, got {state}")
    if not _IDENT.match(function):
        raise ValueError(f"function must be a C++ identifier, got {function!r}")
    record_struct("In", in_dtype)  # a record C++ cannot read is refused here, at import
    if out_dtype is not None:
        record_struct("Out", out_dtype)
    path = Path(source)
    if not path.is_absolute():
        caller = sys._getframe(1).f_globals.get("__file__")
        path = (Path(caller).parent if caller else Path.cwd()) / path
    if not path.is_file():
        raise FileNotFoundError(f"native_kernel {function!r}: no C++ source at {path}")
    return PersistentKernel(
        handler=_no_python_call,
        kernel_id=kernel_id or function,
        input=in_dtype,
        output=out_dtype,
        state=state,
        init=init,
        doc=f"C++ handler {function} in {path.name}",
        native=NativeHandler(path.resolve(), function),
    )
