"""What kernels print or log, tagged with the kernel and replica that wrote it.

Every kernel body runs in its own asyncio task, and the runtime marks each task (and
each set-up hook call) with the kernel and replica in a context variable. Once
``capture`` is installed, ``sys.stdout`` / ``sys.stderr`` writes and ``logging`` records
made under such a mark become ``OutputRecord`` s handed to a sink (``ringctl logs``
reads the file ``KernelLog`` writes); everything else goes where it went before. Tasks
and ``asyncio.to_thread`` calls a kernel starts inherit its mark.

Nothing here runs per message: only a kernel's own ``print`` or log call pays for it.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import json
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from ringctl._printable import printable

__all__ = [
    "KernelLog",
    "LogFollower",
    "OutputRecord",
    "capture",
    "emit",
    "kernel_scope",
    "mark",
    "read_records",
    "unmarked",
]

#: The kernel log is cut in two (``.1`` keeps the older half) past this size.
MAX_LOG_BYTES: Final = 16 * 1024 * 1024
#: A partial line longer than this is written out without waiting for its newline.
MAX_LINE: Final = 64 * 1024

_current: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "ringctl_kernel", default=None
)
#: Told of a mistake Python only warns about (a coroutine never awaited) in the task.
_on_mistake: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar(
    "ringctl_on_mistake", default=None
)


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """One line (or one traceback) a kernel produced."""

    ts: float  # wall-clock time.time()
    kernel: str
    replica: int
    stream: str  # stdout | stderr | log | traceback | warning
    text: str
    level: str | None = None  # for stream "log": INFO, WARNING, ...

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ts": round(self.ts, 6),
            "kernel": self.kernel,
            "replica": self.replica,
            "stream": self.stream,
            "text": self.text,
        }
        if self.level is not None:
            doc["level"] = self.level
        return doc


Sink = Callable[[OutputRecord], None]


def mark(kernel_id: str, replica: int, on_mistake: Callable[[str], None] | None = None) -> None:
    """Tag the current task (a kernel body's) as this kernel's replica.

    ``on_mistake`` is called with ``file:line: what`` when the body drops a coroutine
    without awaiting it (``ctx.send(m)`` for ``await ctx.send(m)``): Python only warns,
    and the message would otherwise never reach the next kernel without a word.
    """
    _current.set((kernel_id, replica))
    _on_mistake.set(on_mistake)


@contextlib.contextmanager
def kernel_scope(kernel_id: str, replica: int) -> Iterator[None]:
    """Tag what runs inside the block (a set-up hook) as this kernel's replica."""
    token = _current.set((kernel_id, replica))
    try:
        yield
    finally:
        _current.reset(token)


@contextlib.contextmanager
def unmarked() -> Iterator[None]:
    """Run the block as the runtime itself, not as a kernel (its writes are not captured)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


_sink: Sink | None = None  # installed by ``capture``
_lock = threading.Lock()  # kernel streams' partial lines


def emit(
    kernel_id: str,
    replica: int,
    stream: str,
    text: str,
    level: str | None = None,
    ts: float | None = None,
) -> None:
    """Hand one record to the installed sink (nothing happens when none is installed).

    ``ts``: when it was written, if not now (output shipped from another process).
    """
    sink = _sink
    if sink is None:
        return
    try:
        sink(OutputRecord(ts or time.time(), kernel_id, replica, stream, text, level))
    except Exception:  # a full disk must not take a kernel down with it
        return


class _KernelStream(io.TextIOBase):
    """Stands in for ``sys.stdout`` / ``sys.stderr``: kernel writes become records."""

    def __init__(self, name: str, original: TextIO, passthrough: TextIO | None) -> None:
        self.name = name
        self.original = original
        self.passthrough = passthrough
        self._partial: dict[tuple[str, int], str] = {}

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        who = _current.get()
        if who is None:
            return self.original.write(s)
        if self.passthrough is not None:
            with contextlib.suppress(Exception):
                self.passthrough.write(printable(s, lines=True))
        with _lock:
            text = self._partial.pop(who, "") + s
            *lines, rest = text.split("\n")
            if len(rest) > MAX_LINE:
                lines.append(rest)
                rest = ""
            if rest:
                self._partial[who] = rest
        for line in lines:
            emit(who[0], who[1], self.name, line)
        return len(s)

    def flush(self) -> None:
        with contextlib.suppress(Exception):
            self.original.flush()
        if self.passthrough is not None:
            with contextlib.suppress(Exception):
                self.passthrough.flush()

    def drain(self) -> None:
        """Emit what is left without a newline (at the end of the run)."""
        with _lock:
            partial, self._partial = self._partial, {}
        for (kernel_id, replica), line in partial.items():
            emit(kernel_id, replica, self.name, line)

    def isatty(self) -> bool:
        return self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


class _KernelLogHandler(logging.Handler):
    """Turns log records made inside a kernel into ``log`` records."""

    def emit(self, record: logging.LogRecord) -> None:
        who = _current.get()
        if who is None:
            return
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:
            return
        emit(who[0], who[1], "log", f"{record.name}: {text}", record.levelname)


def _kernel_warning(
    show: Callable[..., None],
) -> Callable[..., None]:
    """``warnings.showwarning`` that makes a kernel's never-awaited coroutine a ``warning``
    record (and tells the kernel's ``on_mistake``); other warnings are shown as before."""

    def showwarning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        who = _current.get()
        if who is None or not issubclass(category, RuntimeWarning):
            show(message, category, filename, lineno, file, line)
            return
        text = str(message)
        if "was never awaited" not in text:
            show(message, category, filename, lineno, file, line)
            return
        text = f"{filename}:{lineno}: {text}: add `await` before the call"
        emit(who[0], who[1], "warning", text, "WARNING")
        hook = _on_mistake.get()
        if hook is not None:
            with contextlib.suppress(Exception):
                hook(text)

    return showwarning


@contextlib.contextmanager
def capture(sink: Sink, *, echo: TextIO | None = None) -> Iterator[None]:
    """Route kernel output to ``sink`` for the duration of the block.

    ``echo``: also write the kernels' output there, control characters shown escaped (a
    foreground run in plain mode keeps showing what kernels print). The streams and
    handlers are restored on exit.
    """
    global _sink
    old_out, old_err = sys.stdout, sys.stderr
    out = _KernelStream("stdout", old_out, echo)
    err = _KernelStream("stderr", old_err, echo)
    handler = _KernelLogHandler(level=logging.INFO)
    root = logging.getLogger()
    old_level = root.level
    _sink = sink
    sys.stdout, sys.stderr = out, err
    old_show = warnings.showwarning
    warnings.showwarning = _kernel_warning(old_show)
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        # A kernel's logger.info(...) must reach the handler; records outside kernels
        # are filtered by the handler itself and by whatever else was configured.
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        out.drain()
        err.drain()
        root.removeHandler(handler)
        root.setLevel(old_level)
        warnings.showwarning = old_show
        sys.stdout, sys.stderr = old_out, old_err
        _sink = None


class KernelLog:
    """Appends records to a JSON-lines file, one record a line, flushed as written.

    Past ``max_bytes`` the file is renamed to ``PATH.1`` (replacing an older one) and a
    new one is started, so a chatty kernel cannot fill the disk. Each record carries
    ``seq``, its place in the run (1, 2, 3, ...), so a reader that follows the file knows
    when lines were rotated away before it could read them (``LogFollower``).
    """

    def __init__(self, path: Path, *, max_bytes: int = MAX_LOG_BYTES, fresh: bool = True) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        if fresh:
            for old in (path, _rotated(path)):
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
        self._seq = 0 if fresh else _last_seq(path)
        self._fh = self._open()
        self._size = self._fh.tell()

    def _open(self) -> TextIO:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, "a", encoding="utf-8", errors="replace")

    def __call__(self, record: OutputRecord) -> None:
        doc = record.as_dict()
        with self._lock:
            if self._fh.closed:
                return
            self._seq += 1
            doc["seq"] = self._seq
            line = json.dumps(doc, ensure_ascii=False) + "\n"
            if self._size + len(line) > self.max_bytes and self._size:
                self._fh.close()
                os.replace(self.path, _rotated(self.path))
                self._fh = self._open()
                self._size = 0
            self._fh.write(line)
            self._fh.flush()
            self._size += len(line)

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def _rotated(path: Path) -> Path:
    return path.with_name(path.name + ".1")


def _last_seq(path: Path) -> int:
    seqs = [r.get("seq") for r in read_records(path)]
    return max((s for s in seqs if isinstance(s, int)), default=0)


class LogFollower:
    """Reads a kernel log as ``tail -F`` does: every record once, in order, across
    rotations, and how many were rotated away before they could be read.

    It reads through one open file: the backlog (``PATH.1``, then ``PATH`` up to its
    end) and then whatever is appended to the same file, so nothing written between
    the two is missed. When ``PATH`` is a new file (rotated, or a new run began), it
    reads the rest of the old one first, then a file rotated in between (two rotations
    between two reads), then the new one. ``seq`` (``KernelLog``) says what is missing
    when the writer got more than a whole file ahead; records without it (a log of an
    older ringctl) are taken as they come.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: io.BufferedReader | None = None
        self._ino: int | None = None
        self._pending = b""
        self._last: int | None = None
        self.missed = 0  # records rotated away before they could be read

    def backlog(self) -> list[dict[str, Any]]:
        """Every record there now (``PATH.1``, then ``PATH``); following starts after them."""
        for _ in range(100):  # retried only if a rotation happens while it opens the files
            self.close()
            try:
                self._open(open(self.path, "rb"))  # noqa: SIM115  (kept open to follow)
            except FileNotFoundError:
                return []
            older: list[dict[str, Any]] = []
            try:
                with open(_rotated(self.path), "rb") as fh:
                    if os.fstat(fh.fileno()).st_ino == self._ino:
                        continue  # rotated just now: what was PATH is PATH.1
                    older = parse_lines(fh.read().decode("utf-8", "replace"))
            except FileNotFoundError:
                pass
            current = self._read()
            if older and current and _seq(current[0], 0) <= _seq(older[-1], -1):
                continue  # rotated twice meanwhile: PATH.1 is newer than what we hold
            return self._keep(older + current)
        return self._keep(self._read())

    def poll(self) -> list[dict[str, Any]]:
        """The records written since the last call (``missed`` counts those lost)."""
        if self._fh is None:
            return self.backlog()
        out = self._read()
        try:
            now = os.stat(self.path).st_ino
        except FileNotFoundError:
            return self._keep(out)  # between the rename and the new file: next time
        if now == self._ino:
            return self._keep(out)
        # PATH is another file: the one held is complete (the writer renames it only
        # after its last write), so read its rest, then what came after it.
        out += self._read()
        old = self._ino
        self._pending = b""  # a line cut short by a crash: never completed
        self._fh.close()
        try:
            newest = open(self.path, "rb")  # noqa: SIM115  (kept open to follow)
        except FileNotFoundError:
            self._fh = self._ino = None
            return self._keep(out)
        try:
            with open(_rotated(self.path), "rb") as fh:
                if os.fstat(fh.fileno()).st_ino not in (old, os.fstat(newest.fileno()).st_ino):
                    out += parse_lines(fh.read().decode("utf-8", "replace"))
        except FileNotFoundError:
            pass
        self._open(newest)
        out += self._read()
        return self._keep(out)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self._fh, self._ino, self._pending = None, None, b""

    def _open(self, fh: io.BufferedReader) -> None:
        self._fh, self._ino, self._pending = fh, os.fstat(fh.fileno()).st_ino, b""

    def _read(self) -> list[dict[str, Any]]:
        assert self._fh is not None
        chunk = self._fh.read()
        if not chunk:
            return []
        complete, _, self._pending = (self._pending + chunk).rpartition(b"\n")
        return parse_lines(complete.decode("utf-8", "replace"))

    def _keep(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop what was already read; count what is missing before each record."""
        out = []
        for record in records:
            seq = record.get("seq")
            if not isinstance(seq, int):
                out.append(record)
                continue
            if seq == 1 or self._last is None:
                self._last = seq - 1  # the first record read, or a new run began
            if seq <= self._last:
                continue
            self.missed += seq - self._last - 1
            self._last = seq
            out.append(record)
        return out


def _seq(record: dict[str, Any], default: int) -> int:
    seq = record.get("seq")
    return seq if isinstance(seq, int) else default


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record in ``path.1`` then ``path`` (a line cut short by a crash is skipped)."""
    out: list[dict[str, Any]] = []
    for part in (_rotated(path), path):
        try:
            text = part.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        out.extend(parse_lines(text))
    return out


def parse_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and "kernel" in doc and "text" in doc:
            out.append(doc)
    return out
