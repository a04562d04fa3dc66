"""Without Ray, ``engine: ray`` is a clear error, and ``engine: local`` never imports it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.engines.conftest import REPO

pytestmark = pytest.mark.ray  # runs with or without ray: it hides ray itself

#: `import ray` fails in the child as it does where the extra is not installed.
WITHOUT_RAY = """
import sys
sys.modules["ray"] = None
from ringctl.cli import main
sys.argv = ["ringctl", *sys.argv[1:]]
try:
    main()
finally:
    assert "ray" not in {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
"""


def ringctl_without_ray(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_RAY, *args],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("command", ["up", "smoke"])
def test_engine_ray_without_ray_says_how_to_install_it(command: str) -> None:
    done = ringctl_without_ray(command, "topologies/quickstart.yaml", "--engine", "ray")
    assert done.returncode == 2, done.stderr
    assert "error: engine: ray needs Ray, which is not installed" in done.stderr
    assert "hint: pip install 'ringctl[ray]' (or use engine: local)" in done.stderr
    assert "launch" not in done.stderr, "nothing was launched first"


def test_engine_local_does_not_need_ray() -> None:
    done = ringctl_without_ray("up", "topologies/quickstart.yaml", "--no-dashboard")
    assert done.returncode == 0, done.stderr
    assert "total=333328333350000" in done.stderr
