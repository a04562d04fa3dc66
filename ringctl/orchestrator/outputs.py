"""Output that cannot kill a run: a full disk under stdout, stderr or the log.

``ringctl up`` runs for hours with its output going to files (the detached supervisor's
log, a redirected stdout). When that disk fills up, a ``write`` raises ``OSError``
(``ENOSPC``); left alone, that would end the progress ticker, or the supervisor, with a
traceback nobody can read. Here each lost line is counted instead, the first loss is
reported once (``on_first_loss``), and ``summary()`` gives the count at the end. The
kernels go on.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["Losses", "PrivateFileHandler", "SafeStream", "guard_std_streams", "log_records_to"]


class Losses:
    """Lines that could not be written, by where they were going; thread-safe."""

    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.first_error: str | None = None
        self.on_first_loss: Callable[[str], None] | None = None
        self._lock = threading.Lock()

    def lost(self, where: str, error: OSError, lines: int = 1) -> None:
        with self._lock:
            first = not self.lines
            self.lines[where] = self.lines.get(where, 0) + max(lines, 1)
            if first:
                self.first_error = error.strerror or str(error)
        if first and self.on_first_loss is not None:
            self.on_first_loss(
                f"writing to {where} failed ({self.first_error}); lost lines are counted "
                "and the run goes on"
            )

    def summary(self) -> str | None:
        if not self.lines:
            return None
        parts = ", ".join(f"{n} to {where}" for where, n in self.lines.items())
        return f"{sum(self.lines.values())} lines of output were lost ({parts}): {self.first_error}"


class SafeStream(io.TextIOBase):
    """A text stream over a file descriptor that counts failed writes instead of raising.

    Unbuffered (``os.write``): nothing is left half-written in a buffer for Python to
    try again, and fail on loudly, at exit.
    """

    def __init__(self, original: TextIO, where: str, losses: Losses) -> None:
        self._original = original
        self._fd = original.fileno()
        self._where = where
        self._losses = losses
        self._encoding: str = getattr(original, "encoding", None) or "utf-8"

    # Read-only, as on io.TextIOWrapper (typeshed types it as a plain attribute).
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        data = text.encode(self._encoding, errors="replace")
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self._losses.lost(self._where, exc, text.count("\n"))
        return len(text)

    def flush(self) -> None:
        return None


def guard_std_streams(losses: Losses) -> None:
    """Route stdout and stderr through ``SafeStream`` where they are files or pipes
    (a terminal is left as it is: the live dashboard draws there)."""
    for name in ("stdout", "stderr"):
        stream: Any = getattr(sys, name)
        try:
            if stream is None or stream.isatty():
                continue
            stream.flush()
            setattr(sys, name, SafeStream(stream, name, losses))
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            continue


class PrivateFileHandler(logging.FileHandler):
    """A log file only its owner can read (0600), whose lost lines are counted."""

    def __init__(self, path: str, losses: Losses) -> None:
        self.losses = losses
        super().__init__(path, delay=True)  # no file unless something is logged

    def _open(self) -> Any:
        def private(path: str, flags: int) -> int:
            return os.open(path, flags, 0o600)

        return open(self.baseFilename, self.mode, encoding=self.encoding, opener=private)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            self.losses.lost(f"the log {self.baseFilename}", error)
            return
        super().handleError(record)


def log_records_to(path: str | None, losses: Losses) -> None:
    """ringctl's own log records (the loop watchdog's, say) go to the file ``path`` only
    (0600; lost lines counted in ``losses``), or to stderr when ``path`` is ``None``."""
    handler: logging.Handler = (
        logging.StreamHandler(sys.stderr) if path is None else PrivateFileHandler(path, losses)
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("ringctl")
    logger.addHandler(handler)
    logger.propagate = False
