"""The ``ringctl`` program itself: --version, -h, help pages, completion, colour, start-up.

Each test runs the command as a user or a script does (a subprocess) and reads its
output and exit code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ringctl
from ringctl.cli import COMMANDS

REPO = Path(__file__).resolve().parents[2]
COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|9[0-7])[;m]")  # a foreground colour SGR


def ringctl_run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ringctl.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("args", [("--version",), ("-V",), ("version",)])
def test_version_prints_the_package_version(args: tuple[str, ...]) -> None:
    result = ringctl_run(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ringctl {ringctl.__version__}\n"


@pytest.mark.parametrize("args", [(), ("validate",), ("up",)])
def test_dash_h_is_help(args: tuple[str, ...]) -> None:
    short, long = ringctl_run(*args, "-h"), ringctl_run(*args, "--help")
    assert short.returncode == long.returncode == 0
    assert short.stdout == long.stdout
    assert "Usage: ringctl" in short.stdout


def test_top_help_lists_every_command_and_starts_with_init() -> None:
    out = ringctl_run("--help").stdout
    listed = [line.split()[1] for line in out.splitlines() if re.match(r"│ [a-z]+ ", line)]
    assert listed == list(COMMANDS)
    assert listed[0] == "init"
    assert "ringctl init DIR" in out


def test_the_listed_summaries_are_the_commands_own_first_lines() -> None:
    import typer

    from ringctl.cli import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="ringctl")
    for name, (_module, summary) in COMMANDS.items():
        command = root.get_command(ctx, name)  # type: ignore[attr-defined]
        assert command is not None, name
        assert (command.help or "").strip().splitlines()[0] == summary, name


def test_help_keeps_brackets_shows_choices_and_no_bool() -> None:
    out = ringctl_run("up", "--help", env={"COLUMNS": "200"}).stdout
    assert "ringctl[metrics]" in out  # not eaten as markup
    assert "local|ray" in out  # --engine is a choice
    assert "<bool>" not in out and "<str>" not in out
    assert re.search(r"-d, --detach +Run the supervisor", out)  # a flag shows no type


def test_an_unknown_engine_is_refused_with_the_choices() -> None:
    result = ringctl_run("up", "--engine", "dask", "topologies/quickstart.yaml")
    assert result.returncode == 2
    assert "dask" in result.stderr and "local" in result.stderr and "ray" in result.stderr


def test_completion_script_and_completions() -> None:
    # Named explicitly rather than detected from the parent processes, which differ
    # between a terminal, CI and a detached test run.
    script = ringctl_run(
        "--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    )
    assert script.returncode == 0
    assert "_RINGCTL_COMPLETE=complete_bash" in script.stdout
    assert "complete " in script.stdout

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        env = {
            "_RINGCTL_COMPLETE": "complete_bash",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
        }
        result = ringctl_run(env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert complete("ringctl va") == ["validate"]
    assert complete("ringctl up --engine ") == ["local", "ray"]
    assert complete("ringctl init x --template ") == ["pipeline", "gpu"]


@pytest.mark.parametrize(
    "args",
    [("ps", "no-such-topology"), ("validate", "no/such/file.yaml"), ("up", "--engine", "x")],
)
def test_no_color_is_honoured_by_errors(args: tuple[str, ...]) -> None:
    forced = ringctl_run(*args, env={"FORCE_COLOR": "1"})
    assert forced.returncode != 0
    plain = ringctl_run(*args, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert plain.returncode == forced.returncode
    assert not COLOUR.search(plain.stderr), plain.stderr
    assert not COLOUR.search(plain.stdout), plain.stdout


def test_errors_are_coloured_only_when_asked_and_say_error() -> None:
    forced = ringctl_run("ps", "no-such-topology", env={"FORCE_COLOR": "1"})
    assert COLOUR.search(forced.stderr)
    piped = ringctl_run("ps", "no-such-topology")
    assert piped.stderr.startswith("error: topology 'no-such-topology' is not running")
    assert "\x1b[" not in piped.stderr


def _modules_after(args: list[str], state: Path) -> set[str]:
    code = (
        "import sys\nfrom ringctl.cli import main\n"
        f"sys.argv = ['ringctl', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('MODULES:' + ','.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env={**os.environ, "RINGCTL_STATE_DIR": str(state)},
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("MODULES:"))
    return set(line.removeprefix("MODULES:").split(","))


def test_help_imports_no_command_module(tmp_path: Path) -> None:
    loaded = _modules_after(["--help"], tmp_path)
    assert not {m for m in loaded if m.startswith("ringctl.cli.") and m.endswith("_cmd")}
    assert not {"ringctl.cli.control_cmds", "ringctl.cli.topology_cmds"} & loaded
    assert not {"pydantic", "ringctl.topology", "typer.rich_utils", "numpy"} & loaded


def test_ps_imports_neither_pydantic_nor_the_topology_layer(tmp_path: Path) -> None:
    for args in (["ps"], ["ps", "--wait", "2.5"]):
        loaded = _modules_after(args, tmp_path)
        assert "ringctl.control.client" in loaded  # it did its work
        assert not {"pydantic", "ringctl.topology", "numpy", "typer.rich_utils"} & loaded


def test_a_mistyped_command_gets_a_guess() -> None:
    result = ringctl_run("valdate", "x.yaml")
    assert result.returncode == 2
    assert "No such command 'valdate'. Did you mean 'validate'?" in result.stderr


def test_a_state_dir_naming_an_unknown_home_is_a_clear_error() -> None:
    result = ringctl_run("ps", env={"RINGCTL_STATE_DIR": "~no-such-user-here/state"})
    assert result.returncode == 2
    assert "error: RINGCTL_STATE_DIR='~no-such-user-here/state'" in result.stderr
    assert "hint: set RINGCTL_STATE_DIR" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "param"),
    [
        (("validate", "topologies/quickstart.yaml", ""), "'files'"),
        (("up", ""), "'file'"),
        (("graph", ""), "'file'"),
        (("init", ""), "'folder'"),
    ],
)
def test_an_empty_path_is_refused_not_read_as_the_current_folder(
    args: tuple[str, ...], param: str, tmp_path: Path
) -> None:
    env = {"RINGCTL_STATE_DIR": str(tmp_path / "state")}
    result = ringctl_run(*args, env=env, cwd=tmp_path)  # `init` without the check writes here
    assert result.returncode == 2
    assert f"Invalid value for {param}: an empty path (is a shell variable unset?)" in result.stderr
    assert "is a folder" not in result.stderr
    assert "Traceback" not in result.stderr


def test_argument_names_in_help_and_reference_are_the_ones_usage_shows() -> None:
    from ringctl.cli.docs import render

    scale = ringctl_run("scale", "--help", env={"COLUMNS": "200"}).stdout
    assert "Usage: ringctl scale [OPTIONS] NAME KERNEL=N..." in scale
    assert "KERNEL=N...." not in scale  # one ellipsis, not the metavar's and typer's
    reference = render()
    assert "## `ringctl scale [OPTIONS] NAME KERNEL=N...`" in reference
    assert "- `KERNEL=N...`: New replica counts." in reference
    assert "- `KERNEL[.PORT]`: The port to sample" in reference
    assert "TARGET" not in reference  # the parameters' Python names are not what users type


def test_reading_a_status_document_loads_neither_the_supervisor_nor_an_engine() -> None:
    # What `ps NAME`, `top` and the metrics read a running topology with.
    code = "import sys, ringctl.dashboard._status\nprint(','.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    loaded = set(out.stdout.strip().split(","))
    assert "ringctl.orchestrator.status" in loaded, out.stderr
    heavy = {"ringctl.orchestrator.supervisor", "ringctl.engine.local", "numpy", "pydantic"}
    assert not heavy & loaded
