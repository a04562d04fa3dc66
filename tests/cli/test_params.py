"""The plain parameter path gives commands exactly what typer's own coercion gives them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import typer

from ringctl.cli import RingctlCommand


def _app(seen: list[dict[str, Any]], cls: type | None) -> Any:
    app = typer.Typer(add_completion=False)

    @app.command(cls=cls)
    def command(
        files: Annotated[list[Path], typer.Argument()],
        name: Annotated[str | None, typer.Option()] = None,
        out: Annotated[Path | None, typer.Option()] = None,
        tags: Annotated[list[str] | None, typer.Option("--tag")] = None,
        count: Annotated[int, typer.Option()] = 3,
        flag: Annotated[bool, typer.Option("--flag")] = False,
        wait: Annotated[float | None, typer.Option()] = None,
        rate: Annotated[float, typer.Option()] = 4.0,
    ) -> None:
        seen.append(
            {"files": files, "name": name, "out": out, "tags": tags, "count": count, "flag": flag,
             "wait": wait, "rate": rate}
        )  # fmt: skip

    return typer.main.get_command(app)


@pytest.mark.parametrize(
    "argv",
    [
        ["a.yaml"],
        ["a.yaml", "b c.yaml", "--name", "x", "--out", "o/p", "--flag"],
        ["--tag", "t1", "--tag", "t2", "--count", "7", "ünï.yaml"],
        ["--name", "", "./-"],
        ["a.yaml", "--wait", "2.5", "--rate", "1e3"],
        ["a.yaml", "--wait", "-0", "--rate", "7"],
    ],
)
def test_plain_values_equal_typers_own(argv: list[str]) -> None:
    plain: list[dict[str, Any]] = []
    typer_own: list[dict[str, Any]] = []
    _app(plain, RingctlCommand).main(argv, standalone_mode=False)
    _app(typer_own, None).main(argv, standalone_mode=False)
    assert plain == typer_own
    assert all(isinstance(f, Path) for f in plain[0]["files"])


def test_a_bad_int_is_still_refused() -> None:
    seen: list[dict[str, Any]] = []
    with pytest.raises(Exception, match="valid integer"):  # typer's own check, kept
        _app(seen, RingctlCommand).main(["a", "--count", "seven"], standalone_mode=False)
    assert seen == []
