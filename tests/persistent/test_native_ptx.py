"""The GPU loop compiles for a current GPU without one, with acquire loads and release stores.

nvcc (on PATH or under /usr/local/cuda) or NVRTC (through CuPy) builds the translation
unit for ``sm_90``; the PTX must read every shared word with ``ld.acquire.sys`` and
publish with ``st.release.sys``: a plain load in a polling loop is hoisted out of it, and
a fence alone gives a weak load. Skipped when neither compiler is present.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kernels.native_records import zscore
from ringctl.engine.local.persistent.native.runner import read_source
from ringctl.engine.local.persistent.native.source import first_error, translation_unit
from ringctl.kernel.persistent import PersistentKernel

from . import native_handlers as nh

ARCH = "sm_90"


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found is None and Path("/usr/local/cuda/bin/nvcc").exists():
        found = "/usr/local/cuda/bin/nvcc"
    return found


def _nvrtc(text: str) -> tuple[bool, str] | None:
    """``(compiled, PTX or log)`` from NVRTC (CuPy's bindings need no GPU); None without it."""
    try:
        from cupy.cuda import nvrtc

        prog = nvrtc.createProgram(text, "loop.cu", (), ())
    except Exception:  # CuPy or its NVRTC library missing
        return None
    try:
        nvrtc.compileProgram(prog, ("-std=c++17", f"-arch=compute_{ARCH[3:]}"))
        return True, bytes(nvrtc.getPTX(prog)).decode()
    except nvrtc.NVRTCError:
        return False, str(nvrtc.getProgramLog(prog))
    finally:
        nvrtc.destroyProgram(prog)


def _nvcc_run(text: str, tmp_path: Path, what: str) -> tuple[bool, str] | None:
    nvcc = _nvcc()
    if nvcc is None:
        return None
    src, out = tmp_path / "loop.cu", tmp_path / f"loop.{what}"
    src.write_text(text)
    done = subprocess.run(
        [nvcc, "-std=c++17", f"-arch={ARCH}", f"-{what}", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        return False, done.stdout + done.stderr
    return True, out.read_text() if what == "ptx" else ""


def compile_with(compiler: str, kernel: PersistentKernel, tmp_path: Path) -> tuple[bool, str]:
    assert kernel.native is not None
    text = translation_unit(kernel, kernel.native, read_source(kernel))
    got = _nvrtc(text) if compiler == "nvrtc" else _nvcc_run(text, tmp_path, "ptx")
    if got is None:
        pytest.skip(f"{compiler} is not installed")
    return got


COMPILERS = ["nvcc", "nvrtc"]


@pytest.mark.parametrize("compiler", COMPILERS)
@pytest.mark.parametrize("kernel", [nh.double, nh.total, zscore], ids=["map", "sink", "example"])
def test_the_gpu_loop_reads_with_acquire_and_publishes_with_release(
    compiler: str, kernel: PersistentKernel, tmp_path: Path
) -> None:
    ok, ptx = compile_with(compiler, kernel, tmp_path)
    assert ok, ptx
    assert ".entry ringctl_loop" in ptx
    loads = ptx.count("ld.acquire.sys")
    releases = ptx.count("st.release.sys")
    # map: CMD, HEAD, TAIL, CONSUMER_GONE, RING_CLOSED acquired; ACK, HEAD, TAIL,
    # RING_CLOSED, TERMINATED released. sink: CMD, HEAD; ACK, TAIL, TERMINATED.
    assert loads >= (5 if kernel.output is not None else 2), ptx
    assert releases >= (5 if kernel.output is not None else 3), ptx
    assert "st.relaxed.sys" in ptx  # counters and heartbeat: strong, without a fence each
    assert "nanosleep" in ptx  # an idle loop naps rather than spinning the SM


def test_the_gpu_loop_assembles_for_sm_90(tmp_path: Path) -> None:
    kernel = nh.double
    assert kernel.native is not None
    got = _nvcc_run(translation_unit(kernel, kernel.native, read_source(kernel)), tmp_path, "cubin")
    if got is None:
        pytest.skip("nvcc is not installed")
    assert got[0], got[1]  # ptxas accepts the acquire/release forms


@pytest.mark.parametrize("compiler", COMPILERS)
def test_a_handler_error_names_the_users_file_and_line(compiler: str, tmp_path: Path) -> None:
    ok, log = compile_with(compiler, nh.broken, tmp_path)
    assert not ok
    assert nh.broken.native is not None
    assert f"{nh.broken.native.source}(4): error" in log
    assert first_error(log).startswith(f"{nh.broken.native.source}(4): error")
