"""Kernel output capture: prints, logs and tracebacks, each tagged with kernel and replica."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from ringctl import KernelContext, RingKernelRuntime, ring_kernel
from ringctl.engine.local.output import KernelLog, OutputRecord, capture, read_records
from ringctl.exceptions import KernelLaunchError


async def test_prints_logs_and_tracebacks_are_tagged_and_the_rest_passes_through(
    runtime: RingKernelRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    records: list[OutputRecord] = []

    async def chatty(ctx: KernelContext) -> None:
        print(f"hello from {ctx.replica}", end="")  # finished by the next print
        print(" and more")
        await asyncio.to_thread(print, "from a thread")
        logging.getLogger("chatty").info("info line %d", ctx.replica)
        sys.stderr.write("to stderr\n")
        await asyncio.sleep(0)
        if ctx.replica == 1:
            raise RuntimeError("replica 1 gives up")

    with capture(records.append):
        print("the runtime speaking")
        await runtime.launch("chatty", chatty, replicas=2)
        await runtime.activate("chatty")
        await runtime.wait_finished("chatty", timeout=5.0)
    got = {(r.kernel, r.replica, r.stream, r.text) for r in records}
    for replica in (0, 1):
        assert ("chatty", replica, "stdout", f"hello from {replica} and more") in got
        assert ("chatty", replica, "stdout", "from a thread") in got
        assert ("chatty", replica, "log", f"chatty: info line {replica}") in got
        assert ("chatty", replica, "stderr", "to stderr") in got
    tracebacks = [r for r in records if r.stream == "traceback"]
    assert len(tracebacks) == 1 and tracebacks[0].replica == 1
    assert "RuntimeError: replica 1 gives up" in tracebacks[0].text
    assert 'test_output.py", line' in tracebacks[0].text
    assert "the runtime speaking" in capsys.readouterr().out  # not a kernel's: untouched
    assert sys.stdout is not None and not any(r.text == "the runtime speaking" for r in records)


async def test_a_failing_setup_hook_says_where_and_leaves_its_traceback(
    runtime: RingKernelRuntime,
) -> None:
    records: list[OutputRecord] = []

    def setup(ctx: KernelContext) -> None:
        print("opening the device")
        raise OSError("no such device: /dev/ring0")

    @ring_kernel(kernel_id="needs_device", setup=setup)
    async def needs_device(ctx: KernelContext) -> None:
        return None

    with capture(records.append), pytest.raises(KernelLaunchError) as err:
        await runtime.launch("needs_device", needs_device)
    assert "OSError: no such device: /dev/ring0 (at " in str(err.value)
    assert "test_output.py:" in str(err.value)
    streams = [(r.stream, r.text.splitlines()[-1]) for r in records]
    assert streams == [
        ("stdout", "opening the device"),
        ("traceback", "OSError: no such device: /dev/ring0"),
    ]


async def test_echo_shows_kernel_output_as_it_was_printed(runtime: RingKernelRuntime) -> None:
    echo = io.StringIO()
    records: list[OutputRecord] = []

    async def hello(ctx: KernelContext) -> None:
        print("hi")

    with capture(records.append, echo=echo):
        await runtime.launch("hello", hello)
        await runtime.activate("hello")
        await runtime.wait_finished("hello", timeout=5.0)
    assert echo.getvalue() == "hi\n"
    assert [r.text for r in records] == ["hi"]


def test_the_kernel_log_is_json_lines_and_rotates_instead_of_growing(tmp_path: Path) -> None:
    path = tmp_path / "t.kernels.jsonl"
    log = KernelLog(path, max_bytes=2_000)
    for i in range(100):
        log(OutputRecord(1000.0 + i, "k", 0, "stdout", f"line {i}"))
    log.close()
    assert path.stat().st_size <= 2_000
    assert (tmp_path / "t.kernels.jsonl.1").stat().st_size <= 2_000
    texts = [r["text"] for r in read_records(path)]
    assert texts[-1] == "line 99" and texts == sorted(texts, key=lambda t: int(t.split()[1]))
    with path.open("a") as fh:
        fh.write('{"kernel": "k", "te')  # a record cut short by a crash
    assert read_records(path)[-1]["text"] == "line 99"
    assert json.loads(path.read_text().splitlines()[0])["stream"] == "stdout"
    KernelLog(path).close()  # a new run starts afresh
    assert read_records(path) == []


def test_capture_restores_streams_and_logging() -> None:
    out, err, level = sys.stdout, sys.stderr, logging.getLogger().level
    with capture(lambda r: None):
        assert sys.stdout is not out
    assert (sys.stdout, sys.stderr, logging.getLogger().level) == (out, err, level)


def test_a_follower_reads_every_record_once_across_rotations_and_counts_what_it_missed(
    tmp_path: Path,
) -> None:
    from ringctl.engine.local.output import LogFollower

    path = tmp_path / "t.kernels.jsonl"
    log = KernelLog(path, max_bytes=2_000)
    n = 0

    def write(lines: int) -> None:
        nonlocal n
        for _ in range(lines):
            n += 1
            log(OutputRecord(1000.0 + n, "k", 0, "stdout", f"line {n:04d}"))

    def texts(records: list[dict[str, Any]]) -> list[int]:
        return [int(r["text"][5:]) for r in records]

    write(50)  # a few rotations before the follower starts: those are simply gone
    follower = LogFollower(path)
    seen = texts(follower.backlog())
    assert seen[-1] == 50 and seen == list(range(seen[0], 51))
    for burst in (1, 7, 30, 3):  # each under a file's worth: nothing may be lost
        write(burst)
        seen += texts(follower.poll())
        assert follower.missed == 0
    assert seen == list(range(seen[0], n + 1))
    before = n
    write(200)  # several files' worth between two reads: the follower says how many
    late = texts(follower.poll())
    # The rest of the file it held, then the newest two files; what was between them
    # is counted, never shown out of order or twice.
    assert late[0] == before + 1 and late == sorted(set(late)) and late[-1] == n
    assert follower.missed == n - before - len(late) > 0
    write(5)
    assert texts(follower.poll()) == list(range(n - 4, n + 1))
    log.close()
    follower.close()
