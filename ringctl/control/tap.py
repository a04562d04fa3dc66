"""The supervisor's side of ``ringctl tap``: sample a port and stream what it saw.

The tap lives on the port (``ringctl.engine.local.ports.Tap``): a bounded buffer that the
send path appends to and that this loop drains a few messages at a time. Draining is
paced (``POLL_S``, at most ``PER_POLL`` a time), so a tap costs the kernels' loop a
bounded share however fast the port sends; what the reader cannot keep up with is
overwritten and counted as missed, never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Final

from ringctl._preview import preview
from ringctl.control import wire
from ringctl.control.target import Tap

__all__ = ["serve_tap"]

POLL_S: Final = 0.05
PER_POLL: Final = 20
#: With nothing to send for this long, a ``waiting`` line keeps the client's read alive.
KEEPALIVE_S: Final = 2.0


async def serve_tap(
    tap: Tap,
    kernel: str,
    port: str,
    count: int | None,
    run_ended: Callable[[], bool],
    writer: asyncio.StreamWriter,
    reader: asyncio.StreamReader | None,
) -> dict[str, Any]:
    """Stream ``message`` events until ``count`` were sent, the client left or the run ended.

    Runs on the control thread: ``tap`` is already attached (on the kernels' loop) and is
    detached by the caller; ``take`` is safe across threads.
    """
    gone: asyncio.Future[bytes] | None = None
    if reader is not None:
        # The client sends nothing more; a read that returns means it hung up.
        gone = asyncio.ensure_future(reader.read(1))
    sent = 0
    ended = False
    last_write = time.monotonic()
    try:
        while count is None or sent < count:
            want = PER_POLL if count is None else min(PER_POLL, count - sent)
            batch = tap.take(want)
            for msg in batch:
                sent += 1
                data = {"n": sent, "t": round(time.time(), 6), "kernel": kernel, "port": port,
                        "missed": tap.missed, "value": preview(msg)}  # fmt: skip
                writer.write(wire.encode({"v": 1, "event": "message", "data": data}))
            now = time.monotonic()
            if now - last_write >= KEEPALIVE_S:
                # Nothing to show for a while: tell the client we are still here.
                data = {"seen": tap.seen, "kernel": kernel, "port": port}
                writer.write(wire.encode({"v": 1, "event": "waiting", "data": data}))
            if batch or now - last_write >= KEEPALIVE_S:
                last_write = now
            await writer.drain()
            if count is not None and sent >= count:
                break
            if run_ended():
                ended = True
                break
            if gone is None:
                await asyncio.sleep(POLL_S)
                continue
            done, _ = await asyncio.wait({gone}, timeout=POLL_S)
            if done:
                raise ConnectionResetError("the tap's client went away")
    finally:
        if gone is not None and not gone.done():
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone
    return {"kernel": kernel, "port": port, "messages": sent, "seen": tap.seen,
            "missed": tap.missed, "ended": ended}  # fmt: skip
