"""``logs``, ``tap``, ``restart``, ``scale``, ``ps -a`` and the run's final word, end to end.

Real processes and sockets: each test runs ``ringctl`` as a subprocess in its own state
directory (the ``ringctl`` fixture), as a user would.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import TOPOLOGIES, Ringctl, ringctl_for, wait_for

ENDLESS = TOPOLOGIES / "endless.yaml"
SCALABLE = TOPOLOGIES / "scalable.yaml"
CHATTY = TOPOLOGIES / "chatty.yaml"
FAILS = TOPOLOGIES / "fails.yaml"
SETUP_FAILS = TOPOLOGIES / "setup_fails.yaml"
BACKLOG = TOPOLOGIES / "backlog.yaml"
FINITE = TOPOLOGIES / "finite.yaml"


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def kernel(status: dict[str, Any], kernel_id: str) -> dict[str, Any]:
    return next(k for k in status["kernels"] if k["id"] == kernel_id)


def drained_exactly(cli: Ringctl) -> int:
    """The sink received exactly what the source sent: nothing lost, nothing twice."""
    sent, received = cli.report("source"), cli.report("sink")
    assert received == {"received": sent["sent"], "sum": sent["sum"]}
    return int(sent["sent"])


# -- logs ----------------------------------------------------------------------------------


def test_logs_of_a_crashing_kernel_show_its_traceback_tagged(ringctl: Ringctl) -> None:
    up = ringctl("up", FAILS, "--no-dashboard")
    assert up.returncode == 1
    # The foreground run showed the traceback once (the restart's second failure did not
    # print it again) and says where to find it.
    assert up.stderr.count("Traceback (most recent call last)") == 1
    assert "ringctl: kernel sink[0] raised:" in up.stderr
    assert "ValueError: boom on 1" in up.stderr
    assert "ringctl logs fails" in up.stderr

    logs = ringctl("logs", "fails")
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.splitlines()
    tb = [line for line in lines if " sink[0] traceback | " in line]
    assert len([line for line in tb if "Traceback (most recent" in line]) == 2  # both instances
    assert any(line.endswith("| ValueError: boom on 1") for line in tb)
    assert any('testkernels.py", line' in line for line in tb)
    stamp = lines[0].split(" sink[0]")[0]
    assert len(stamp) == len("2026-11-28 09:30:00.123") and stamp[10] == " "

    as_json = ringctl("logs", "fails", "--json").stdout
    records = [json.loads(line) for line in as_json.splitlines()]
    assert {r["stream"] for r in records} == {"traceback"}
    assert {(r["kernel"], r["replica"]) for r in records} == {("sink", 0)}

    assert ringctl("logs", "fails", "--tail", "1").stdout.splitlines() == [lines[-1]]
    assert ringctl("logs", "fails", "source").stdout == ""  # the source said nothing
    assert ringctl("logs", "fails", "--since", "1h").stdout == logs.stdout
    assert ringctl("logs", "fails", "--since", "2000-01-01T00:00").stdout == logs.stdout


def test_logs_show_prints_and_log_records_per_kernel(ringctl: Ringctl) -> None:
    up = ringctl("up", CHATTY, "--no-dashboard")
    assert up.returncode == 0, up.stderr
    assert "got 20" in up.stdout  # a plain foreground run still shows what kernels print
    out = ringctl("logs", "chatty", "sink").stdout.splitlines()
    assert [line.split(" | ", 1)[1] for line in out if " sink[0] | " in line] == [
        f"got {n}" for n in range(1, 21)
    ]
    assert [line.split(" | ", 1)[1] for line in out if " sink[0] WARNING | " in line] == [
        "chatty: a round number: 10",
        "chatty: a round number: 20",
    ]


def test_logs_follow_a_detached_run_until_it_ends(ringctl: Ringctl) -> None:
    ringctl.up_detached(SCALABLE)
    follow = ringctl.spawn("logs", "scalable", "-f")
    assert ringctl("restart", "scalable", "relay").returncode == 0
    down = ringctl("down", "scalable")
    assert down.returncode == 0, down.stderr
    out, err = follow.communicate(timeout=20)  # -f ends by itself once the run is over
    assert follow.returncode == 0, err
    assert out == ""  # these kernels print nothing; what matters is that -f came back


@pytest.mark.parametrize("command", ["logs", "tap", "restart", "scale"])
def test_a_name_that_is_a_path_is_bad_input(ringctl: Ringctl, command: str) -> None:
    extra = {"logs": [], "tap": ["source"], "restart": ["sink"], "scale": ["sink=2"]}[command]
    result = ringctl(command, "../elsewhere", *extra)
    assert result.returncode == 2, result.stderr
    assert "'../elsewhere' is not a topology name" in result.stderr
    assert "Traceback" not in result.stderr


def test_logs_bad_input_and_unknown_names(ringctl: Ringctl) -> None:
    never = ringctl("logs", "never-ran")
    assert never.returncode == 3
    assert "no kernel log for topology 'never-ran'" in never.stderr
    assert "Traceback" not in never.stderr
    ringctl("up", CHATTY, "--no-dashboard")
    since = ringctl("logs", "chatty", "--since", "yesterday-ish")
    assert since.returncode == 2 and "e.g. --since 5m" in since.stderr
    ringctl.up_detached(ENDLESS)
    typo = ringctl("logs", "endless", "snik")
    assert typo.returncode == 2 and "did you mean 'sink'?" in typo.stderr


def test_a_failing_setup_hook_shows_its_traceback_with_file_and_line(ringctl: Ringctl) -> None:
    up = ringctl("up", SETUP_FAILS, "--no-dashboard")
    assert up.returncode == 1
    assert "OSError: no such device: /dev/ring0" in up.stderr
    assert 'testkernels.py", line' in up.stderr  # the traceback, on the screen
    assert "(at " in up.stderr and "testkernels.py:" in up.stderr  # and in the error line
    logs = ringctl("logs", "setup-fails", "camera").stdout
    assert "camera[0] traceback | OSError: no such device: /dev/ring0" in logs


# -- tap -----------------------------------------------------------------------------------


def test_tap_an_endless_source_for_three_messages(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    tap = ringctl("tap", "endless", "source", "-n", "3", "--json")
    assert tap.returncode == 0, tap.stderr
    docs = [json.loads(line) for line in tap.stdout.splitlines()]
    assert [d["n"] for d in docs] == [1, 2, 3]
    values = [d["value"] for d in docs]
    assert values == [values[0], values[0] + 1, values[0] + 2]  # in order, none skipped
    assert {(d["kernel"], d["port"]) for d in docs} == {("source", "out")}

    text = ringctl("tap", "endless", "source.out", "-n", "2")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert len(lines) == 2 and all(" source.out #" in line for line in lines)

    # The edge was untouched: after the taps every message still arrived, once.
    assert ringctl("down", "endless").returncode == 0
    drained_exactly(ringctl)


def test_tap_mistakes_are_bad_input(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    no_port = ringctl("tap", "endless", "source.outt", "-n", "1")
    assert no_port.returncode == 2
    assert "kernel 'source' has no output port 'outt' (its ports: out)" in no_port.stderr
    assert "did you mean source.out?" in no_port.stderr
    sink = ringctl("tap", "endless", "sink", "-n", "1")
    assert sink.returncode == 2 and "it sends nothing" in sink.stderr
    typo = ringctl("tap", "endless", "sorce", "-n", "1")
    assert typo.returncode == 2 and "did you mean 'source'?" in typo.stderr
    gone = ringctl("tap", "nothing-here", "source")
    assert gone.returncode == 3


def test_a_tap_on_a_paused_kernel_says_it_is_waiting(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    assert ringctl("pause", "endless", "source").returncode == 0
    tap = ringctl.spawn("tap", "endless", "source", "-n", "1")
    assert tap.stderr is not None
    said = ""
    with selectors.DefaultSelector() as sel:  # read with a deadline, never hang the suite
        sel.register(tap.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        while "\n" not in said and time.monotonic() < deadline:
            if sel.select(timeout=1):
                said += os.read(tap.stderr.fileno(), 4096).decode()
    assert said.startswith("tap: nothing from source.out yet; still waiting"), said
    assert "ringctl ps endless" in said
    # Resumed, the source sends again and the tap takes its one message.
    assert ringctl("resume", "endless", "source").returncode == 0
    out, _ = tap.communicate(timeout=30)
    assert tap.returncode == 0 and " source.out #1 " in out
    assert ringctl("down", "endless").returncode == 0


def test_a_tap_whose_supervisor_dies_exits_3(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    tap = ringctl.spawn("tap", "endless", "source")
    assert tap.stdout is not None
    assert " source.out #1 " in tap.stdout.readline()
    os.kill(ringctl.pid_of("endless"), signal.SIGKILL)
    _, err = tap.communicate(timeout=20)
    assert tap.returncode == 3, err
    assert "closed the connection" in err and "Traceback" not in err


def test_a_tap_client_that_goes_away_detaches_its_tap(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    tap = ringctl.spawn("tap", "endless", "source")
    assert tap.stdout is not None
    first = tap.stdout.readline()
    assert " source.out #1 " in first
    tap.kill()
    tap.wait(timeout=10)
    # Another tap works, and the run goes down cleanly with everything delivered.
    assert ringctl("tap", "endless", "source", "-n", "1").returncode == 0
    assert ringctl("down", "endless").returncode == 0
    drained_exactly(ringctl)


# -- restart and scale ---------------------------------------------------------------------


def test_restart_and_scale_under_load_lose_nothing(ringctl: Ringctl) -> None:
    ringctl.up_detached(SCALABLE)
    relay_out = lambda: kernel(ringctl.status("scalable"), "relay")["messages_out"]  # noqa: E731
    for step in (("restart", "scalable", "relay"), ("scale", "scalable", "relay=3"),
                 ("restart", "scalable", "relay", "sink"), ("scale", "scalable", "relay=1"),
                 ("scale", "scalable", "relay=2")):  # fmt: skip
        before = relay_out()
        done = ringctl(*step)
        assert done.returncode == 0, done.stderr
        wait_for(lambda b=before: relay_out() > b + 50, what=f"messages flow after {step}")
    status = ringctl.status("scalable")
    assert kernel(status, "relay")["restarts"] == 2
    assert kernel(status, "relay")["replicas"] == 2
    assert kernel(status, "sink")["restarts"] == 1
    events = [e["text"] for e in status["events"]]
    assert "relay scaled from 1 to 3 replicas" in events
    assert any(t.startswith("relay restarted on request") for t in events)
    assert ringctl("down", "scalable").returncode == 0
    drained_exactly(ringctl)
    # The supervisor's own verdict: the accounting law held and nothing was lost or left.
    (run,) = ringctl.json("ps", "-a")["finished"]
    assert (run["outcome"], run["exit_code"]) == ("stopped", 0), run


def test_scale_output_and_json(ringctl: Ringctl) -> None:
    ringctl.up_detached(SCALABLE)
    text = ringctl("scale", "scalable", "relay=3")
    assert (text.returncode, text.stdout) == (0, "relay: 1 -> 3 replicas\n")
    same = ringctl("scale", "scalable", "relay=3")
    assert same.stdout == "relay: already 3 replicas\n"
    doc = ringctl.json("scale", "scalable", "relay=1")
    assert doc == {"scaled": [{"kernel": "relay", "before": 3, "after": 1}]}
    assert ringctl("scale", "scalable", "relay=1").stdout == "relay: already 1 replica\n"
    assert ringctl("scale", "scalable", "relay=2", "relay=1").stdout == (
        "relay: 1 -> 2 replicas\nrelay: 2 -> 1 replica\n"
    )
    restarted = ringctl.json("restart", "scalable", "sink")
    assert restarted["restarted"] == ["sink"]


def test_a_kernel_that_refuses_replicas_says_why(ringctl: Ringctl) -> None:
    ringctl.up_detached(SCALABLE)
    refused = ringctl("scale", "scalable", "solo=2")
    assert refused.returncode == 2
    assert "kernel 'solo' refuses 2 replicas" in refused.stderr
    assert "keeps a running estimate, so it must run as one replica" in refused.stderr
    assert "it keeps running as 1" in refused.stderr
    assert kernel(ringctl.status("scalable"), "solo")["replicas"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("scale", "scalable", "relay"), "'relay' is not KERNEL=N"),
        (("scale", "scalable", "relay=0"), "'relay=0' is not KERNEL=N"),
        (("scale", "scalable", "relya=2"), "did you mean 'relay'?"),
        (("restart", "scalable", "relya"), "did you mean 'relay'?"),
    ],
)
def test_restart_and_scale_mistakes_are_bad_input(
    ringctl: Ringctl, args: tuple[str, ...], message: str
) -> None:
    ringctl.up_detached(SCALABLE)
    result = ringctl(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_restart_of_a_topology_that_is_not_running(ringctl: Ringctl) -> None:
    result = ringctl("restart", "nothing-here", "relay")
    assert result.returncode == 3
    assert "not running" in result.stderr


# -- ps ------------------------------------------------------------------------------------


def test_ps_name_shows_status_words_queues_and_metrics(ringctl: Ringctl) -> None:
    ringctl.up_detached(ENDLESS)
    wait_for(lambda: kernel(ringctl.status("endless"), "sink")["metrics"].get("received"))
    ps = ringctl("ps", "endless")
    assert ps.returncode == 0, ps.stderr
    header, *rows = ps.stdout.splitlines()[1:4]
    assert header.split()[:3] == ["KERNEL", "STATUS", "STATE"] and "METRICS" in header
    sink = next(r for r in rows if r.startswith("sink"))
    assert sink.split()[1] in ("idle", "busy") and "received=" in sink
    assert "source.out -> sink" in ps.stdout and "block" in ringctl("ps", "endless").stdout
    ringctl("pause", "endless")
    paused = ringctl("ps", "endless").stdout
    assert next(r for r in paused.splitlines() if r.startswith("sink")).split()[1] == "paused"


def test_ps_all_lists_finished_runs(ringctl: Ringctl) -> None:
    assert ringctl("up", FINITE, "--no-dashboard").returncode == 0
    assert ringctl("up", FAILS, "--no-dashboard").returncode == 1
    ringctl.up_detached(ENDLESS)
    doc = ringctl.json("ps", "-a")
    assert [t["name"] for t in doc["topologies"]] == ["endless"]
    finished = doc["finished"]
    assert [(f["name"], f["outcome"], f["exit_code"]) for f in finished] == [
        ("fails", "failed", 1),
        ("finite", "completed", 0),
    ]
    assert all(f["duration_s"] >= 0 and f["ended"] >= f["started"] for f in finished)
    assert "kernel 'sink' failed" in finished[0]["reason"]
    text = ringctl("ps", "-a").stdout
    assert "finished" in text and "completed" in text and "failed" in text
    assert "finite" not in ringctl("ps").stdout  # without -a: only what runs


# -- the foreground run's final word -------------------------------------------------------


def test_json_stream_ends_with_the_final_document(ringctl: Ringctl) -> None:
    up = ringctl("up", FINITE, "--json-stream")
    assert up.returncode == 0, up.stderr
    docs = [json.loads(line) for line in up.stdout.splitlines()]
    final = docs[-1]
    assert final["result"]["outcome"] == "completed", final["result"]
    assert final["result"]["exit_code"] == 0
    assert final["result"]["launch_stopped"] is False
    assert final["state"] == "completed"
    assert {k["id"]: k["messages_in"] for k in final["kernels"]} == {
        "source": 0, "relay": 500, "total": 500,
    }  # fmt: skip
    assert [q["messages"] for q in final["queues"]] == [500, 500]
    assert all("result" not in d for d in docs[:-1])

    failed = ringctl("up", FAILS, "--json-stream")
    assert failed.returncode == 1
    last = json.loads(failed.stdout.splitlines()[-1])
    assert (last["result"]["outcome"], last["result"]["exit_code"]) == ("failed", 1)
    assert "Traceback" in failed.stderr  # kernel output stays off stdout


def test_plain_mode_prints_event_lines(ringctl: Ringctl) -> None:
    up = ringctl.spawn("up", ENDLESS, "--no-dashboard", "--interval", "0.1")
    wait_for(lambda: (ringctl.state / "endless.sock").exists(), what="the socket")
    wait_for(lambda: ringctl("ps", "endless").returncode == 0)
    assert ringctl("pause", "endless").returncode == 0
    assert ringctl("resume", "endless").returncode == 0
    assert ringctl("down", "endless").returncode == 0
    out, err = up.communicate(timeout=20)
    assert up.returncode == 0, err
    assert "] event pause: paused sink, source" in out
    assert "] event resume: resumed sink, source" in out
    assert out.count("event pause:") == 1  # each event once


def test_a_foreground_run_whose_drain_times_out_exits_1(ringctl: Ringctl) -> None:
    up = ringctl("up", BACKLOG, "--no-dashboard", "--duration", "0.5", "--timeout", "0.1")
    assert up.returncode == 1, up.stderr
    assert "warning: the drain timed out" in up.stderr


def test_slow_setup_shows_launch_progress(ringctl: Ringctl, tmp_path: Path) -> None:
    slow = tmp_path / "slow.yaml"
    slow.write_text(
        f"version: 1\nname: slow\npython_path: [{str(TOPOLOGIES.parents[1])!r}]\n"
        "kernels:\n  sleepy:\n    entry: orchestrator.testkernels:slow_setup\n"
        "    params: {seconds: 2.5}\n"
    )
    up = ringctl("up", slow, "--no-dashboard")
    assert up.returncode == 0, up.stderr
    assert "ringctl: phase 1: launching sleepy (0/1 done, " in up.stderr


async def test_the_ray_engine_refuses_restart_scale_and_tap_plainly() -> None:
    from ringctl.exceptions import UserInputError
    from ringctl.orchestrator.loading import plan_from_file
    from ringctl.orchestrator.supervisor import Supervisor

    class RayLike:  # what the Ray engine declares today: no restart, scale or tap
        name = "ray"
        capabilities: frozenset[str] = frozenset()

        def add_listener(self, listener: Any) -> None:
            pass

    sup = Supervisor(plan_from_file(ENDLESS, engine="ray"), RayLike())
    expected = "is not supported with engine: ray yet"
    with pytest.raises(UserInputError, match=f"restart {expected}"):
        await sup.restart(["sink"])
    with pytest.raises(UserInputError, match=f"scale {expected}"):
        await sup.scale("sink", 2)
    with pytest.raises(UserInputError, match=f"tap {expected}"):
        sup.tap("source")


def test_help_lists_the_new_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ringctl.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("logs", "tap", "restart", "scale"):
        assert command in out
