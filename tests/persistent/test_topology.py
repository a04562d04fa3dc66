"""Persistent kernels in topology files: the checks, and a run driven through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared harness
from orchestrator.harness import Ringctl, ringctl_for, wait_for

REPO = Path(__file__).resolve().parents[2]
H = "tests.persistent.handlers"


def write(tmp_path: Path, body: str, head: str = "") -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(textwrap.dedent(head).lstrip() + textwrap.dedent(body).lstrip())
    return path


def validate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ringctl.cli", "validate", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


HEAD = f"""
version: 1
name: p
python_path: ["{REPO}"]
"""


def test_cuda_for_a_persistent_kernel_is_not_available_yet(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        head=HEAD,
        body=f"""
        kernels:
          k:
            entry: {H}:double
            backend: cuda
            persistent: {{}}
        """,
    )
    result = validate(path)
    assert result.returncode == 2
    assert f"{path}:7:14: kernel 'k': persistent kernels on backend cuda are not available yet" in (
        result.stderr
    )
    assert "hint: set `backend: cpu` (or `auto`)" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_ring_that_is_not_a_power_of_two(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        head=HEAD,
        body=f"""
        kernels:
          k:
            entry: {H}:double
            persistent: {{ring: 1000}}
        """,
    )
    result = validate(path)
    assert result.returncode == 2
    assert (
        f"{path}:7:17: kernels.k.persistent: ring must be a power of two between 2 and "
        "16777216, got 1000 (try 512 or 1024)"
    ) in result.stderr


def test_what_a_persistent_kernel_cannot_do_is_refused_with_positions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        head=HEAD,
        body=f"""
        kernels:
          a: {{entry: {H}:double}}
          b: {{entry: {H}:double}}
          k:
            entry: {H}:double
            replicas: 2
            persistent: {{}}
          j:
            entry: {H}:double
            persistent: {{}}
        queues:
          - {{from: a, to: j}}
          - {{from: b, to: j}}
        """,
    )
    result = validate(path)
    assert result.returncode == 2
    err = result.stderr
    assert f"{path}:9:15: kernel 'k': a persistent kernel runs as one replica" in err
    assert f"{path}:16:5: kernel 'j' is persistent and has 2 inbound queues" in err
    assert "Traceback" not in err


def test_records_of_connected_persistent_kernels_must_match(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        head=HEAD,
        body=f"""
        kernels:
          a:
            entry: {H}:double
            persistent: {{}}
          b:
            entry: {H}:other_records
            persistent: {{}}
        queues:
          - from: a
            to: b
        """,
    )
    assert validate(path).returncode == 0  # without --import nothing is imported
    result = validate("--import", path)
    assert result.returncode == 2
    assert (
        f"{path}:12:5: queue a.out -> b: 'a' writes records (seq: int64, value: float64) "
        "but 'b' reads (seq: int64, flag: int32)"
    ) in result.stderr
    assert "hint: connected persistent kernels must use the same record dtype" in result.stderr


def test_the_entry_and_the_field_must_agree(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        head=HEAD,
        body=f"""
        kernels:
          plain:
            entry: {H}:double
          marked:
            entry: tests.runtime.support:echo
            persistent: {{}}
          sink:
            entry: {H}:total
            persistent: {{}}
          after:
            entry: tests.runtime.support:echo
        queues:
          - from: sink
            to: after
        """,
    )
    result = validate("--import", path)
    assert result.returncode == 2
    err = result.stderr
    assert "kernel 'plain': 'tests.persistent.handlers:double' is a @persistent_kernel, but" in err
    assert "hint: add `persistent: {}`" in err
    assert "kernel 'marked' is marked `persistent:` but 'tests.runtime.support:echo' is an" in err
    assert "kernel 'sink' is a persistent sink (it writes no records), so it cannot feed" in err


# -- running ------------------------------------------------------------------------------


@pytest.fixture
def ringctl(tmp_path: Path) -> Iterator[Ringctl]:
    yield from ringctl_for(tmp_path)


def test_the_checked_in_topology_passes_its_smoke(ringctl: Ringctl) -> None:
    result = ringctl("smoke", REPO / "topologies" / "sensor-records.yaml", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout


def metric(cli: Ringctl, kernel: str, name: str) -> int:
    return int(cli.kernel("live", kernel)["metrics"][name])


def test_up_ps_pause_resume_down_with_persistent_kernels(tmp_path: Path, ringctl: Ringctl) -> None:
    path = write(
        tmp_path,
        f"""
        version: 1
        name: live
        python_path: ["{REPO}"]
        kernels:
          readings:
            entry: kernels.records_pipeline:readings
            params: {{channels: 4, batch: 64, batches: null, rate: 20000}}
          ewma_z:
            entry: kernels.records_pipeline:ewma_z
            persistent: {{ring: 1024}}
          flag:
            entry: kernels.records_pipeline:flag
            persistent: {{}}
            params: {{threshold: 0.5}}
          alert_log:
            entry: kernels.records_pipeline:alert_log
        queues:
          - {{from: readings, to: ewma_z}}
          - {{from: ewma_z, to: flag}}
          - {{from: flag, to: alert_log}}
        """,
    )
    assert ringctl.up_detached(path) == "live"
    pid = ringctl.pid_of("live")
    wait_for(lambda: metric(ringctl, "flag", "records_in") > 1000, timeout=60, what="records")
    kernel = ringctl.kernel("live", "ewma_z")
    assert kernel["state"] == "ACTIVE" and kernel["metrics"]["persistent"] is True
    beat = metric(ringctl, "ewma_z", "heartbeat")
    wait_for(lambda: metric(ringctl, "ewma_z", "heartbeat") > beat, what="heartbeat moves")
    assert ringctl.kernel("live", "ewma_z")["metrics"]["stalled"] is False

    pause = ringctl("pause", "live", "ewma_z", "flag")
    assert pause.returncode == 0, pause.stderr
    frozen = metric(ringctl, "ewma_z", "records_in")
    # Paused: the loop runs (its heartbeat moves) and handles nothing.
    beat = metric(ringctl, "ewma_z", "heartbeat")
    wait_for(lambda: metric(ringctl, "ewma_z", "heartbeat") > beat, what="heartbeat while paused")
    assert metric(ringctl, "ewma_z", "records_in") == frozen

    assert ringctl("resume", "live", "ewma_z", "flag").returncode == 0
    wait_for(lambda: metric(ringctl, "ewma_z", "records_in") > frozen, what="records again")
    down = ringctl("down", "live", timeout=120)
    assert down.returncode == 0, down.stderr
    assert not list(Path("/dev/shm").glob(f"ringctl-live-{pid}-*"))  # shared memory freed


def test_the_ray_engine_is_refused_before_anything_runs(ringctl: Ringctl) -> None:
    result = ringctl("up", "--engine", "ray", REPO / "topologies" / "sensor-records.yaml")
    assert result.returncode == 2
    assert "kernel 'ewma_z': persistent kernels run on the local engine only, not on ray" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_kill_9_of_the_supervisor_takes_the_worker_and_its_memory_with_it(
    tmp_path: Path, ringctl: Ringctl
) -> None:
    path = write(
        tmp_path,
        f"""
        version: 1
        name: orphan
        python_path: ["{REPO}"]
        kernels:
          readings:
            entry: kernels.records_pipeline:readings
            params: {{channels: 2, batch: 64, batches: null, rate: 5000}}
          ewma_z:
            entry: kernels.records_pipeline:ewma_z
            persistent: {{}}
          alert_log:
            entry: kernels.records_pipeline:alert_log
        queues:
          - {{from: readings, to: ewma_z}}
          - {{from: ewma_z, to: alert_log}}
        """,
    )
    assert ringctl.up_detached(path) == "orphan"
    pid = ringctl.pid_of("orphan")
    worker = wait_for(lambda: children(pid), timeout=60, what="the worker process")[0]
    assert b"ringctl.engine.local.persistent\x00" in Path(f"/proc/{worker}/cmdline").read_bytes()
    assert list(Path("/dev/shm").glob(f"ringctl-orphan-{pid}-*"))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{worker}").exists() or _zombie(worker), what="worker")
    wait_for(lambda: not list(Path("/dev/shm").glob(f"ringctl-orphan-{pid}-*")), what="memory")


def test_kill_9_of_the_supervisor_during_launch_leaves_no_memory_behind(
    tmp_path: Path, ringctl: Ringctl
) -> None:
    path = write(
        tmp_path,
        f"""
        version: 1
        name: midlaunch
        python_path: ["{REPO}"]
        kernels:
          k:
            entry: tests.persistent.slow_handlers:copy
            persistent: {{}}
        """,
    )
    up = ringctl.spawn("up", path)
    worker = wait_for(lambda: children(up.pid), timeout=60, what="the worker process")[0]
    memory = wait_for(lambda: list(Path("/dev/shm").glob(f"ringctl-midlaunch-{up.pid}-*")))
    os.kill(up.pid, signal.SIGKILL)  # while the worker still imports and compiles the kernel
    up.wait(timeout=10)
    wait_for(lambda: not Path(f"/proc/{worker}").exists() or _zombie(worker), timeout=60)
    leaked = [m for m in memory if m.exists()]
    for m in leaked:
        m.unlink()
    assert not leaked, "the shared memory outlived the supervisor and its worker"


def test_ctrl_c_in_the_terminal_drains_persistent_kernels(tmp_path: Path, ringctl: Ringctl) -> None:
    path = faulty_pipeline(tmp_path, "ctrlc", "double", "{messages: null, pause: 0.005}")
    # A terminal sends SIGINT to its foreground process group: the supervisor and the
    # worker process it started.
    up = subprocess.Popen(
        ringctl.argv("up", path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=ringctl.env,
        start_new_session=True,
    )
    try:

        def flowing() -> bool:
            ps = ringctl("ps", "ctrlc", "--json")
            if ps.returncode != 0:  # not up yet
                return False
            k = [k for k in json.loads(ps.stdout)["kernels"] if k["id"] == "k"]
            return bool(k) and int(k[0]["metrics"].get("records_in", 0)) > 500

        wait_for(flowing, timeout=60, what="records")
        os.killpg(up.pid, signal.SIGINT)
        out, _ = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
    assert up.returncode == 130, out
    assert "exited unexpectedly" not in out and "failed" not in out
    accepted, rest = totals(out)
    assert accepted == rest["delivered"], out


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_graph_marks_persistent_kernels_and_ring_to_ring_queues() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ringctl.cli", "graph", "topologies/sensor-records.yaml"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "ewma_z     kernels.records_pipeline:ewma_z  [cpu, persistent, ring 16384]" in (
        result.stdout
    )
    assert "ewma_z.out → flag      ring to ring (no Python in between)" in result.stdout
    assert "readings.out → ewma_z  capacity 16, block" in result.stdout


def faulty_pipeline(tmp_path: Path, name: str, handler: str, source: str) -> Path:
    """``record_source -> handler (persistent, a ring of 8) -> record_sink``."""
    return write(
        tmp_path,
        f"""
        version: 1
        name: {name}
        python_path: ["{REPO}"]
        kernels:
          src:
            entry: {H}:record_source
            params: {source}
          k:
            entry: {H}:{handler}
            persistent: {{ring: 8, spin_us: 20}}
          sink:
            entry: {H}:record_sink
        queues:
          - {{from: src, to: k}}
          - {{from: k, to: sink}}
        """,
    )


def test_a_handler_that_raises_fails_the_run_and_the_records_add_up(
    tmp_path: Path, ringctl: Ringctl
) -> None:
    # A message of 100 records into a ring of 8: when the handler raises on record 50,
    # the rest of that message is still in the bridge, waiting for room in the ring.
    path = faulty_pipeline(
        tmp_path, "raises", "fails_on_negative", "{messages: 3, value_at: 50, value: -1.0}"
    )
    result = ringctl("up", path, timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "kernel 'k' failed: PersistentFailed: ValueError: negative reading" in out
    assert "accounting law violated" not in out
    accepted, rest = totals(out)
    assert accepted == sum(rest.values()) and rest["lost"] > 0, out


def test_a_persistent_kernel_that_fails_for_good_does_not_hold_up_the_one_feeding_it(
    tmp_path: Path, ringctl: Ringctl
) -> None:
    # p1 feeds p2 ring to ring (rings of 8); p2 raises on record 2000 of 5000. p1 must
    # drain its input at once, discarding (and counting) what p2 will never read, not
    # wait for room until down force-stops it with thousands of records left.
    path = write(
        tmp_path,
        f"""
        version: 1
        name: gone
        python_path: ["{REPO}"]
        kernels:
          src:
            entry: {H}:record_source
            params: {{messages: 50, value_at: 2000, value: -1.0}}
          p1:
            entry: {H}:double
            persistent: {{ring: 8, spin_us: 20}}
          p2:
            entry: {H}:fails_on_negative
            persistent: {{ring: 8, spin_us: 20}}
          sink:
            entry: {H}:record_sink
        queues:
          - {{from: src, to: p1}}
          - {{from: p1, to: p2}}
          - {{from: p2, to: sink}}
        """,
    )
    result = ringctl("up", path, "--no-dashboard", timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "kernel 'p2' failed: PersistentFailed: ValueError: negative reading" in out
    assert "force-stopped" not in out and "accounting law violated" not in out
    accepted, rest = totals(out)
    assert accepted == sum(rest.values()), out
    assert rest["left"] == 0 and rest["lost"] >= 5000 - 2000, out
    p1 = next(line for line in out.splitlines() if line.strip().startswith("p1 "))
    assert "records_in=5000" in p1, out


def totals(out: str) -> tuple[int, dict[str, int]]:
    """The run's last accounting line: ``accepted N = delivered N + ... + queued N``."""
    line = next(x for x in reversed(out.splitlines()) if x.strip().startswith("accounting:"))
    words = line.split(":", 1)[1].split("(")[0].replace("!=", "+").replace("=", "+").split("+")
    terms = {w.split()[0]: int(w.split()[1]) for w in words}
    return terms.pop("accepted"), terms


