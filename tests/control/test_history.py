"""The finished-runs history behind ``ringctl ps -a``: bounded, atomic, tolerant."""

from __future__ import annotations

import threading
from pathlib import Path

from ringctl.control.history import read_history, record_run
from ringctl.control.paths import StateDir


def test_history_keeps_the_newest_entries_only(tmp_path: Path) -> None:
    directory = StateDir(tmp_path)
    for i in range(12):
        record_run(directory, {"name": f"run-{i}", "exit_code": 0}, keep=5)
    assert [e["name"] for e in read_history(directory)] == [f"run-{i}" for i in range(7, 12)]


def test_writers_racing_each_other_all_get_their_line_in(tmp_path: Path) -> None:
    directory = StateDir(tmp_path)
    threads = [
        threading.Thread(target=record_run, args=(directory, {"name": f"t{i}"})) for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e["name"] for e in read_history(directory)) == sorted(f"t{i}" for i in range(20))


def test_a_damaged_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    directory = StateDir(tmp_path)
    record_run(directory, {"name": "good"})
    with (tmp_path / "history.jsonl").open("a") as fh:
        fh.write('{"name": "cut sh\n[1, 2]\n')
    record_run(directory, {"name": "after"})
    assert [e["name"] for e in read_history(directory)] == ["good", "after"]
    assert read_history(StateDir(tmp_path / "missing")) == []
