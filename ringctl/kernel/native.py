"""``native_kernel``: a persistent kernel whose handler is a C++ function in a ``.cu`` file.

The same records and lifecycle as ``@persistent_kernel``; the handler is compiled at
launch together with ringctl's loop, by the host C++ compiler for ``backend: cpu`` and
for the GPU by NVRTC. Declaring one compiles nothing and imports no compiler.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ringctl.kernel.persistent import PersistentKernel, StateInit, _record_dtype

__all__ = ["NativeHandler", "native_kernel"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class NativeHandler:
    """Where a C++ handler is: its source file (absolute) and the function's name."""

    source: Path
    function: str


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
    path = Path(source)
    if not path.is_absolute():
        caller = sys._getframe(1).f_globals.get("__file__")
        path = (Path(caller).parent if caller else Path.cwd()) / path
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
