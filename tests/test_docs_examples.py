"""Every Python block in docs/ runs as a reader would copy it: alone, in a fresh interpreter.

A block runs from a file of its own in an empty folder (so nothing of the repository's
is importable but the installed ``ringctl``), with the repository as the current folder
(so paths such as ``topologies/quickstart.yaml`` read as the page says). Functions named
``test_*`` that it defines are then called, as pytest would (a coroutine is run).

A block that cannot run alone (a fragment inside a coroutine, say) is marked on the line
before it with ``<!-- docs-test: skip (why) -->``; it must still parse.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = re.compile(r"<!-- docs-test: skip \((?P<why>[^)]+)\) -->")
FENCE = re.compile(r"^```python\n(?P<code>.*?)^```$", re.M | re.S)

CALL_TESTS = """

def _run_tests() -> None:
    import asyncio
    import inspect

    for name, value in list(globals().items()):
        if name.startswith("test_") and inspect.isfunction(value):
            result = value()
            if inspect.iscoroutine(result):
                asyncio.run(result)


_run_tests()
"""


def blocks() -> list[tuple[str, int, str, str | None]]:
    """``(page, line, code, why it is skipped or None)`` for every Python block."""
    found = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            skip = SKIP.fullmatch(before.strip())
            found.append((page.name, line, match["code"], skip["why"] if skip else None))
    return found


BLOCKS = blocks()


def test_the_docs_have_python_blocks_and_few_are_skipped() -> None:
    assert len(BLOCKS) >= 8
    skipped = [b for b in BLOCKS if b[3] is not None]
    assert len(skipped) <= len(BLOCKS) // 2, skipped


@pytest.mark.parametrize(
    ("page", "line", "code", "why"), BLOCKS, ids=[f"{b[0]}:{b[1]}" for b in BLOCKS]
)
def test_a_python_block_runs_as_copied(
    page: str, line: int, code: str, why: str | None, tmp_path: Path
) -> None:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    compile(code, f"{page}:{line}", "exec", flags=flags, dont_inherit=True)  # it parses
    if why is not None:
        pytest.skip(f"{page}:{line} is marked: {why}")
    script = tmp_path / "example.py"
    script.write_text(code + CALL_TESTS)
    env = {**os.environ, "RINGCTL_STATE_DIR": str(tmp_path / "state")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, f"{page}:{line}\n{result.stdout}\n{result.stderr}"
