"""Checks every way into ringctl shares: topology names, durations, and guesses at typos.

A topology's name becomes file names in the state directory (``NAME.sock``, ``NAME.pid``,
``NAME.lock``, ``NAME.log``), so a name that is not tame could point outside it
(``../victim``, ``/etc/x``). One pattern, checked wherever a name comes in.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from typing import Final

from ringctl.exceptions import UserInputError

__all__ = ["MAX_NAME_LENGTH", "MAX_SECONDS", "NAME_PATTERN", "NUMBA_HINT", "check_name",
           "check_seconds", "did_you_mean"]  # fmt: skip

#: What to do when a persistent kernel needs Numba and it is not installed.
NUMBA_HINT: Final = "persistent kernels need Numba: pip install 'ringctl[numba]'"

NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9-]*$"
MAX_NAME_LENGTH: Final = 63
_NAME: Final = re.compile(NAME_PATTERN)


def check_name(name: str) -> str:
    """``name`` if it is a valid topology name; else a ``UserInputError`` (exit 2)."""
    if len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name):
        return name
    shown = name if len(name) <= 80 else name[:77] + "..."
    why = (
        f"longer than {MAX_NAME_LENGTH} characters"
        if len(name) > MAX_NAME_LENGTH
        else "only lowercase letters, digits and '-' are allowed, starting with a letter or digit"
    )
    raise UserInputError(
        f"{shown!r} is not a topology name: {why}",
        hint="the name is the one in the topology file's `name:`; ringctl ps lists them",
    )


#: The longest duration ringctl takes anywhere (a year): long enough for any run, short
#: enough for every timer and socket timeout underneath (``inf`` or ``1e400`` overflow them).
MAX_SECONDS: Final = 365 * 24 * 3600.0


def check_seconds(value: float, what: str) -> float:
    """``value`` if it is a finite, positive number of seconds up to ``MAX_SECONDS``."""
    if not math.isfinite(value) or value <= 0 or value > MAX_SECONDS:
        raise UserInputError(
            f"{what} must be a positive number of seconds, at most {MAX_SECONDS:.0f}; "
            f"got {value!r}",
        )
    return value


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt ``word``, if one is close enough to be a guess."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None
