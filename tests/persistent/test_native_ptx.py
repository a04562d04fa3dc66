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

from ringctl.engine.local.persistent.native.runner import read_source
from ringctl.engine.local.persistent.native.source import translation_unit
from ringctl.kernel.persistent import PersistentKernel

from . import native_handlers as nh

ARCH = "sm_90"


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found is None and Path("/usr/local/cuda/bin/nvcc").exists():
        found = "/usr/local/cuda/bin/nvcc"
    return found


def _nvrtc_ptx(text: str) -> str | None:
    try:
        from cupy.cuda import compiler
    except ImportError:
        return None
    return str(compiler.compile_using_nvrtc(text, options=("-std=c++17", f"-arch={ARCH}")))


def ptx_of(kernel: PersistentKernel, tmp_path: Path) -> str:
    assert kernel.native is not None
    text = translation_unit(kernel, kernel.native, read_source(kernel))
    nvcc = _nvcc()
    if nvcc is not None:
        src, out = tmp_path / "loop.cu", tmp_path / "loop.ptx"
        src.write_text(text)
        done = subprocess.run(
            [nvcc, "-std=c++17", f"-arch={ARCH}", "-ptx", str(src), "-o", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return out.read_text()
    ptx = _nvrtc_ptx(text)
    if ptx is None:
        pytest.skip("neither nvcc nor CuPy's NVRTC is installed")
    return ptx


@pytest.mark.parametrize("kernel", [nh.double, nh.total], ids=["map", "sink"])
def test_the_gpu_loop_reads_with_acquire_and_publishes_with_release(
    kernel: PersistentKernel, tmp_path: Path
) -> None:
    ptx = ptx_of(kernel, tmp_path)
    assert ".entry ringctl_loop" in ptx
    loads = ptx.count("ld.acquire.sys")
    stores = ptx.count("st.release.sys")
    # map: CMD, HEAD, TAIL, CONSUMER_GONE, RING_CLOSED, ... ; sink: CMD and HEAD at least
    assert loads >= (5 if kernel.output is not None else 2), ptx
    assert stores >= (6 if kernel.output is not None else 4), ptx
    assert "nanosleep" in ptx  # an idle loop naps rather than spinning the SM


def test_the_gpu_loop_assembles_for_sm_90(tmp_path: Path) -> None:
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    kernel = nh.double
    assert kernel.native is not None
    src = tmp_path / "loop.cu"
    src.write_text(translation_unit(kernel, kernel.native, read_source(kernel)))
    done = subprocess.run(
        [nvcc, "-std=c++17", f"-arch={ARCH}", "-cubin", str(src), "-o", str(tmp_path / "l.cubin")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # ptxas accepts the acquire/release forms


def test_a_handler_error_from_nvcc_names_the_users_file_and_line(tmp_path: Path) -> None:
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    kernel = nh.broken
    assert kernel.native is not None
    src = tmp_path / "loop.cu"
    src.write_text(translation_unit(kernel, kernel.native, read_source(kernel)))
    done = subprocess.run(
        [nvcc, "-std=c++17", f"-arch={ARCH}", "-ptx", str(src), "-o", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert f"{kernel.native.source}(4): error" in done.stdout + done.stderr
