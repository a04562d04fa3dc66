"""The broken-file corpus: every file under ``broken/`` ends with the diagnostics it must give.

Each expectation is pinned to the character: ``# LINE:COLUMN: message`` then, where one
is expected, ``#   hint: text``. A change of wording or position is a visible diff here.
Files that cannot carry comments (empty, binary) are built in the tests below.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ringctl.topology import Diagnostic, Topology, TopologyError, load_topology

HERE = Path(__file__).parent
BROKEN = sorted((HERE / "broken").glob("*.yaml"))
VALID = sorted((HERE / "valid").glob("*.yaml"))
MARK = "# --- expected diagnostics (checked by tests/topology/test_topo_corpus.py) ---"
ENV = {"SET": "1"}


def expected(path: Path) -> list[tuple[int, int, str, str | None]]:
    text = path.read_text(encoding="utf-8")
    assert MARK in text, f"{path.name} has no expectations block"
    out: list[tuple[int, int, str, str | None]] = []
    for line in text.split(MARK, 1)[1].splitlines():
        body = line.removeprefix("#").strip()
        if not body:
            continue
        if body.startswith("hint: "):
            line_no, column, message, _ = out[-1]
            out[-1] = (line_no, column, message, body.removeprefix("hint: "))
            continue
        position, message = body.split(": ", 1)
        line_no, column = position.split(":")
        out.append((int(line_no), int(column), message, None))
    return out


def diagnostics_of(path: Path) -> list[Diagnostic]:
    with pytest.raises(TopologyError) as info:
        load_topology(path, env=ENV)
    return list(info.value.diagnostics)


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_file_gives_exactly_its_expected_diagnostics(path: Path) -> None:
    got = [(d.line, d.column, d.message, d.hint) for d in diagnostics_of(path)]
    assert got == expected(path)
    for diagnostic in diagnostics_of(path):
        assert diagnostic.file == str(path)
        assert str(diagnostic).startswith(f"{path}:{diagnostic.line}:{diagnostic.column}: ")


@pytest.mark.parametrize("path", VALID, ids=[p.stem for p in VALID])
def test_valid_files_load(path: Path) -> None:
    topology = load_topology(path, env={})
    assert isinstance(topology, Topology)
    assert topology.source_path == path


def test_corpus_covers_the_issue_list() -> None:
    names = {p.stem for p in BROKEN}
    for must in (
        "duplicate_keys",
        "python_tag",
        "top_level_list",
        "top_level_scalar",
        "unknown_field_defaults_queue",
        "dependency_cycle",
        "queue_cycle",
        "unset_env",
        "out_of_range",
        "self_loop_and_duplicate_edge",
    ):
        assert must in names


def _only(path: Path) -> Diagnostic:
    (diagnostic,) = diagnostics_of(path)
    return diagnostic


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    d = _only(path)
    assert (d.line, d.column) == (1, 1)
    assert d.message.startswith("the file is empty")


def test_comments_only_counts_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "comments.yaml"
    path.write_text("# nothing here yet\n\n")
    assert _only(path).message.startswith("the file is empty")


def test_binary_garbage_with_nul_bytes(tmp_path: Path) -> None:
    path = tmp_path / "garbage.yaml"
    path.write_bytes(b"version: 1\n\x89PNG\x00\x01\x02\xff")
    d = _only(path)
    assert (d.line, d.column) == (2, 5)
    assert "not a text file" in d.message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("version: 1\nname: caf\xe9\n".encode("latin-1"))
    d = _only(path)
    assert (d.line, d.column) == (2, 10)
    assert d.message == "the file is not UTF-8 text (byte 0xe9 cannot be decoded)"
    assert d.hint == "save the file as UTF-8"


def test_control_characters(tmp_path: Path) -> None:
    path = tmp_path / "bell.yaml"
    path.write_text("version: 1\nname: a\x07b\n")
    d = _only(path)
    assert (d.line, d.column) == (2, 8)
    assert "control characters are not allowed" in d.message


def test_utf8_bom_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfversion: 1\nname: bom\nkernels: {a: {entry: 'm:f'}}\n")
    assert load_topology(path).name == "bom"


def test_missing_file_and_folder(tmp_path: Path) -> None:
    d = _only(tmp_path / "nope.yaml")
    assert (d.line, d.column, d.message) == (None, None, "no such file")
    assert str(d) == f"{tmp_path / 'nope.yaml'}: no such file"
    d = _only(tmp_path)
    assert d.message == "is a folder, not a topology file"


def test_error_message_lists_every_diagnostic() -> None:
    with pytest.raises(TopologyError) as info:
        load_topology(HERE / "broken" / "out_of_range.yaml")
    error = info.value
    assert error.exit_code == 2
    assert len(error.diagnostics) == 6
    assert error.message.count("\n") >= 5
    assert all(str(d) in error.message for d in error.diagnostics)
