"""Put a handler's compile error in the author's words: their file and line, then the reason.

Numba reports a handler that does not type-check as a long message: which compiler pass
failed, the reason on one line, then ``During: ...`` lines and source excerpts, often
first in ringctl's generated loop that calls the handler. ``explain`` picks out the
reason and the first place in the handler's own file; ``check_compiles`` compiles a
handler for its records without running anything (``ringctl validate --import``).
"""

from __future__ import annotations

import os
import re
from typing import Any, Final

import numpy as np

from ringctl.checks import NUMBA_HINT
from ringctl.kernel.persistent import PersistentKernel

__all__ = ["NUMBA_HINT", "check_compiles", "explain"]


_AT: Final = re.compile(r"\bat (?P<file>\S+?) \((?P<line>\d+)\)")
_FILE: Final = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')
_NOISE: Final = ("Failed in ", "During:", "File ", "<source elided>")


def explain(exc: BaseException, kernel: PersistentKernel | None) -> str:
    """One line: ``file:line: reason`` for a compile error, else the exception in short."""
    if _missing_numba(exc):
        return f"Numba is not installed; {NUMBA_HINT}"
    text = str(exc)
    if type(exc).__module__.split(".")[0] != "numba":
        return f"{type(exc).__name__}: {text}".strip()
    reason = next(
        (
            line.strip()
            for line in text.splitlines()
            if line.strip() and not line.strip().startswith(_NOISE)
        ),
        type(exc).__name__,
    )
    reason = reason.split(": %", 1)[0]  # Numba appends the LLVM instruction at times
    reason = re.sub(r"<iv=[^>]*>", "", reason)
    where = _where(text, kernel)
    name = kernel.handler.__name__ if kernel is not None else "the handler"
    return f"{where}: Numba cannot compile {name}: {reason}" if where else reason


def check_compiles(kernel: PersistentKernel) -> str | None:
    """Compile the handler for its record types (nothing runs); the error in short, or None."""
    try:
        import numba

        from ringctl.engine.local.persistent.loop import compile_handler

        typeof: Any = numba.typeof
        record = typeof(np.zeros(1, kernel.input)[0])
        state = typeof(np.zeros(max(kernel.state, 1), np.float64))
        if kernel.output is None:
            signature: tuple[Any, ...] = (record, state)
        else:
            signature = (record, typeof(np.zeros(1, kernel.output)[0]), state)
        compile_handler(kernel.handler).compile(signature)
    except Exception as exc:
        return explain(exc, kernel)
    return None


def _missing_numba(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ImportError) and (seen.name or "").split(".")[0] == "numba":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _where(text: str, kernel: PersistentKernel | None) -> str | None:
    """The first place the message names in the handler's file (else its ``def`` line)."""
    if kernel is None:
        return None
    code = getattr(kernel.handler, "__code__", None)
    if code is None:
        return None
    own = os.path.realpath(code.co_filename)
    for pattern in (_AT, _FILE):
        for match in pattern.finditer(text):
            if os.path.realpath(match["file"]) == own:
                return f"{code.co_filename}:{match['line']}"
    return f"{code.co_filename}:{code.co_firstlineno}"
