"""Diagnostics: what the topology layer reports, always tied to a place in a file.

A user fixing a topology file reads these in a terminal, an editor or CI logs, so each
one has the shape compilers use (``FILE:LINE:COLUMN: message``) that editors turn into
links, plus a hint when there is something specific to do about it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ringctl.checks import did_you_mean
from ringctl.exceptions import UserInputError

__all__ = ["Diagnostic", "TopologyError", "did_you_mean", "in_file_order"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem at one place. ``line`` and ``column`` count from 1.

    They are ``None`` only for problems with the file as a whole (it does not exist, it
    cannot be read), where no position inside it means anything.
    """

    file: str
    line: int | None
    column: int | None
    message: str
    hint: str | None = None

    @property
    def location(self) -> str:
        if self.line is None:
            return self.file
        if self.column is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.column}"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"

    def format(self) -> str:
        """The diagnostic and its hint on an indented second line, as the CLI prints it."""
        if self.hint:
            return f"{self}\n    hint: {self.hint}"
        return str(self)

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` form; the keys are a stable interface (add, never rename)."""
        return asdict(self)


def in_file_order(problems: Iterable[Diagnostic]) -> list[Diagnostic]:
    """File order reads best; a stable sort keeps same-place problems in the order found."""
    return sorted(problems, key=lambda d: (d.line or 0, d.column or 0))


class TopologyError(UserInputError):
    """A topology file that cannot be used, with every problem found in it.

    ``diagnostics`` holds all of them (not just the first) so that one run of
    ``ringctl validate`` shows everything to fix. The message is all of them, one per
    line, so that a command which only prints ``message`` still shows the whole list.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        if not diagnostics:
            raise ValueError("TopologyError needs at least one diagnostic")
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))

    @property
    def file(self) -> str:
        return self.diagnostics[0].file
