"""Acquire loads, release stores and a spin hint for compiled loops (Numba intrinsics).

A ring is only correct if the consumer sees a record's bytes before it sees the index
that publishes it, and if the compiler cannot hoist a poll out of a loop. Plain NumPy
indexing in an ``@njit`` loop promises neither, so every shared index and control word is
read with ``load_acquire`` and written with ``store_release``: LLVM atomic instructions
(``load atomic ... acquire`` / ``store atomic ... release``) emitted through llvmlite.
On x86-64 they compile to plain moves (the hardware is already that strong) but still
stop the compiler from reordering or caching them; on AArch64 they become ``ldar`` /
``stlr``. Importing this module imports Numba: only the persistent runtime does.
"""

from __future__ import annotations

import platform
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils as _cgutils
from numba.core.extending import intrinsic

# Numba's helpers are untyped; they are used only inside code generators.
cgutils: Any = _cgutils

__all__ = [
    "cpu_relax",
    "fetch_add",
    "load_acquire",
    "now_ns",
    "sleep_us",
    "store_release",
    "yield_cpu",
]

_WORD = 8  # every shared word is an aligned int64


def _word_pointer(context: Any, builder: Any, arrty: Any, array: Any, idxty: Any, idx: Any) -> Any:
    ary = context.make_array(arrty)(context, builder, array)
    index = context.cast(builder, idx, idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [index], wraparound=False)


def _int64_array(arr: Any) -> bool:
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1


def _load_acquire(typingctx: Any, arr: Any, idx: Any) -> Any:
    """``arr[idx]`` as an acquire load: later reads cannot move before it."""
    if not (_int64_array(arr) and isinstance(idx, types.Integer)):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        arrty, idxty = signature.args
        ptr = _word_pointer(context, builder, arrty, args[0], idxty, args[1])
        return builder.load_atomic(ptr, "acquire", _WORD)

    return types.int64(arr, idx), codegen


load_acquire: Any = intrinsic(_load_acquire)


def _store_release(typingctx: Any, arr: Any, idx: Any, value: Any) -> Any:
    """``arr[idx] = value`` as a release store: earlier writes cannot move after it."""
    if not (_int64_array(arr) and isinstance(idx, types.Integer)):
        return None
    if not isinstance(value, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        arrty, idxty, valty = signature.args
        ptr = _word_pointer(context, builder, arrty, args[0], idxty, args[1])
        val = context.cast(builder, args[2], valty, types.int64)
        builder.store_atomic(val, ptr, "release", _WORD)
        return context.get_dummy_value()

    return types.void(arr, idx, value), codegen


store_release: Any = intrinsic(_store_release)


def _relax_intrinsic() -> tuple[str, list[int]] | None:
    # LLVM intrinsics rather than inline asm: Numba's JIT has no assembler parser.
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i686", "i386"):
        return "llvm.x86.sse2.pause", []
    if machine in ("aarch64", "arm64"):
        return "llvm.aarch64.hint", [1]  # 1 = YIELD
    return None


_RELAX = _relax_intrinsic()


def _cpu_relax(typingctx: Any) -> Any:
    """The CPU's spin-wait hint (``pause`` on x86-64, ``yield`` on AArch64; else nothing)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        if _RELAX is not None:
            name, consts = _RELAX
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i32] * len(consts))
            fn = cgutils.get_or_insert_function(builder.module, fnty, name)
            builder.call(fn, [ir.Constant(i32, c) for c in consts])
        return context.get_dummy_value()

    return types.void(), codegen


cpu_relax: Any = intrinsic(_cpu_relax)


def _sleep_us(typingctx: Any, micros: Any) -> Any:
    """libc ``usleep``: called by name (resolved when the JIT links), so caching still works."""
    if not isinstance(micros, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        (mty,) = signature.args
        fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(32)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "usleep")
        arg = context.cast(builder, args[0], mty, types.int32)
        builder.call(fn, [arg])
        return context.get_dummy_value()

    return types.void(micros), codegen


sleep_us: Any = intrinsic(_sleep_us)


def _fetch_add(typingctx: Any, arr: Any, idx: Any, value: Any) -> Any:
    """``arr[idx] += value`` as one atomic read-modify-write; returns the old value."""
    if not (_int64_array(arr) and isinstance(idx, types.Integer)):
        return None
    if not isinstance(value, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        arrty, idxty, valty = signature.args
        ptr = _word_pointer(context, builder, arrty, args[0], idxty, args[1])
        val = context.cast(builder, args[2], valty, types.int64)
        return builder.atomic_rmw("add", ptr, val, "seq_cst")

    return types.int64(arr, idx, value), codegen


fetch_add: Any = intrinsic(_fetch_add)

_CLOCK_MONOTONIC = 1  # Linux


def _now_ns(typingctx: Any) -> Any:
    """libc ``clock_gettime(CLOCK_MONOTONIC)`` in nanoseconds (a vDSO call, no syscall)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        i32, i64 = ir.IntType(32), ir.IntType(64)
        timespec = ir.LiteralStructType([i64, i64])
        fnty = ir.FunctionType(i32, [i32, timespec.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        ts = cgutils.alloca_once(builder, timespec)
        builder.call(fn, [ir.Constant(i32, _CLOCK_MONOTONIC), ts])
        zero = ir.Constant(i32, 0)
        sec = builder.load(builder.gep(ts, [zero, zero]))
        nsec = builder.load(builder.gep(ts, [zero, ir.Constant(i32, 1)]))
        return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)

    return types.int64(), codegen


now_ns: Any = intrinsic(_now_ns)


def _yield_cpu(typingctx: Any) -> Any:
    """libc ``sched_yield``: let a thread waiting for this core run first (a spinning loop
    must not hold the core its producer is queued on)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        fnty = ir.FunctionType(ir.IntType(32), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


yield_cpu: Any = intrinsic(_yield_cpu)
