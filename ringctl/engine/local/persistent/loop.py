"""The compiled loop of a persistent kernel: poll the input ring, call the handler, publish.

One loop runs per kernel, on its own thread, without the GIL, for the whole run; it never
returns to Python per record. Per pass it bumps the heartbeat, reads the command with an
acquire load and echoes it in ``ACK`` (so once the host sees ``ACK == PAUSED`` no record
is handled until it writes ``ACTIVE`` again). Records are handled in batches: the outputs
and the freed input slots of a batch are published together, after the batch, with one
release store each, so a worker killed mid-batch leaves the rings as they were before it.
When there is nothing to do the loop spins for at most ``spin_us`` microseconds (by the
clock, with the CPU's pause hint), then naps until work comes: ``nap_us`` microseconds
first, twice as long each empty pass after that, up to 16 x ``nap_us`` but not past
1 ms (``longest_nap``; ``nap_us`` if that is longer). The short spin keeps the round trip
low while records flow, the nap gives the core back to the loops and the host that have
work, and the growing nap keeps a loop that stays idle from waking thousands of times a
second. A loop spins only while it holds one of the worker's spin slots (``SPIN_LIMIT``:
the cores it may use, less one), so loops never spin on cores their producers need.

Two shapes: a map (``handler(record, out_slot, state) -> int``, 1 emits ``out_slot``,
0 emits nothing, negative counts an error) and a sink (``handler(record, state) -> int``).

Why the loops are generated source: Numba's on-disk cache cannot key a function on a
jitted function it closes over or takes as an argument (their pickles carry a fresh id in
every process), so each handler gets a tiny generated module, named by a hash of the
loop's and the handler's source, whose loop calls the handler as a module global. That
module and its Numba cache live in ``loops/`` of ringctl's cache directory
(``ringctl.caches``); deleting the folder forces a recompile.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import numba

__all__ = ["cache_dir", "compile_handler", "handler_for", "loops_for"]

_LOOP_SOURCE: Final = """
from typing import Any

import numba
import numpy as np

from ringctl.engine.local.persistent.atomics import (
    cpu_relax, fetch_add, load_acquire, now_ns, sleep_us, store_release, yield_cpu,
)
from ringctl.engine.local.persistent.layout import (
    ACK, CMD, CONSUMER_GONE, DISCARDED, ERRORS, HEAD, HEARTBEAT, IN, OUT, POS, RING_CLOSED,
    SPIN_LIMIT, SPINNING, STOP_TERMINATED, TAIL, TERMINATED, Command,
)

_ACTIVE = int(Command.ACTIVE)
_TERM = int(Command.TERM)


@numba.njit(cache=True, nogil=True)
def start_spin(spinners: Any, spin_ns: int) -> int:
    # Take a spin slot if one is free: the time to stop spinning, or 0 (nap at once).
    if spin_ns <= 0:
        return 0
    if fetch_add(spinners, SPINNING, 1) < load_acquire(spinners, SPIN_LIMIT):
        return now_ns() + spin_ns
    fetch_add(spinners, SPINNING, -1)
    return 0


@numba.njit(cache=True, nogil=True)
def spin(spinners: Any, idle: int, spin_until: int) -> int:
    # One pass with nothing to do while holding a spin slot: spin until spin_until.
    # Returns the new spin_until (0 once the slot is given back).
    if (idle & 15) != 0:
        cpu_relax()
        return spin_until
    if now_ns() < spin_until:
        yield_cpu()  # a thread queued for this core (the producer, the host) goes first
        return spin_until
    fetch_add(spinners, SPINNING, -1)
    return 0


@numba.njit(cache=True, nogil=True)
def longest_nap(nap_us: int) -> int:
    # Naps double while a loop stays idle: up to 16 x nap_us, not past 1 ms (unless
    # nap_us itself is longer), so an idle loop wakes about once a millisecond.
    return max(nap_us, min(16 * nap_us, 1000))


@numba.njit(cache=True, nogil=True)
def nap(us: int, most: int) -> int:
    # One pass with nothing to do, no spin: sleep; returns the next pass's nap.
    sleep_us(us)
    return min(2 * us, most)


