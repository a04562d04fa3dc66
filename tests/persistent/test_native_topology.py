"""C++ persistent kernels as a user meets them: a topology through the CLI, declaration errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import Ringctl, ringctl_for

from ringctl.engine.local.persistent.native.twin import compiler
from ringctl.persistent import native_kernel

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "tests" / "persistent" / "native-records.yaml"
needs_cxx = pytest.mark.skipif(compiler() is None, reason="no C++ compiler (g++, c++, $CXX)")


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


@needs_cxx
def test_a_topology_with_a_cxx_kernel_passes_its_smoke(ringctl: Ringctl) -> None:
    result = ringctl("smoke", TOPOLOGY, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout and "16/16" in result.stdout  # zscore.cu computed right


@needs_cxx
def test_a_cxx_compile_error_stops_up_at_the_users_line(tmp_path: Path, ringctl: Ringctl) -> None:
    (tmp_path / "bad.cu").write_text(
        "RINGCTL_DEVICE int bad(const In& rec, Out& out, double* state) {\n"
        "  out.seq = rec.seq;\n"
        "  return undeclared_thing;\n"
        "}\n"
    )
    (tmp_path / "badmod.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from ringctl.persistent import native_kernel
            R = np.dtype([("seq", np.int64), ("value", np.float64)])
            bad = native_kernel(source="bad.cu", function="bad", input=R, output=R)
            """
        )
    )
    path = tmp_path / "t.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            version: 1
            name: badcxx
            python_path: ["{tmp_path}"]
            kernels:
              k:
                entry: badmod:bad
                persistent: {{}}
            """
        ).lstrip()
    )
    result = ringctl("up", path, "--no-dashboard", timeout=120)
    assert result.returncode != 0
    assert f"{tmp_path / 'bad.cu'}:3:" in result.stderr, result.stderr
    assert "undeclared_thing" in result.stderr


def test_backend_cuda_for_a_cxx_kernel_is_not_available_yet(tmp_path: Path) -> None:
    text = TOPOLOGY.read_text().replace(
        "    persistent: {ring: 16384}", "    persistent: {ring: 16384}\n    backend: cuda"
    )
    path = tmp_path / "t.yaml"
    path.write_text(text.replace('python_path: ["../.."]', f'python_path: ["{REPO}"]'))
    result = subprocess.run(
        [sys.executable, "-m", "ringctl.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "persistent kernels on backend cuda are not available yet" in result.stderr


def test_records_a_cxx_handler_cannot_read_are_refused_where_declared() -> None:
    fields = [("seq", np.int64), ("flag", np.int32), ("value", np.float64)]
    packed = np.dtype(fields)
    with pytest.raises(TypeError, match=r"field 'value' sits at byte 12.*align=True"):
        native_kernel(source="cuda/sink.cu", function="f", input=packed)
    with pytest.raises(TypeError, match="cannot read"):
        native_kernel(source="cuda/sink.cu", function="f", input=np.dtype([("c", np.complex128)]))
    aligned = np.dtype(fields, align=True)
    k = native_kernel(source="cuda/sink.cu", function="f", input=aligned, output=aligned)
    assert k.native is not None and k.native.source == Path(__file__).parent / "cuda" / "sink.cu"
    assert k.qualified_name == "sink.cu:f" and k.kernel_id == "f"
    with pytest.raises(FileNotFoundError, match=r"no C\+\+ source at .*nowhere\.cu"):
        native_kernel(source="nowhere.cu", function="f", input=aligned)
