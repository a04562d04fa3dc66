"""``python -m ringctl.dashboard``: the command that regenerates the README screenshot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ringctl.dashboard.__main__ import main

SAMPLE = Path(__file__).with_name("sample_status.json")


def test_svg_from_a_saved_status_document(tmp_path: Path) -> None:
    target = tmp_path / "img" / "dashboard.svg"
    assert main(["svg", str(SAMPLE), "-o", str(target), "--width", "100"]) == 0
    svg = target.read_text(encoding="utf-8")
    assert svg.startswith("<svg") and "stalled" in svg


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("render", "square"),
        ("plain", "square 40.1k/s stalled"),
        ("json", '"name":"quickstart"'),
        ("metrics", "ringctl_kernel_messages_in_total"),
    ],
)
def test_each_format_from_stdin(fmt: str, expected: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ringctl.dashboard", fmt, "-"],
        input=SAMPLE.read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert expected in out.stdout


def test_unreadable_input_is_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["render", str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "list.json"
    bad.write_text(json.dumps([1, 2]), encoding="utf-8")
    assert main(["render", str(bad)]) == 2
    assert "error: cannot read" in capsys.readouterr().err
