"""``resolve_entries``: one distinct, positioned error per way an entry can fail."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ringctl.kernel.ring import RingKernel
from ringctl.topology import TopologyError, load_topology, resolve_entries
from ringctl.topology.importer import EntryError, import_entry

HERE = Path(__file__).parent / "importing"


def test_entries_resolve_from_the_file_folder_and_python_path() -> None:
    before = list(sys.path)
    kernels = resolve_entries(load_topology(HERE / "ok.yaml"))
    assert sys.path == before, "sys.path must be restored"
    assert list(kernels) == ["count", "split", "plain", "relay"]
    assert all(isinstance(k, RingKernel) for k in kernels.values())
    assert kernels["split"].ports == ("evens", "odds")
    assert kernels["plain"].kernel_id == "plain"  # a plain async def takes the topology's id


def test_every_failure_is_reported_with_its_own_message() -> None:
    before = list(sys.path)
    with pytest.raises(TopologyError) as info:
        resolve_entries(load_topology(HERE / "bad.yaml"))
    assert sys.path == before
    got = [(d.line, d.column, d.message) for d in info.value.diagnostics]
    hints = [d.hint for d in info.value.diagnostics]
    folder = (HERE / "no_such_folder").resolve()
    assert got == [
        (3, 20, f"python_path entry 'no_such_folder' is not a folder (it resolves to {folder})"),
        (6, 12, "kernel 'missing': cannot import 'ringtest_nope': no module named 'ringtest_nope'"),
        (8, 12, "kernel 'typo': 'ringtest_demo' has no attribute 'countr'"),
        (
            10,
            12,
            "kernel 'number': 'ringtest_demo:NOT_A_KERNEL' is not a kernel (it is an int: 42)",
        ),
        (12, 12, "kernel 'sync': 'ringtest_demo:not_async' is a plain function, not a kernel"),
        (
            14,
            12,
            "kernel 'raises': importing 'ringtest_broken_import' failed: "
            "RuntimeError: boom at import",
        ),
        (
            16,
            12,
            "kernel 'needs': importing 'ringtest_needs_dep' failed: it imports "
            "'ringtest_not_installed_anywhere', which is not installed",
        ),
        (20, 14, "kernels.count.params.count must be >= 0; got -1"),
        (21, 7, "unknown field 'steps' in kernels.count.params"),
        (28, 12, "kernel 'split' has no output port 'out' (its ports: evens, odds)"),
        (29, 12, "kernel 'split' has no output port 'odd' (its ports: evens, odds)"),
    ]
    assert hints[1] is not None and hints[1].startswith("did you mean 'ringtest_demo'? searched: ")
    assert "(python_path 'lib')" in hints[1] and "(the current folder)" in hints[1]
    assert hints[2] == "did you mean 'counter'?"
    assert hints[4] is not None and hints[4].startswith("did you forget 'async'?")
    assert hints[5] is not None and "ringtest_broken_import.py:1" in hints[5]
    assert hints[8] == "did you mean 'step'?"
    assert hints[10] == "did you mean `from: split.odds`?"


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ("no_colon_here", "is not `module:attribute`"),
        ("json:", "is not `module:attribute`"),
        ("json:nope", "'json' has no attribute 'nope'"),
        ("ringtest_surely_missing_module:x", "no module named 'ringtest_surely_missing_module'"),
        ("json.nope:x", "no module named 'json.nope'"),
    ],
)
def test_import_entry_errors(entry: str, words: str) -> None:
    with pytest.raises(EntryError) as info:
        import_entry(entry)
    assert words in info.value.message


def test_import_entry_walks_dotted_attributes() -> None:
    assert import_entry("os.path:join.__name__") == "join"