@numba.njit(cache=True, nogil=True)
def stop_spin(spinners: Any, spin_until: int) -> int:
    if spin_until > 0:
        fetch_add(spinners, SPINNING, -1)
    return 0


@numba.njit(cache=True, nogil=True)
def map_loop(
    ctrl: Any,
    in_hdr: Any,
    in_recs: Any,
    out_hdr: Any,
    out_recs: Any,
    state: Any,
    spin_ns: int,
    nap_us: int,
    batch: int,
    spinners: Any,
) -> None:
    in_mask = in_recs.shape[0] - 1
    out_cap = out_recs.shape[0]
    out_mask = out_cap - 1
    scratch = np.empty_like(out_recs[:1])  # where outputs go while the consumer is gone
    beat = ctrl[HEARTBEAT]
    n_in = ctrl[IN]
    n_out = ctrl[OUT]
    n_err = ctrl[ERRORS]
    ack = -1
    idle = 0  # passes since the last record
    spin_until = 0  # while > 0 the loop holds a spin slot
    most = longest_nap(nap_us)
    sleep = nap_us  # the next nap, microseconds
    closed = False
    while True:
        beat += 1
        store_release(ctrl, HEARTBEAT, beat)
        cmd = load_acquire(ctrl, CMD)
        if cmd != ack:
            ack = cmd
            store_release(ctrl, ACK, cmd)
        if cmd == _TERM:
            stop_spin(spinners, spin_until)
            break
        if cmd == _ACTIVE:
            tail = in_hdr[TAIL]
            head = load_acquire(in_hdr, HEAD)
            if load_acquire(out_hdr, CONSUMER_GONE) != 0:
                # Nothing will read the output ring: handle the input anyway (so this
                # kernel drains and stops on time) and count what it would have sent.
                n = min(head - tail, batch)
                if n > 0:
                    spin_until = stop_spin(spinners, spin_until)
                    gone = 0
                    for k in range(n):
                        store_release(ctrl, POS, tail + k + 1)
                        r = handler(in_recs[(tail + k) & in_mask], scratch[0], state)
                        if r > 0:
                            gone += 1
                        elif r < 0:
                            n_err += 1
                    n_out += gone
                    n_in += n
                    store_release(ctrl, IN, n_in)
                    store_release(ctrl, OUT, n_out)
                    store_release(ctrl, ERRORS, n_err)
                    store_release(out_hdr, DISCARDED, out_hdr[DISCARDED] + gone)
                    store_release(in_hdr, TAIL, tail + n)
                    idle = 0
                    continue
            out_head = out_hdr[HEAD]
            free = out_cap - (out_head - load_acquire(out_hdr, TAIL))
            n = min(head - tail, free, batch)
            if n > 0:
                spin_until = stop_spin(spinners, spin_until)
                for k in range(n):
                    store_release(ctrl, POS, tail + k + 1)
                    r = handler(in_recs[(tail + k) & in_mask], out_recs[out_head & out_mask], state)
                    if r > 0:
                        out_head += 1
                    elif r < 0:
                        n_err += 1
                n_out += out_head - out_hdr[HEAD]
                n_in += n
                # Counters first, then the outputs, then the freed slots: whoever sees
                # the input ring empty also sees the outputs and the counts.
                store_release(ctrl, IN, n_in)
                store_release(ctrl, OUT, n_out)
                store_release(ctrl, ERRORS, n_err)
                store_release(out_hdr, HEAD, out_head)
                store_release(in_hdr, TAIL, tail + n)
                idle = 0
                continue
            if (
                not closed
                and head == tail
                and load_acquire(in_hdr, RING_CLOSED) != 0
                and load_acquire(in_hdr, HEAD) == tail
            ):
                # End of stream passes downstream once everything before it has.
                store_release(out_hdr, RING_CLOSED, 1)
                closed = True
        idle += 1
        if idle == 1:
            spin_until = start_spin(spinners, spin_ns)
            sleep = nap_us
        if spin_until > 0:
            spin_until = spin(spinners, idle, spin_until)
        else:
            sleep = nap(sleep, most)
    store_release(ctrl, TERMINATED, STOP_TERMINATED)



