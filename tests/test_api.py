"""Topology files from Python: ``ringctl.load(path)``, ``run()`` / ``run_async()``, ``check``."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

import ringctl
from ringctl.exceptions import UserInputError
from ringctl.topology import TopologyError

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "topologies" / "quickstart.yaml"
SUM_OF_SQUARES = sum(i * i for i in range(100_000))


def test_load_then_run_returns_the_final_report() -> None:
    topology = ringctl.load(QUICKSTART)
    assert topology.name == "quickstart"
    assert topology.kernels == ["total", "square", "source"]  # launch order: sinks first
    assert Path(topology.file or "").is_absolute()
    report = topology.run()
    assert report.ok and report.outcome == "completed" and report.exit_code == 0
    assert report.kernel("total")["metrics"]["total"] == SUM_OF_SQUARES
    assert report.kernel("source")["completed"] is True
    with pytest.raises(KeyError, match="no kernel 'nope' in quickstart"):
        report.kernel("nope")
    # A loaded file runs again from scratch.
    assert topology.run().kernel("total")["metrics"]["total"] == SUM_OF_SQUARES


async def test_run_async_inside_a_running_loop() -> None:
    topology = ringctl.load(QUICKSTART)
    with pytest.raises(UserInputError, match="cannot start an event loop") as info:
        topology.run()
    assert info.value.hint is not None and "run_async" in info.value.hint
    phases: list[str] = []
    hooks = ringctl.RunHooks(on_phase=lambda p: phases.append(p["name"]))
    report = await topology.run_async(hooks=hooks)
    assert report.outcome == "completed"
    assert {"launch", "activate"} <= set(phases)


def test_an_endless_source_runs_for_its_duration(tmp_path: Path) -> None:
    path = tmp_path / "endless.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        version: 1
        name: endless
        python_path: ["{REPO}"]
        kernels:
          source: {{entry: "kernels.sources:counter", params: {{count: null, rate: 200}}}}
          total: {{entry: "kernels.sinks:summing"}}
        queues:
          - {{from: source, to: total}}
        """)
    )
    report = ringctl.load(path).run(duration=0.3)
    assert report.outcome == "stopped", report
    assert report.exit_code == 0
    assert report.down is not None and report.down.graceful
    assert report.kernel("total")["messages_in"] > 0


def test_load_raises_every_problem_and_check_returns_them(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "version: 1\nname: bad\nkernels:\n  a: {entry: 'nosuchpackage.mod:run', replicas: 0}\n"
    )
    with pytest.raises(TopologyError) as info:
        ringctl.load(path)
    assert any("replicas must be >= 1" in d.message for d in info.value.diagnostics)
    messages = [d.message for d in ringctl.check(path)]
    assert any("replicas must be >= 1" in m for m in messages)
    with pytest.raises(UserInputError, match="unknown engine 'dask'"):
        ringctl.load(QUICKSTART, engine="dask")


def test_load_of_an_empty_path_says_so() -> None:
    with pytest.raises(TopologyError, match="the file name is empty"):
        ringctl.load("")
    assert [d.message for d in ringctl.check("")] == ["the file name is empty"]


def test_check_without_imports_finds_a_missing_package_and_runs_no_code(tmp_path: Path) -> None:
    (tmp_path / "loud").mkdir()
    (tmp_path / "loud" / "__init__.py").write_text("raise RuntimeError('imported!')\n")
    path = tmp_path / "t.yaml"
    path.write_text(
        "version: 1\nname: t\nkernels:\n"
        "  a: {entry: 'loud.kernels:run'}\n"
        "  b: {entry: 'missing_pkg_xyz:run'}\n"
    )
    found = ringctl.check(path, import_entries=False)
    assert [d.message for d in found] == [
        "kernel 'b': cannot import 'missing_pkg_xyz': no module named 'missing_pkg_xyz'"
    ]
    assert found[0].line == 5
    assert "loud" not in sys.modules  # looked up, never imported
    imported = [d.message for d in ringctl.check(path)]
    assert any("importing 'loud.kernels' failed: RuntimeError: imported!" in m for m in imported)


async def test_a_front_end_follows_a_run_through_its_live_run() -> None:
    """``on_start`` gets the run (never the supervisor); ``view`` runs with it and is
    awaited once it has ended, so it can draw the last frame."""
    seen: list[object] = []

    async def view(live: ringctl.api.LiveRun) -> None:
        while not live.ended:
            await asyncio.sleep(0.01)
        seen.append(live.status()["state"])

    hooks = ringctl.RunHooks(on_start=lambda live: seen.append(type(live).__name__), view=view)
    report = await ringctl.load(QUICKSTART).run_async(hooks=hooks)
    assert report.outcome == "completed"
    assert seen == ["LiveRun", "completed"]


def test_the_door_starts_a_detached_run_and_controls_it_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``up -d``, ``ps``, ``pause``, ``resume`` and ``down`` call, from a program."""
    import ringctl.api as api
    from ringctl.exceptions import TopologyNotRunningError
    from ringctl.orchestrator.status import KernelStatus, read_status

    monkeypatch.setenv("RINGCTL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RC_REPORT_DIR", str(tmp_path))
    endless = REPO / "tests" / "orchestrator" / "topologies" / "endless.yaml"
    started = api.start_detached(endless, "endless", timeout=5.0)
    assert started.outcome == "up", started.log_tail
    with pytest.raises(ringctl.RingctlError, match="already running"):
        api.start_detached(endless, "endless")
    running = api.connect()  # the only one running
    try:
        assert running.name == "endless"
        assert [t["name"] for t in api.listing()] == ["endless"]
        assert running.pause(["sink"])["paused"] == ["sink"]
        sink = read_status(running.status()).kernels[0]
        assert (sink.id, sink.status) == ("sink", KernelStatus.PAUSED)
        assert running.resume()["resumed"] == ["sink"]
        progress: list[dict[str, object]] = []
        report = running.down(timeout=5.0, on_progress=progress.append)
    finally:
        if api.listing():
            api.connect("endless").down(timeout=1.0)
    assert report["graceful"] is True
    assert api.listing() == []  # down returned once the supervisor's files were gone
    assert api.finished()[0]["name"] == "endless"
    assert api.kernel_log("endless").path.exists()
    with pytest.raises(TopologyNotRunningError):
        api.connect("endless").status()


def test_every_name_the_door_exports_resolves() -> None:
    """The CLI imports these by name; each is looked up only when first used."""
    import ringctl.api as api

    assert sorted(api.__all__) == sorted(set(api.__all__))
    assert [name for name in api.__all__ if getattr(api, name, None) is None] == []
