"""``@persistent_kernel``: declare a compiled handler and the records it reads and writes.

The declaration is plain Python and imports no Numba, so ``ringctl validate --import``
can check a topology (records of connected kernels must match) without compiling
anything. The handler is compiled when a worker launches the kernel.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

__all__ = [
    "DEFAULT_RING_BYTES",
    "LoopOptions",
    "NativeHandler",
    "PersistentKernel",
    "StateInit",
    "persistent_kernel",
]

#: A ring's default size: as many records as fit in this many bytes (a power of two).
#: Big rings let the loops work in long stretches and nap in between, instead of
#: waking for every few records.
DEFAULT_RING_BYTES: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class LoopOptions:
    """How a loop waits when it has nothing to do, and how many records it takes at once."""

    #: Microseconds a loop that ran out of records spins (CPU pause hint) before napping;
    #: it spins only while the worker has a core to spare (cores - 1 loops at a time).
    spin_us: int = 20
    #: Microseconds slept on the first empty pass once the spin is over; each further
    #: empty pass sleeps twice as long, up to 16 x ``nap_us`` but not past 1 ms (or
    #: ``nap_us`` if longer). A record brings the nap back to ``nap_us``.
    nap_us: int = 50
    #: Most records handled before the outputs and freed slots are published.
    batch: int = 256

    def __post_init__(self) -> None:
        if self.spin_us < 0 or self.nap_us < 0 or self.batch < 1:
            raise ValueError(f"bad loop options: {self}")


@dataclass(frozen=True, slots=True)
class NativeHandler:
    """Where a C++ handler is (``native_kernel``): its source file (absolute) and the
    function's name."""

    source: Path
    function: str


#: Builds a kernel's state array (float64) from the topology's ``params``.
StateInit = Callable[[Mapping[str, Any]], "np.ndarray[Any, np.dtype[np.float64]]"]


@dataclass(frozen=True, eq=False)
class PersistentKernel:
    """A handler plus its record types.

    ``output`` is ``None`` for a sink: the handler is then ``handler(record, state)``;
    otherwise ``handler(record, out, state)`` fills ``out`` and returns 1 to emit it,
    0 to emit nothing, or a negative number to count the record as an error.
    """

    handler: Callable[..., int]
    kernel_id: str
    input: np.dtype[Any]
    output: np.dtype[Any] | None = None
    state: int = 0
    init: StateInit | None = None
    doc: str = field(default="")
    #: A C++ handler (``native_kernel``) in place of ``handler``.
    native: NativeHandler | None = None

    @property
    def qualified_name(self) -> str:
        if self.native is not None:
            return f"{self.native.source.name}:{self.native.function}"
        return f"{self.handler.__module__}:{self.handler.__qualname__}"

    @property
    def is_sink(self) -> bool:
        return self.output is None

    @property
    def default_ring(self) -> int:
        """Records per ring when none is given: the most, a power of two, that fit in
        ``DEFAULT_RING_BYTES`` for the larger of the kernel's record types."""
        size = max(self.input.itemsize, 0 if self.output is None else self.output.itemsize, 1)
        return 1 << max((DEFAULT_RING_BYTES // size).bit_length() - 1, 4)

    def initial_state(self, params: Mapping[str, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The state array a fresh launch starts from."""
        if self.init is not None:
            arr = np.ascontiguousarray(self.init(params), dtype=np.float64)
            if arr.ndim != 1:
                raise ValueError(f"{self.kernel_id}: init must return a 1-D array")
            return arr
        return np.zeros(max(self.state, 1), dtype=np.float64)


def _record_dtype(value: Any, what: str) -> np.dtype[Any]:
    dtype: np.dtype[Any] = np.dtype(value)
    if dtype.fields is None:
        raise TypeError(f"{what} must be a NumPy structured dtype (named fields), got {dtype}")
    if dtype.hasobject:
        raise TypeError(f"{what} cannot hold Python objects: {dtype}")
    return dtype


def persistent_kernel(
    *,
    input: Any,
    output: Any = None,
    state: int = 0,
    init: StateInit | None = None,
    kernel_id: str | None = None,
) -> Callable[[Callable[..., int]], PersistentKernel]:
    """Declare ``handler`` as a persistent kernel reading ``input`` records.

    Remember it as "records in, records out, no Python in between": the handler is
    compiled with Numba (``nopython``, ``nogil``) and called once per record by a loop
    that lives for the whole run.
    """
    in_dtype = _record_dtype(input, "input")
    out_dtype = None if output is None else _record_dtype(output, "output")
    if state < 0:
        raise ValueError(f"state must be >= 0 float64 words, got {state}")

    def decorate(func: Callable[..., int]) -> PersistentKernel:
        if inspect.iscoroutinefunction(func) or not callable(func):
            raise TypeError(f"@persistent_kernel needs a plain 'def' function, got {func!r}")
        want = 2 if out_dtype is None else 3
        n_args = len(inspect.signature(func).parameters)
        if n_args != want:
            shape = "(record, state)" if out_dtype is None else "(record, out, state)"
            raise TypeError(
                f"{func.__qualname__} takes {n_args} arguments; a "
                f"{'sink' if out_dtype is None else 'map'} handler is f{shape}"
            )
        return PersistentKernel(
            handler=func,
            kernel_id=kernel_id or func.__name__,
            input=in_dtype,
            output=out_dtype,
            state=state,
            init=init,
            doc=inspect.getdoc(func) or "",
        )

    return decorate