@numba.njit(cache=True, nogil=True)
def sink_loop(
    ctrl: Any,
    in_hdr: Any,
    in_recs: Any,
    state: Any,
    spin_ns: int,
    nap_us: int,
    batch: int,
    spinners: Any,
) -> None:
    in_mask = in_recs.shape[0] - 1
    beat = ctrl[HEARTBEAT]
    n_in = ctrl[IN]
    n_err = ctrl[ERRORS]
    ack = -1
    idle = 0  # passes since the last record
    spin_until = 0  # while > 0 the loop holds a spin slot
    most = longest_nap(nap_us)
    sleep = nap_us  # the next nap, microseconds
    while True:
        beat += 1
        store_release(ctrl, HEARTBEAT, beat)
        cmd = load_acquire(ctrl, CMD)
        if cmd != ack:
            ack = cmd
            store_release(ctrl, ACK, cmd)
        if cmd == _TERM:
            stop_spin(spinners, spin_until)
            break
        if cmd == _ACTIVE:
            tail = in_hdr[TAIL]
            n = min(load_acquire(in_hdr, HEAD) - tail, batch)
            if n > 0:
                spin_until = stop_spin(spinners, spin_until)
                for k in range(n):
                    store_release(ctrl, POS, tail + k + 1)
                    if handler(in_recs[(tail + k) & in_mask], state) < 0:
                        n_err += 1
                n_in += n
                store_release(ctrl, IN, n_in)
                store_release(ctrl, ERRORS, n_err)
                store_release(in_hdr, TAIL, tail + n)
                idle = 0
                continue
        idle += 1
        if idle == 1:
            spin_until = start_spin(spinners, spin_ns)
            sleep = nap_us
        if spin_until > 0:
            spin_until = spin(spinners, idle, spin_until)
        else:
            sleep = nap(sleep, most)
    store_release(ctrl, TERMINATED, STOP_TERMINATED)

"""

_HANDLERS: dict[str, Any] = {}
_LOCK = threading.Lock()


@functools.cache
def compile_handler(func: Callable[..., Any]) -> Any:
    """The handler as a Numba function (cached on disk next to its module)."""
    return numba.njit(cache=True, nogil=True)(func)


def handler_for(key: str) -> Any:
    """Called by a generated module to fetch its handler."""
    return _HANDLERS[key]


def cache_dir() -> Path:
    """Where generated loop modules and their compiled code are kept (created, checked)."""
    from ringctl.caches import loops_dir

    return loops_dir()


def _is_ours(path: Path, text: str) -> bool:
    """Whether ``path`` holds exactly ``text`` and this user wrote it: the module is run,
    so a file someone else put in a shared cache folder is written anew, never imported."""
    try:
        with path.open("rb") as fh:
            return os.fstat(fh.fileno()).st_uid == os.geteuid() and fh.read() == text.encode()
    except OSError:
        return False


def _handler_identity(func: Callable[..., Any]) -> str:
    try:
        text = inspect.getsource(func)
    except (OSError, TypeError):
        code = func.__code__
        text = code.co_code.hex() + repr(code.co_consts)
    return f"{func.__module__}:{func.__qualname__}\n{text}"


@functools.cache
def loops_for(func: Callable[..., Any]) -> ModuleType:
    """The generated module holding ``map_loop`` and ``sink_loop`` for ``func``."""
    key = hashlib.sha256((_LOOP_SOURCE + _handler_identity(func)).encode()).hexdigest()[:24]
    name = f"ringctl_loop_{key}"
    with _LOCK:
        _HANDLERS[key] = compile_handler(func)
        folder = cache_dir()
        path = folder / f"{name}.py"
        text = (
            f"# Generated by ringctl for {func.__module__}:{func.__qualname__}; "
            "safe to delete.\n"
            "from ringctl.engine.local.persistent.loop import handler_for\n"
            f"handler = handler_for({key!r})\n" + _LOOP_SOURCE
        )
        if not _is_ours(path, text):  # missing, damaged, or not written by this user
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text)
            tmp.replace(path)  # atomic: two workers compiling at once both see a whole file
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:  # pragma: no cover - a .py path always loads
            raise ImportError(f"cannot load generated loop {path}")
        module = importlib.util.module_from_spec(spec)
        # Numba's cache re-imports the module by name when it loads compiled code.
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
