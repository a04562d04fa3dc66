"""``ringctl apply`` and ``ringctl diff`` as a user runs them: ``up -d`` a file whose source
sends numbered messages, edit the file, apply it, and check that every number arrived
exactly once (or was counted), with the exit codes of docs/cli.md.

Real processes and sockets, each test in its own state directory.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import Ringctl, ringctl_for, wait_for

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def topology(kernels: str, queues: str, *, extra: str = "") -> str:
    return f"""\
version: 1
name: seq
python_path: ["{TESTS}"]
{extra}defaults:
  queue: {{capacity: 64}}
kernels:
{kernels}
queues:
{queues}
"""


SOURCE = """\
  source:
    entry: orchestrator.applykernels:numbered
    params: {rate: 400, report: "${RC_REPORT_DIR}/source.json"}
"""


def sink(name: str, label: str = "", **fields: str) -> str:
    more = "".join(f"    {k}: {v}\n" for k, v in fields.items())
    return (
        f"  {name}:\n    entry: orchestrator.applykernels:collect\n"
        f'    params: {{label: "{label}", report: "${{RC_REPORT_DIR}}/{name}.json"}}\n{more}'
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def kernel(status: dict[str, Any], kernel_id: str) -> dict[str, Any]:
    return next(k for k in status["kernels"] if k["id"] == kernel_id)


def received(ringctl: Ringctl, kernel_id: str) -> int:
    return int(kernel(ringctl.status("seq"), kernel_id)["metrics"].get("received", 0))


def seen(ringctl: Ringctl, *kernel_ids: str) -> list[int]:
    out: list[int] = []
    for kid in kernel_ids:
        out += ringctl.report(kid)["seen"]
    return out


def test_a_moved_queue_an_added_and_a_removed_kernel_lose_and_repeat_nothing(
    ringctl: Ringctl, tmp_path: Path
) -> None:
    first = write(
        tmp_path / "seq.yaml", topology(SOURCE + sink("old"), "  - {from: source, to: old}")
    )
    assert ringctl.up_detached(first) == "seq"
    wait_for(lambda: received(ringctl, "old") > 50, what="old receives")
    edited = topology(SOURCE + sink("new"), "  - {from: source, to: new}")
    write(first, edited)

    plan = ringctl("diff", "seq", first)
    assert plan.returncode == 1, plan.stderr
    added, *rest = plan.stdout.splitlines()
    assert added.startswith("  + kernel new: orchestrator.applykernels:collect, 1 replica, ")
    assert added.endswith(" (launched, wired, then activated)")
    assert rest == [
        "  ~ queue source.out: old -> new (producer switched; what old holds drains there)",
        "  - kernel old: drained, then terminated (what it holds is counted)",
        f"seq vs {first}: 3 changes",
    ]
    applied = ringctl("apply", first)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines()[-1] == f"applied {first}: 3 changes"

    status = ringctl.status("seq")
    assert [k["id"] for k in status["kernels"]] == ["new", "source"]
    assert status["drift"] == [] and len(status["applied"]["done"]) == 3
    wait_for(lambda: received(ringctl, "new") > 50, what="new receives")
    assert ringctl("diff", "seq", first).returncode == 0  # it now matches its file
    down = ringctl("down", "seq")
    assert down.returncode == 0, down.stderr

    sent = ringctl.report("source")["sent"]
    numbers = seen(ringctl, "old", "new")
    assert sorted(numbers) == list(range(1, sent + 1))  # each exactly once
    finished = ringctl.json("ps", "-a")
    assert finished["finished"][0]["exit_code"] == 0
    (entry,) = finished["applied"]
    assert entry["name"] == "seq" and len(entry["changes"]) == 3


def test_params_restart_the_kernel_state_kept_or_not_as_the_file_says(
    ringctl: Ringctl, tmp_path: Path
) -> None:
    path = write(tmp_path / "seq.yaml", topology(SOURCE + sink("sink", "one"),
                                                  "  - {from: source, to: sink}"))  # fmt: skip
    ringctl.up_detached(path)
    wait_for(lambda: received(ringctl, "sink") > 50, what="sink receives")
    write(path, topology(SOURCE.replace("rate: 400", "rate: 300") + sink("sink", "two"),
                         "  - {from: source, to: sink}"))  # fmt: skip
    applied = ringctl("apply", path)
    assert applied.returncode == 0, applied.stderr
    assert (
        "-/+ kernel sink: params.label 'one' -> 'two' (restart, ctx.state kept)" in applied.stdout
    )
    status = ringctl.status("sink" and "seq")
    assert kernel(status, "sink")["metrics"]["label"] == "two"
    assert kernel(status, "sink")["restarts"] == 1
    assert kernel(status, "source")["metrics"]["rate"] == 300
    before = received(ringctl, "sink")
    assert before > 50  # the restarted sink went on counting from its kept state

    write(path, topology(SOURCE.replace("rate: 400", "rate: 300")
                         + sink("sink", "three", keep_state="false"),
                         "  - {from: source, to: sink}"))  # fmt: skip
    applied = ringctl("apply", path)
    assert applied.returncode == 0, applied.stderr
    assert "ctx.state reset (keep_state: false)" in applied.stdout
    assert received(ringctl, "sink") < before  # a new, empty state
    assert ringctl("down", "seq").returncode == 0
    sent = ringctl.report("source")["sent"]
    report = ringctl.report("sink")
    assert report["label"] == "three"
    # The numbers the fresh state saw are the tail of the sequence, each once.
    tail = report["seen"]
    assert tail == list(range(sent - len(tail) + 1, sent + 1))


def test_diff_and_dry_run_exit_codes_refusals_and_drift(ringctl: Ringctl, tmp_path: Path) -> None:
    path = write(tmp_path / "seq.yaml", topology(SOURCE + sink("sink", replicas="2"),
                                                  "  - {from: source, to: sink}"))  # fmt: skip
    ringctl.up_detached(path)
    same = ringctl("diff", "seq", path)
    assert (same.returncode, same.stdout.strip()) == (0, f"seq vs {path}: no changes")
    assert ringctl("apply", "--dry-run", path).returncode == 0

    # A scale since the file was applied is drift: ps says so, diff shows the way back.
    assert ringctl("scale", "seq", "sink=3").returncode == 0
    status = ringctl.status("seq")
    assert status["drift"] == ["sink runs 3 replicas, its file says 2"]
    assert "differs from its file: sink runs 3 replicas" in ringctl("ps", "seq").stdout
    dry = ringctl("apply", "--dry-run", path)
    assert dry.returncode == 1
    assert "  ~ kernel sink: replicas 3 -> 2" in dry.stdout
    assert kernel(ringctl.status("seq"), "sink")["replicas"] == 3  # a dry run changes nothing
    assert ringctl("apply", path).returncode == 0
    assert ringctl.status("seq")["drift"] == []

    # What cannot change live is refused before anything changes, at its line.
    write(path, topology(SOURCE + sink("sink", "x", replicas="2", backend="cuda"),
                         "  - {from: source, to: sink}", extra="engine: ray\n"))  # fmt: skip
    refused = ringctl("apply", path)
    assert refused.returncode == 2, refused.stderr
    assert f"{path}:4:" in refused.stderr and "engine local -> ray cannot change" in refused.stderr
    assert "backend cpu -> cuda cannot change while it runs" in refused.stderr
    assert kernel(ringctl.status("seq"), "sink")["metrics"]["label"] == ""  # untouched
    assert ringctl.status("seq")["drift"] == [
        f"its file was edited since it was applied (ringctl diff seq {path} shows how)"
    ]

    missing = ringctl("apply", "--name", "nosuch", path)
    assert missing.returncode == 3, missing.stderr
    broken = write(tmp_path / "broken.yaml", "version: 1\nname: seq\nkernels: {}\nqueues: 7\n")
    assert ringctl("apply", broken).returncode == 2
    assert ringctl("down", "seq").returncode == 0


def test_a_failed_apply_rolls_back_to_what_ran(ringctl: Ringctl, tmp_path: Path) -> None:
    path = write(tmp_path / "seq.yaml", topology(SOURCE + sink("sink", "one"),
                                                  "  - {from: source, to: sink}"))  # fmt: skip
    ringctl.up_detached(path)
    wait_for(lambda: received(ringctl, "sink") > 20, what="sink receives")
    broken_sink = "  sink:\n    entry: orchestrator.testkernels:setup_fails\n"
    queues = "  - {from: source, to: sink}\n  - {from: source, to: extra}"
    write(path, topology(SOURCE + broken_sink + sink("extra"), queues))
    failed = ringctl("apply", path)
    assert failed.returncode == 1, failed.stderr
    assert "apply failed at `-/+ kernel sink: entry" in failed.stderr
    assert "rolled back" in failed.stderr and "seq runs as before" in failed.stderr
    status = ringctl.status("seq")
    assert [k["id"] for k in status["kernels"]] == ["sink", "source"]
    assert kernel(status, "sink")["state"] == "ACTIVE"
    assert kernel(status, "sink")["metrics"]["label"] == "one"
    before = received(ringctl, "sink")
    wait_for(lambda: received(ringctl, "sink") > before + 20, what="sink receives again")
    assert ringctl.json("ps", "-a").get("applied") == []  # nothing was applied
    assert ringctl("down", "seq").returncode == 0
    sent = ringctl.report("source")["sent"]
    assert sorted(seen(ringctl, "sink")) == list(range(1, sent + 1))


def test_apply_json_is_the_plan_and_what_was_done(ringctl: Ringctl, tmp_path: Path) -> None:
    path = write(tmp_path / "seq.yaml", topology(SOURCE + sink("sink"),
                                                  "  - {from: source, to: sink}"))  # fmt: skip
    ringctl.up_detached(path)
    write(path, topology(SOURCE + sink("sink", replicas="2"), "  - {from: source, to: sink}"))
    result = ringctl("apply", path, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["changed"] is True
    assert [c["kind"] for c in doc["changes"]] == ["scale"]
    assert doc["done"] == ["  ~ kernel sink: replicas 1 -> 2"]
    assert time.time() - doc["at"] < 60
    assert ringctl("down", "seq").returncode == 0
