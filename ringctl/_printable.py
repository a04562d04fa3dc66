"""Text from kernels and files, made safe to show on an operator's terminal.

A kernel's error message, a metric name, a log line or a topology's description can hold
anything: escape sequences that set the terminal's title or clear the screen, carriage
returns that overwrite a line, NULs, bidi overrides that reverse what follows. Before
such text reaches a terminal (or a table, or an XML report), every control character is
shown escaped, as Python writes it (``\\x1b``, ``\\r``, ``\\u202e``), so it is visible
and inert. Printable text, including non-ASCII letters, is left as it is.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["few", "printable"]

# C0 and C1 controls, DEL, and the invisible format characters that reorder or hide
# text: bidi marks, embeddings, overrides and isolates, and the Unicode line separators.
_FORMAT: Final = "\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
_ANY: Final = re.compile(f"[\x00-\x1f{_FORMAT}]")
_BUT_LINES: Final = re.compile(f"[\x00-\x08\x0b-\x1f{_FORMAT}]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char == "\r":
        return "\\r"
    if char == "\t":
        return "\\t"
    if char == "\n":
        return "\\n"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with every control character escaped; ``lines=True`` keeps ``\\n`` and tabs."""
    pattern = _BUT_LINES if lines else _ANY
    if pattern.search(text) is None:  # the usual case: nothing to copy
        return text
    return pattern.sub(_escape, text)


def few(names: list[str], most: int = 10) -> str:
    """``a, b, c`` for a short list; the first ``most`` and ``and N more`` for a long one
    (a pause of 5,000 kernels is one line, not 5,000 names)."""
    if len(names) <= most:
        return ", ".join(names)
    return f"{', '.join(names[:most])} and {len(names) - most} more"
