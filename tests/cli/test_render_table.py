"""The column layout ``ringctl ps`` prints its kernels and queues with."""

from __future__ import annotations

import io

from rich.cells import cell_len
from rich.console import Console

from ringctl.cli._render import table


def _lines(header: tuple[str, ...], rows: list[tuple[str, ...]], **kw: object) -> list[str]:
    out = io.StringIO()
    table(Console(file=out, width=80, color_system=None), header, rows, **kw)  # type: ignore[arg-type]
    return out.getvalue().splitlines()


def test_columns_line_up_with_wide_characters_and_right_alignment() -> None:
    lines = _lines(("KERNEL", "IN"), [("数据源", "7"), ("k", "12345")], right=("IN",))
    assert lines == ["KERNEL     IN", "数据源      7", "k       12345"]
    assert len({cell_len(line) for line in lines}) == 1


def test_cells_are_text_not_markup_and_stay_on_one_line() -> None:
    lines = _lines(("KERNEL", "STATE"), [("[red]x[/]", "a\nb\x1b[2J")])
    assert len(lines) == 2
    assert lines[1].startswith("[red]x[/]  a")
    assert "\x1b" not in lines[1] and "\\x1b" in lines[1]


def test_thousands_of_rows_print_every_row() -> None:
    rows = [(f"k{i}", str(i)) for i in range(5000)]
    lines = _lines(("KERNEL", "IN"), rows, right=("IN",))
    assert len(lines) == 5001 and lines[-1] == "k4999   4999"
