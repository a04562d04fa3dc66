"""``ringctl init``: the project it writes passes its own smoke run and its own tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run(*argv: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "RINGCTL_STATE_DIR": str(cwd / ".state")},
    )


def ringctl(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run(sys.executable, "-m", "ringctl.cli", *args, cwd=cwd)


def pytest_in(folder: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A user's plain pytest: no plugins of this repository's configuration, no cache.
    return run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", folder, cwd=cwd)


@pytest.mark.slow
@pytest.mark.parametrize(("template", "tests"), [("pipeline", "4 passed"), ("gpu", "5 passed")])
def test_the_scaffold_passes_its_own_smoke_run_and_tests(
    tmp_path: Path, template: str, tests: str
) -> None:
    made = ringctl("init", "demo", "--template", template, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    files = sorted(p.name for p in (tmp_path / "demo").iterdir())
    assert files == [
        "conftest.py", "demo.yaml", "demo_kernels.py", "pytest.ini", "test_demo_kernels.py"
    ]  # fmt: skip
    assert "ringctl up demo/demo.yaml" in made.stdout

    checked = ringctl("validate", "--import", "demo/demo.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    smoke = ringctl("smoke", *sorted((tmp_path / "demo").glob("*.yaml")), cwd=tmp_path)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "PASS" in smoke.stdout

    tested = pytest_in(tmp_path / "demo", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tests in tested.stdout
    assert "warning" not in tested.stdout.lower(), tested.stdout  # none from pytest-asyncio


def test_init_never_overwrites(tmp_path: Path) -> None:
    assert ringctl("init", "demo", cwd=tmp_path).returncode == 0
    kernels = tmp_path / "demo" / "demo_kernels.py"
    kernels.write_text("# my own work\n")
    again = ringctl("init", "demo", "--template", "gpu", cwd=tmp_path)
    assert again.returncode == 2
    assert "error: refusing to overwrite" in again.stderr
    assert "demo_kernels.py" in again.stderr
    assert kernels.read_text() == "# my own work\n"
    assert "Traceback" not in again.stderr
    # Another name writes other files next to them.
    other = ringctl("init", "demo", "--name", "second", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert (tmp_path / "demo" / "second.yaml").is_file()


def test_a_hostile_folder_name_still_gives_a_valid_project(tmp_path: Path) -> None:
    folder = 'My """Demo"""\nv2!'
    made = ringctl("init", folder, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / folder
    assert sorted(p.name for p in project.iterdir()) == [
        "conftest.py",
        "my-demo-v2.yaml",
        "my_demo_v2_kernels.py",
        "pytest.ini",
        "test_my_demo_v2_kernels.py",
    ]
    # The generated Python still parses and the YAML still validates.
    for name in ("my_demo_v2_kernels.py", "test_my_demo_v2_kernels.py", "conftest.py"):
        compile((project / name).read_text(), name, "exec")
    checked = ringctl("validate", "--import", project / "my-demo-v2.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("init", "--", "---"), "cannot make a topology name from '---'"),
        (("init", "x", "--name", "!!!"), "cannot make a topology name from '!!!'"),
        (("init", "afile"), "afile exists and is not a folder"),
        (("init", "x", "--template", "cobol"), "cobol"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "afile").write_text("")
    result = ringctl(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_folder_leaves_nothing_behind(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = ringctl("init", locked / "demo", cwd=tmp_path)
    finally:
        locked.chmod(0o700)
    assert result.returncode == 2
    assert "cannot write the project" in result.stderr
    assert list(locked.iterdir()) == []


def test_files_written_before_a_failure_are_removed(tmp_path: Path) -> None:
    from ringctl.exceptions import UserInputError
    from ringctl.scaffold import write_project

    folder = tmp_path / "demo"
    folder.mkdir()
    # The test file's name is taken by a folder: the third write fails.
    (folder / "test_demo_kernels.py").mkdir()
    with pytest.raises(UserInputError, match="refusing to overwrite"):
        write_project(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["test_demo_kernels.py"]


@pytest.mark.slow
@pytest.mark.parametrize(("template", "tests"), [("pipeline", "4 passed"), ("gpu", "5 passed")])
def test_a_project_written_into_a_package_folder_passes_its_tests(
    tmp_path: Path, template: str, tests: str
) -> None:
    # An existing folder of a user's package: pytest imports its tests as `kit.test_...`.
    folder = tmp_path / "kit"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    made = ringctl("init", "kit", "--template", template, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    tested = pytest_in(folder, cwd=elsewhere)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tests in tested.stdout
    smoke = ringctl("smoke", folder / "kit.yaml", cwd=elsewhere)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr


def test_next_steps_for_a_folder_named_like_an_option_are_runnable(tmp_path: Path) -> None:
    made = ringctl("init", "--", "-demo", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "ringctl up ./-demo/demo.yaml" in made.stdout
    assert "pytest ./-demo " in made.stdout
    assert "ringctl up ./-demo/demo.yaml" in (tmp_path / "-demo" / "demo.yaml").read_text()
    # The command the user is told to run is one the CLI reads as a file.
    checked = ringctl("validate", "--import", "./-demo/demo.yaml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    ("args", "topology"),
    [
        (("init", "2024"), "2024/2024.yaml"),
        (("init", "x", "--name", "null"), "x/null.yaml"),
        (("init", "y", "--name", "0x1f"), "y/0x1f.yaml"),
    ],
)
def test_a_name_yaml_would_read_as_a_number_or_null_still_validates(
    tmp_path: Path, args: tuple[str, ...], topology: str
) -> None:
    made = ringctl(*args, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    checked = ringctl("validate", "--import", topology, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    name = Path(topology).stem
    assert checked.stdout.startswith(f"{topology}: ok ({name}: 3 kernels")


def test_a_queue_out_of_a_sink_is_explained_with_a_fix_that_can_work(tmp_path: Path) -> None:
    assert ringctl("init", "demo", cwd=tmp_path).returncode == 0
    topology = tmp_path / "demo" / "demo.yaml"
    text = topology.read_text()
    wired = "  - {from: scale, to: total}\n"
    assert wired in text
    # A second sink, fed by mistake from the first sink instead of from `scale`.
    text = text.replace(
        "queues:\n",
        "  biggest:\n    entry: demo_kernels:total\nqueues:\n",
    ).replace(wired, wired + "  - {from: total, to: biggest}\n")
    topology.write_text(text)

    checked = ringctl("validate", "--import", "demo/demo.yaml", cwd=tmp_path)
    assert checked.returncode == 2
    assert "kernel 'total' has no output port 'out' (its ports: none)" in checked.stderr
    assert "'total' sends nothing (ports=()): feed 'biggest' from another kernel" in checked.stderr
    assert "total.<port>" not in checked.stderr  # a sink has no port to name
    assert "Traceback" not in checked.stderr


def test_a_sink_that_sends_fails_with_a_message_that_says_it_declares_no_port(
    tmp_path: Path,
) -> None:
    assert ringctl("init", "demo", cwd=tmp_path).returncode == 0
    kernels = tmp_path / "demo" / "demo_kernels.py"
    text = kernels.read_text()
    summing = '        ctx.metrics["count"] += len(batch)\n'
    assert summing in text
    kernels.write_text(text.replace(summing, summing + "        await ctx.send(batch[0])\n"))

    up = ringctl("up", "--no-dashboard", "demo/demo.yaml", cwd=tmp_path)
    assert up.returncode == 1
    assert (
        "kernel 'total' has no output port 'out' (it declares: none, it sends nothing)"
        in up.stdout + up.stderr
    )


def test_async_tests_of_a_new_project_need_no_marker(tmp_path: Path) -> None:
    made = ringctl("init", "demo", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    (tmp_path / "demo" / "test_async.py").write_text(
        "from demo_kernels import numbers\n"
        "from ringctl.testing import run_kernel\n\n\n"
        "async def test_numbers() -> None:\n"
        "    run = await run_kernel(numbers, params={'count': 3})\n"
        "    assert run.outputs == [0, 1, 2]\n"
    )
    tested = pytest_in(tmp_path / "demo" / "test_async.py", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout and "warning" not in tested.stdout.lower(), tested.stdout
    # Without pytest-asyncio the settings are still known options: no warning either.
    plain = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                "no:asyncio", tmp_path / "demo" / "test_demo_kernels.py", cwd=tmp_path)  # fmt: skip
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "warning" not in plain.stdout.lower(), plain.stdout


def test_a_folder_with_its_own_pytest_settings_keeps_them(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    made = ringctl("init", "demo", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert not (tmp_path / "demo" / "pytest.ini").exists()
    assert not (tmp_path / "demo" / "conftest.py").exists()
