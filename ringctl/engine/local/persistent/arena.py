"""Shared memory for rings and control blocks: one file under ``/dev/shm`` per topology run.

The host builds the layout (``ArenaBuilder``), creates the file and keeps it for the whole
run; a worker process maps the same file by path. A killed and restarted worker maps it
again, so the rings, their records and their indices survive a force-stop. Plain
``mmap`` of a named file is used rather than ``multiprocessing.shared_memory`` because the
latter registers every attach with a resource tracker that unlinks the segment when a
worker exits, which is exactly what a restart must not do.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from ringctl.engine.local.persistent.layout import CACHE_LINE, CONTROL_WORDS, RING_HEADER_WORDS
from ringctl.engine.local.persistent.leftovers import arena_path

__all__ = ["Arena", "ArenaBuilder", "ArenaLayout", "RingLayout", "RingView"]

_ALIGN: Final = CACHE_LINE
MAX_RING_CAPACITY: Final = 1 << 24


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


@dataclass(frozen=True, slots=True)
class RingLayout:
    """One single-producer/single-consumer ring: a header and ``capacity`` records."""

    name: str
    dtype: np.dtype[Any]
    capacity: int
    header_offset: int
    records_offset: int


@dataclass(frozen=True, slots=True)
class ArenaLayout:
    """Everything a worker needs to map the arena: picklable, no open handles."""

    path: str
    size: int
    rings: dict[str, RingLayout]
    controls: dict[str, int]
    arrays: dict[str, tuple[int, int]]  # name -> (offset, float64 words)


@dataclass(slots=True)
class ArenaBuilder:
    """Collects rings and control blocks, then lays them out one cache line apart."""

    _rings: list[tuple[str, np.dtype[Any], int]] = field(default_factory=list)
    _controls: list[str] = field(default_factory=list)
    _arrays: list[tuple[str, int]] = field(default_factory=list)

    def ring(self, name: str, dtype: np.dtype[Any], capacity: int) -> None:
        if capacity < 2 or capacity & (capacity - 1) or capacity > MAX_RING_CAPACITY:
            raise ValueError(
                f"ring {name!r}: capacity must be a power of two between 2 and "
                f"{MAX_RING_CAPACITY}, got {capacity}"
            )
        if dtype.itemsize == 0:
            raise ValueError(f"ring {name!r}: records of size 0")
        if any(n == name for n, _, _ in self._rings):
            raise ValueError(f"ring {name!r} declared twice")
        self._rings.append((name, np.dtype(dtype), capacity))

    def control(self, name: str) -> None:
        if name in self._controls:
            raise ValueError(f"control block {name!r} declared twice")
        self._controls.append(name)

    def array(self, name: str, words: int) -> None:
        """A float64 array that outlives a worker (a kernel's state)."""
        if words < 1:
            raise ValueError(f"array {name!r}: needs at least one word, got {words}")
        if any(n == name for n, _ in self._arrays):
            raise ValueError(f"array {name!r} declared twice")
        self._arrays.append((name, words))

    def create(self, group: str = "arena") -> Arena:
        """Make the file (``leftovers.arena_path``: a dead owner's file is reclaimed)."""
        offset = 0
        controls: dict[str, int] = {}
        for name in self._controls:
            controls[name] = offset
            offset = _align(offset + CONTROL_WORDS * 8)
        arrays: dict[str, tuple[int, int]] = {}
        for name, words in self._arrays:
            arrays[name] = (offset, words)
            offset = _align(offset + words * 8)
        rings: dict[str, RingLayout] = {}
        for name, dtype, capacity in self._rings:
            header = offset
            records = _align(header + RING_HEADER_WORDS * 8)
            rings[name] = RingLayout(name, dtype, capacity, header, records)
            offset = _align(records + capacity * dtype.itemsize)
        size = max(offset, _ALIGN)
        path = arena_path(group)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)  # zero-filled: every index and command starts at 0
            # Reserve the pages now: a full /dev/shm then fails here, with ENOSPC, rather
            # than with SIGBUS (a dead process) on the first write to a record.
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, size)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        else:
            os.close(fd)
        layout = ArenaLayout(str(path), size, rings, controls, arrays)
        return Arena(layout, owner=True)


def _unlink(path: str) -> None:
    Path(path).unlink(missing_ok=True)


class RingView:
    """NumPy views of one ring: ``header`` (int64 words) and ``records`` (structured)."""

    __slots__ = ("capacity", "header", "layout", "records")

    def __init__(self, layout: RingLayout, buf: mmap.mmap) -> None:
        self.layout = layout
        self.capacity = layout.capacity
        self.header: np.ndarray[Any, np.dtype[np.int64]] = np.frombuffer(
            buf, np.int64, RING_HEADER_WORDS, layout.header_offset
        )
        self.records: np.ndarray[Any, np.dtype[Any]] = np.frombuffer(
            buf, layout.dtype, layout.capacity, layout.records_offset
        )


class Arena:
    """A mapped arena. The owner (the host) unlinks the file on ``close``; workers only unmap."""

    def __init__(self, layout: ArenaLayout, *, owner: bool = False) -> None:
        self.layout = layout
        self._owner = owner
        fd = os.open(layout.path, os.O_RDWR)
        try:
            self._map: mmap.mmap | None = mmap.mmap(fd, layout.size)
        finally:
            os.close(fd)
        self.rings = {name: RingView(rl, self._map) for name, rl in layout.rings.items()}
        self.controls: dict[str, np.ndarray[Any, np.dtype[np.int64]]] = {
            name: np.frombuffer(self._map, np.int64, CONTROL_WORDS, off)
            for name, off in layout.controls.items()
        }
        # The owner's file goes when the arena is collected or the interpreter exits,
        # even if close() is never called (an exception on the way, a script that ends).
        self._finalizer = weakref.finalize(self, _unlink, layout.path) if owner else None
        self.arrays: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = {
            name: np.frombuffer(self._map, np.float64, words, off)
            for name, (off, words) in layout.arrays.items()
        }

    def close(self) -> None:
        """Drop the views and unmap; the owner also removes the file. Idempotent."""
        if self._map is None:
            return
        self.rings = {}
        self.controls = {}
        self.arrays = {}
        m, self._map = self._map, None
        # A caller may still hold a view; the mapping then goes when the last one does.
        with contextlib.suppress(BufferError):
            m.close()
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> Arena:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
