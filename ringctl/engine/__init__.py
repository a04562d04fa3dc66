"""Engines: the contract the supervisor drives, the kernel lifecycle, and the engines
that implement them. ``make_engine`` picks one by the name a topology gives."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ringctl.engine.contract import ENGINES

if TYPE_CHECKING:
    from ringctl.engine.contract import Engine

__all__ = ["make_engine"]


def make_engine(name: str, *, address: str | None = None) -> Engine:
    """A new, empty engine of the kind a topology names (``local`` or ``ray``);
    ``address`` is the Ray cluster to join (None: start a local Ray)."""
    if name == "local":
        from ringctl.engine.local.engine import RingKernelRuntime

        return RingKernelRuntime()
    if name == "ray":
        from ringctl.engine.ray.engine import RayRuntime

        return RayRuntime(address=address)
    from ringctl.exceptions import UserInputError

    raise UserInputError(f"unknown engine {name!r}", hint=f"use one of: {', '.join(ENGINES)}")
