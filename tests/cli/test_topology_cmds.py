"""``ringctl validate / graph / schema`` as a user runs them: a subprocess, output, exit code."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOPO = REPO / "tests" / "topology"
QUICKSTART = TOPO / "valid" / "quickstart.yaml"
BROKEN = sorted((TOPO / "broken").glob("*.yaml"))


def ringctl(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ringctl.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=60,
    )


def test_validate_ok_prints_one_line_per_file() -> None:
    feedback = TOPO / "valid" / "feedback_loop.yaml"
    result = ringctl("validate", QUICKSTART, feedback)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{QUICKSTART}: ok (quickstart: 4 kernels, 2 queues, engine local)",
        f"{feedback}: ok (retry-loop: 3 kernels, 3 queues, engine ray)",
    ]
    assert result.stderr == ""


def test_validate_reports_every_error_in_every_file() -> None:
    first, second = TOPO / "broken" / "out_of_range.yaml", TOPO / "broken" / "dependency_cycle.yaml"
    result = ringctl("validate", first, QUICKSTART, second)
    assert result.returncode == 2
    err = result.stderr
    assert f"{first}:4:21: defaults.queue.capacity must be >= 1; got 0" in err
    assert f"{first}:15:12: smoke.timeout must be >= 0; got -1" in err
    assert f"{first}: 6 errors" in err
    assert f"{second}:6:18: dependency cycle: alpha -> gamma -> beta -> alpha" in err
    assert "    hint: depends_on must not loop" in err
    assert f"{QUICKSTART}: ok" in result.stdout
    assert "Traceback" not in err


def test_validate_json_gives_errors_as_data() -> None:
    path = TOPO / "broken" / "unknown_field_defaults_queue.yaml"
    result = ringctl("validate", "--json", path, QUICKSTART)
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert [f["ok"] for f in document["files"]] == [False, True]
    assert document["errors"][0] == {
        "file": str(path),
        "line": 5,
        "column": 5,
        "message": "unknown field 'capcity' in defaults.queue",
        "hint": "did you mean 'capacity'?",
    }
    assert document["files"][1]["name"] == "quickstart"


def test_validate_import_checks_entries(tmp_path: Path) -> None:
    folder = tmp_path / "importing"
    shutil.copytree(TOPO / "importing", folder, ignore=shutil.ignore_patterns("__pycache__"))
    ok = ringctl("validate", "--import", folder / "ok.yaml")
    assert ok.returncode == 0, ok.stderr
    assert "entries imported" in ok.stdout
    bad = ringctl("validate", "--import", "--json", folder / "bad.yaml")
    assert bad.returncode == 2
    messages = [e["message"] for e in json.loads(bad.stdout)["errors"]]
    assert "kernel 'typo': 'ringtest_demo' has no attribute 'countr'" in messages
    assert len(messages) == 11
    assert not list(folder.rglob("__pycache__")), "validation must leave nothing behind"


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_no_traceback_for_any_broken_file(path: Path) -> None:
    result = ringctl("validate", path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{path}:")


def test_missing_file_empty_file_and_garbage(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "garbage.yaml").write_bytes(bytes(range(256)))
    result = ringctl("validate", "nope.yaml", "empty.yaml", "garbage.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "nope.yaml: no such file" in result.stderr
    assert "empty.yaml:1:1: the file is empty" in result.stderr
    assert "garbage.yaml:1:1: this is not a text file" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_without_files_is_a_usage_error() -> None:
    result = ringctl("validate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("fmt", "suffix"), [("tree", "txt"), ("mermaid", "md"), ("dot", "dot")])
def test_graph_formats_match_golden(fmt: str, suffix: str) -> None:
    result = ringctl("graph", QUICKSTART, "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (TOPO / "golden" / f"quickstart.{suffix}").read_text(encoding="utf-8")


def test_graph_of_a_broken_file_exits_2() -> None:
    path = TOPO / "broken" / "queue_cycle.yaml"
    result = ringctl("graph", path)
    assert result.returncode == 2
    assert f"{path}:8:5: queue cycle: a -> b -> c -> a" in result.stderr


def test_graph_rejects_an_unknown_format() -> None:
    result = ringctl("graph", QUICKSTART, "--format", "png")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_schema_prints_the_json_schema() -> None:
    result = ringctl("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "ringctl topology"
    assert "KernelSpec" in schema["$defs"]


def test_validate_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from ringctl.cli import app\n"
        "try:\n"
        f"    app(['validate', {str(QUICKSTART)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('numba', 'cupy', 'ray') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_validate_finds_a_missing_package_without_importing_anything(tmp_path: Path) -> None:
    (tmp_path / "loud").mkdir()
    (tmp_path / "loud" / "__init__.py").write_text("print('IMPORTED'); raise SystemExit(9)\n")
    path = tmp_path / "t.yaml"
    path.write_text(
        "version: 1\nname: t\nkernels:\n"
        "  a: {entry: 'loud.kernels:run'}\n"
        "  b: {entry: 'kernelz.math:square'}\n"
        "  c: {entry: 'nowhere_pkg_1234:run'}\n"
    )
    result = ringctl("validate", path, cwd=REPO)
    assert result.returncode == 2
    assert "IMPORTED" not in result.stdout + result.stderr
    err = result.stderr
    missing = "kernel 'b': cannot import 'kernelz.math': no module named 'kernelz'"
    assert f"{path}:5:14: {missing}" in err
    assert "hint: did you mean 'kernels'?" in err
    assert f"{path}:6:14: kernel 'c': cannot import 'nowhere_pkg_1234'" in err
    assert f"{path}: 2 errors" in err
    assert "kernel 'a'" not in err  # its package exists: what it holds is --import's job


def test_validate_json_lists_each_error_once(tmp_path: Path) -> None:
    broken = TOPO / "broken" / "out_of_range.yaml"
    result = ringctl("validate", "--json", broken, QUICKSTART)
    document = json.loads(result.stdout)
    files = {f["file"]: f for f in document["files"]}
    assert "errors" not in files[str(broken)]
    assert files[str(broken)]["error_count"] == len(document["errors"]) == 6
    assert files[str(QUICKSTART)]["error_count"] == 0
    keys = [(e["file"], e["line"], e["column"], e["message"]) for e in document["errors"]]
    assert len(keys) == len(set(keys))


def test_graph_shows_kernel_descriptions() -> None:
    fan = REPO / "topologies" / "fan-in-out.yaml"
    tree = ringctl("graph", fan).stdout
    join = "│   ├── 3. join     kernels.flow:join  [cpu]\n"
    assert join + "│   │      x*x + 2*x, matched by key\n" in tree
    assert tree.rstrip().endswith("round_robin")
    assert "200 keyed int64 batches" in ringctl("graph", fan, "--format", "dot").stdout
    assert "200 keyed int64 batches" in ringctl("graph", fan, "--format", "mermaid").stdout


def test_ps_reads_a_status_document_it_does_not_fully_know(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A supervisor of another version may leave fields out: ps shows "--", no KeyError."""
    from ringctl.cli.control_cmds import _print_status

    _print_status(
        {
            "name": "older",
            "state": "running",
            "kernels": [
                {"id": "a", "state": "ACTIVE"},
                {"id": "b", "state": "TERMINATED", "last_error": "x", "restart_in_s": 12.0},
                {"id": "c", "state": "TERMINATED", "lost": 7},
            ],
            "queues": [{"from": "a.out", "to": "b"}],
        }
    )
    out = capsys.readouterr().out
    assert "restarting in 12.0s" in out
    assert "c: lost 7 accepted messages not processed" in out
    assert "a.out -> b" in out


def test_a_metric_expectation_gets_one_error_in_the_users_words(tmp_path: Path) -> None:
    path = tmp_path / "bounds.yaml"
    path.write_text(
        "version: 1\nname: bounds\nkernels:\n  sink: {entry: os:getcwd}\n"
        "smoke:\n  expect:\n    sink:\n      metrics:\n"
        "        total: {min: 5, max: 1}\n        rate: fast\n"
    )
    result = ringctl("validate", path, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}:9:16: smoke.expect.sink.metrics.total: min (5) is greater than max (1)",
        f"{path}:10:15: smoke.expect.sink.metrics.rate must be a number or a mapping; got 'fast'",
        f"{path}: 2 errors",
    ]
