"""Command-line values without typer's pydantic round trip, where none is needed.

typer (0.29) validates every parameter value through a pydantic ``TypeAdapter``, so any
command with a parameter imports pydantic: most of what ``ringctl ps`` would spend
starting. A ``str`` or ``Path`` from the command line needs no validation, a flag is
already a ``bool``, and a ``float`` is ``float(text)``; those take the plain path here
(a callback still checks the value). Anything else keeps typer's own.
"""

from __future__ import annotations

from typing import Any

__all__ = ["plain_params"]


class _PlainValues:
    """Turns command-line strings into ``str`` / ``Path`` / ``float`` values (one, or a list).

    A value it has no plain answer for (a flag given as text, say) goes to typer's own
    coercion, built only then.
    """

    def __init__(self, convert: Any, many: bool, fallback: Any) -> None:
        self._convert = convert
        self._many = many
        self._fallback = fallback

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None:
            return () if self._many else None
        if self._convert is bool:
            if isinstance(value, bool):
                return value
            return self._fallback().coerce(value, param=param, ctx=ctx)
        if self._many:
            return [self._one(v, param) for v in value]
        return self._one(value, param)

    def _one(self, value: Any, param: Any) -> Any:
        if self._convert is float:
            try:
                return float(value)
            except ValueError:
                import typer

                raise typer.BadParameter(f"must be a number; got {value!r}", param=param) from None
        if value == "" and self._convert is not str:
            import typer

            # Path("") is ".": `ringctl up "$FILE"` with FILE unset would name the folder.
            raise typer.BadParameter("an empty path (is a shell variable unset?)", param=param)
        return self._convert(value)


def plain_params(params: list[Any]) -> list[Any]:
    for param in params:
        if not getattr(param, "_ringctl_plain", False):
            _plain_coercion(param)
            param._ringctl_plain = True
    return params


def _plain_coercion(param: Any) -> None:
    """Skip typer's pydantic round trip for plain ``str``, ``Path`` and ``float`` parameters.

    typer validates every value through a pydantic ``TypeAdapter``, and importing pydantic
    is most of what ``ringctl ps`` would otherwise spend starting. A ``str`` or ``Path``
    from the command line needs no validation; anything with a constraint (an existing
    path, a parser, a choice) keeps typer's own. Only public attributes are read, and a
    typer without them simply keeps its behaviour.
    """
    from pathlib import Path

    descriptor = getattr(param, "type_descriptor", None)
    info = getattr(descriptor, "parameter_info", None)
    if descriptor is None or info is None or not hasattr(param, "get_runtime_param"):
        return
    if getattr(info, "parser", None) is not None or getattr(info, "exists", False):
        return
    if getattr(info, "resolve_path", False) or getattr(info, "allow_dash", False):
        return
    annotation = descriptor.annotation
    many = annotation in (list[str], list[Path])
    leaf = {list[str]: str, list[Path]: Path}.get(annotation, annotation)
    if leaf == float | None:
        leaf = float
    if leaf not in (str, Path, bool, float) or many != bool(param.nargs == -1 or param.multiple):
        return
    plain = _PlainValues(leaf, many, param.get_runtime_param)
    param.get_runtime_param = lambda: plain
