"""What the control server needs of a running topology: the ``ControlTarget`` protocol.

The server runs on its own thread and event loop; the kernels run on theirs. The
properties below are read from the control thread (plain attribute reads: cheap, and
safe while the kernels' loop is busy or blocked). ``status`` and the coroutines run on
the kernels' loop only: the server hands them over there and bounds the wait.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["ControlTarget", "Progress", "Tap"]

#: Called (on the kernels' loop) with each drain progress document during ``down``.
Progress = Callable[[dict[str, Any]], None]


class ControlTarget(Protocol):
    """A supervised topology as the control plane sees it."""

    @property
    def name(self) -> str: ...

    @property
    def file(self) -> str | None: ...

    @property
    def state(self) -> str:
        """``starting``, ``running``, ``paused``, ``draining``, ``stopped``, ..."""
        ...

    @property
    def ended(self) -> bool: ...

    @property
    def uptime_s(self) -> float: ...

    def loop_report(self) -> dict[str, Any] | None:
        """How the kernels' loop is doing (the watchdog's view); safe from any thread."""
        ...

    def status(self) -> dict[str, Any]:
        """The ``ringctl ps NAME --json`` document. Kernels' loop only."""
        ...

    async def pause(self, kernels: list[str] | None) -> dict[str, Any]: ...

    async def resume(self, kernels: list[str] | None) -> dict[str, Any]: ...

    def stop_within(self, seconds: float) -> None:
        """A down arrived (called on the control thread, before it is handed over): once
        ``seconds`` have passed, every kernel stops after the message in hand, even if
        one holds the kernels' loop meanwhile."""
        ...

    async def down(self, timeout: float, progress: Progress) -> dict[str, Any]: ...

    async def restart(self, kernels: list[str], timeout: float) -> dict[str, Any]: ...

    async def scale(self, kernel: str, replicas: int, timeout: float) -> dict[str, Any]: ...

    async def apply(self, file: str, dry_run: bool, timeout: float) -> dict[str, Any]:
        """``ringctl apply``: the file is read (and its kernels imported) off the kernels'
        loop, then diffed and carried out on it."""
        ...

    @property
    def applied(self) -> dict[str, Any] | None:
        """When the file was last applied, and how the running kernels differ from it."""
        ...

    def tap(self, kernel: str, port: str) -> Tap:
        """Attach a tap to ``kernel.port``. Kernels' loop only."""
        ...

    def untap(self, kernel: str, port: str, tap: Tap) -> None:
        """Detach it. Kernels' loop only."""
        ...


class Tap(Protocol):
    """A side channel on a port; ``take`` and the counters are safe from any thread."""

    @property
    def seen(self) -> int: ...

    @property
    def missed(self) -> int: ...

    def take(self, max_items: int) -> list[Any]: ...