def test_restart_and_scale_of_a_persistent_kernel(tmp_path: Path, ringctl: Ringctl) -> None:
    path = faulty_pipeline(tmp_path, "again", "double", "{messages: null, pause: 0.005}")
    assert ringctl.up_detached(path) == "again"

    def records_in() -> int:
        return int(ringctl.kernel("again", "k")["metrics"]["records_in"])

    wait_for(lambda: records_in() > 500, timeout=60, what="records")
    restart = ringctl("restart", "again", "k")
    assert restart.returncode == 0, restart.stdout + restart.stderr
    after = records_in()
    wait_for(lambda: records_in() > after + 500, what="records after the restart")
    k = ringctl.kernel("again", "k")
    assert (k["state"], k["restarts"]) == ("ACTIVE", 1)

    assert ringctl("pause", "again", "k").returncode == 0
    assert ringctl("restart", "again", "k").returncode == 0  # a paused kernel stays paused
    assert ringctl.kernel("again", "k")["state"] == "DEACTIVATED"
    assert ringctl("resume", "again", "k").returncode == 0
    after = records_in()
    wait_for(lambda: records_in() > after + 500, what="records after resume")

    scale = ringctl("scale", "again", "k=2")
    assert scale.returncode == 2
    assert "k is a persistent kernel: one compiled loop reads its ring, so it runs as one" in (
        scale.stderr
    )
    assert "hint: it keeps running as 1" in scale.stderr
    assert "Traceback" not in scale.stderr
    down = ringctl("down", "again", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr


def test_launching_a_persistent_kernel_does_not_hold_the_event_loop(
    tmp_path: Path, ringctl: Ringctl
) -> None:
    # The first launch in a supervisor imports Numba and loads compiled code (a second):
    # a loop held that long is reported as a failure event, as a stuck kernel would be.
    path = faulty_pipeline(tmp_path, "quick", "double", "{messages: 3}")
    result = ringctl("up", path, timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "loop blocked" not in out


def test_a_shared_cache_folder_is_refused_before_anything_runs(
    tmp_path: Path, ringctl: Ringctl
) -> None:
    loops = tmp_path / "cache" / "loops"
    loops.mkdir(parents=True)
    loops.chmod(0o777)
    ringctl.env["RINGCTL_CACHE_DIR"] = str(tmp_path / "cache")
    result = ringctl("up", REPO / "topologies" / "sensor-records.yaml", "--no-dashboard")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: the cache folder {loops} can be written by other users" in result.stderr
    assert "Traceback" not in result.stderr and "phase 1" not in result.stderr


def test_tap_on_a_ring_between_persistent_kernels_is_refused_at_once(
    tmp_path: Path, ringctl: Ringctl
) -> None:
    path = write(
        tmp_path,
        f"""
        version: 1
        name: tapped
        python_path: ["{REPO}"]
        kernels:
          readings:
            entry: kernels.records_pipeline:readings
            params: {{channels: 4, batch: 64, batches: null, rate: 2000}}
          ewma_z:
            entry: kernels.records_pipeline:ewma_z
            persistent: {{}}
          flag:
            entry: kernels.records_pipeline:flag
            persistent: {{}}
            params: {{threshold: 0.5}}
          alert_log:
            entry: kernels.records_pipeline:alert_log
        queues:
          - {{from: readings, to: ewma_z}}
          - {{from: ewma_z, to: flag}}
          - {{from: flag, to: alert_log}}
        """,
    )
    assert ringctl.up_detached(path) == "tapped"
    try:
        refused = ringctl("tap", "tapped", "ewma_z", "-n", "1", timeout=20)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "ewma_z.out goes ring to ring into flag" in refused.stderr
        assert "so a tap has nothing to copy" in refused.stderr
        assert "hint: ringctl ps shows the records counters of ewma_z and flag" in refused.stderr
        assert "still waiting" not in refused.stderr
        # The host drains flag's output ring: that one is tapped as any port.
        tapped = ringctl("tap", "tapped", "flag.out", "-n", "1", "--json", timeout=60)
        assert tapped.returncode == 0, tapped.stdout + tapped.stderr
        assert json.loads(tapped.stdout.splitlines()[0])["kernel"] == "flag"
    finally:
        down = ringctl("down", "tapped", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr


BROKEN = """
import numpy as np

from ringctl.persistent import persistent_kernel

RECORD = np.dtype([("seq", np.int64), ("value", np.float64)])


async def source(ctx):
    await ctx.send(np.zeros(8, RECORD))


@persistent_kernel(input=RECORD, output=RECORD)
def smooth(rec, out, state):
    table = {"a": 1.0}
    out.seq = rec.seq
    out.value = table
    return 1
"""


def broken_pipeline(tmp_path: Path) -> tuple[Path, Path]:
    module = tmp_path / "mypipe.py"
    module.write_text(BROKEN)
    path = write(
        tmp_path,
        """
        version: 1
        name: broken
        kernels:
          source:
            entry: mypipe:source
          smooth:
            entry: mypipe:smooth
            persistent: {}
        queues:
          - {from: source, to: smooth}
        """,
    )
    return path, module


def test_a_handler_that_does_not_compile_is_named_at_its_line(
    tmp_path: Path, ringctl: Ringctl
) -> None:
    path, module = broken_pipeline(tmp_path)
    reason = f"{module}:17: Numba cannot compile smooth: Cannot cast DictType"
    checked = validate("--import", path)
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert f"{path}:7:12: kernel 'smooth': {reason}" in checked.stderr
    assert "Traceback" not in checked.stderr

    result = ringctl("up", path, "--no-dashboard", timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    error = next(x for x in result.stderr.splitlines() if x.startswith("error:"))
    assert error.startswith(f"error: launch of kernel 'smooth' failed: {reason}"), error
    hint = result.stderr.splitlines()[-1]
    assert hint.startswith("hint: fix the handler mypipe:smooth; `ringctl validate --import"), hint
    for noise in ("During: Pass", "set-up hook", "Traceback", "host.py"):
        assert noise not in result.stderr, result.stderr


def test_without_numba_a_persistent_kernel_is_one_line_and_a_hint(tmp_path: Path) -> None:
    path, _ = broken_pipeline(tmp_path)
    hidden = tmp_path / "hidden" / "numba"
    hidden.mkdir(parents=True)  # an import of numba fails, as where it is not installed
    (hidden / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'numba'\", name='numba')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(hidden.parent), "RINGCTL_STATE_DIR": str(tmp_path)}
    for command in ("validate", "up"):
        args = [command, "--import", path] if command == "validate" else [command, path]
        result = subprocess.run(
            [sys.executable, "-m", "ringctl.cli", *map(str, args)],
            capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"{path}:7:12: kernel 'smooth' needs Numba, which is not installed" in (
            result.stderr
        )
        assert "hint: persistent kernels need Numba: pip install 'ringctl[numba]'" in result.stderr
        assert "Traceback" not in result.stderr
