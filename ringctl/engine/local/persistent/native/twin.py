"""The CPU twin: the GPU loop's source built by the host C++ compiler, run through ctypes.

The translation unit is compiled once into a shared library in ``native/`` of ringctl's
cache directory, named by a hash of the source and the compiler command, and loaded with
ctypes; a foreign call releases the GIL, so the loop runs in parallel with Python like
the Numba loops do. ``$CXX`` names the compiler (default ``g++``, else ``c++``).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any, Final

from ringctl.engine.local.persistent.native.source import (
    NativeCompileError,
    first_error,
    source_key,
)

__all__ = ["compiler", "load_library"]

_FLAGS: Final = ("-std=c++17", "-O2", "-fPIC", "-shared", "-x", "c++")
_LOCK = threading.Lock()
_LOADED: dict[Path, ctypes.CDLL] = {}
#: The loop's C signature (see loop.h): pointers as addresses, words as int64.
_ARGTYPES: Final[list[Any]] = [
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
    ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
]  # fmt: skip


def compiler() -> str | None:
    """The host C++ compiler's path, or None when there is none."""
    for name in (os.environ.get("CXX"), "g++", "c++"):
        if name:
            path = shutil.which(name)
            if path is not None:
                return path
    return None


def _cache() -> Path:
    from ringctl.caches import private_cache

    return private_cache("native")


def load_library(text: str, timeout: float = 120.0) -> Any:
    """Build (or reuse) the library for ``text``; returns its ``ringctl_loop`` function."""
    cxx = compiler()
    if cxx is None:
        raise NativeCompileError(
            "no C++ compiler found (tried $CXX, g++, c++): C++ handlers on the CPU need "
            "one; install g++ or set CXX"
        )
    folder = _cache()
    lib = folder / f"ringctl_native_{source_key(text, cxx, *_FLAGS)}.so"
    with _LOCK:
        if lib not in _LOADED:
            if not lib.exists():
                _build(cxx, text, lib, timeout)
            _LOADED[lib] = ctypes.CDLL(str(lib))
        fn = _LOADED[lib].ringctl_loop
    fn.argtypes = _ARGTYPES
    fn.restype = None
    return fn


def _build(cxx: str, text: str, lib: Path, timeout: float) -> None:
    tmp = lib.with_suffix(f".{os.getpid()}.tmp")
    try:
        done = subprocess.run(
            [cxx, *_FLAGS, "-", "-o", str(tmp)],
            input=text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            out = (done.stderr or done.stdout).strip()
            raise NativeCompileError(f"{out}\n{first_error(out)}")
        tmp.replace(lib)  # atomic: two workers building at once both see a whole file
    except subprocess.TimeoutExpired as exc:
        raise NativeCompileError(f"the C++ compiler ran past {timeout:g}s") from exc
    finally:
        tmp.unlink(missing_ok=True)
