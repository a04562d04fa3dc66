"""The YAML layer: positions, safety, interpolation, anchors."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import errors, load, write

from ringctl.topology import TopologyError, load_topology
from ringctl.topology.loader import interpolate, parse_yaml


@pytest.mark.parametrize(
    ("text", "env", "expanded"),
    [
        ("plain", {}, "plain"),
        ("${A}", {"A": "x"}, "x"),
        ("a-${A}-b", {"A": "x"}, "a-x-b"),
        ("${A:-dflt}", {}, "dflt"),
        ("${A:-dflt}", {"A": ""}, "dflt"),  # `:-` also covers set-but-empty, as in a shell
        ("${A:-}", {}, ""),
        ("${A}", {"A": ""}, ""),
        ("$${A}", {}, "${A}"),
        ("$A and $", {}, "$A and $"),
        ("${A}${B:-2}", {"A": "1"}, "12"),
    ],
)
def test_interpolation(text: str, env: dict[str, str], expanded: str) -> None:
    assert interpolate(text, env) == (expanded, [])


@pytest.mark.parametrize(
    ("text", "offset", "words"),
    [
        ("${MISSING}", 0, "environment variable MISSING is not set"),
        ("ab${1X}", 2, "'${1X}' is not a variable reference"),
        ("ab${X", 2, "unterminated '${' in a string"),
    ],
)
def test_interpolation_errors(text: str, offset: int, words: str) -> None:
    _, problems = interpolate(text, {})
    assert [(o, m) for o, m, _ in problems] == [(offset, words)]


def test_python_tags_are_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = (
        "version: 1\nname: t\nkernels:\n"
        f"  a: {{entry: !!python/object/apply:os.system ['touch {marker}']}}\n"
        f"  b: {{entry: !!python/name:os.system , params: !!python/object:builtins.dict {{}}}}\n"
    )
    result = errors(tmp_path, text)
    assert not marker.exists()
    assert [line.split(": ", 1)[0] for line in result] == ["4:14", "5:14", "5:48"]
    assert all("never executed" in line for line in result)


def test_duplicate_keys_in_nested_mappings_and_lists(tmp_path: Path) -> None:
    text = (
        "version: 1\nname: t\nkernels:\n  a: {entry: 'm:f'}\nqueues:\n  - {from: a, to: a, to: a}\n"
    )
    assert errors(tmp_path, text) == ["6:22: duplicate key 'to' (first at line 6)"]


def test_anchors_merges_and_x_keys(tmp_path: Path) -> None:
    topology = load(
        tmp_path,
        """
        version: 1
        name: t
        x-kernel: &kernel {entry: "m:f", replicas: 2}
        kernels:
          a: *kernel
          b:
            <<: *kernel
            replicas: 5
        """,
    )
    assert topology.kernels["a"].replicas == 2
    assert topology.kernels["b"].replicas == 5


def test_errors_inside_a_merged_mapping_point_at_the_anchor(tmp_path: Path) -> None:
    text = """
        version: 1
        name: t
        x-base: &base {entry: "m:f", replica: 2}
        kernels:
          a:
            <<: *base
        """
    (message,) = errors(tmp_path, text)
    assert message == "3:30: unknown field 'replica' in kernels.a"


def test_billion_laughs_stays_small(tmp_path: Path) -> None:
    lines = ["version: 1", "name: t", "x-0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 12):
        lines.append(f"x-{i}: &l{i} [*l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}, *l{i - 1}]")
    lines.append("kernels:\n  a: {entry: 'm:f', params: {laughs: *l11}}")
    topology = load(tmp_path, "\n".join(lines) + "\n")
    assert len(topology.kernels["a"].params["laughs"]) == 5


def test_recursive_alias_is_an_error(tmp_path: Path) -> None:
    text = "version: 1\nname: t\nkernels:\n  a: {entry: 'm:f', params: &p {self: *p}}\n"
    (message,) = errors(tmp_path, text)
    assert message.startswith("4:39: an alias refers to a node that contains it")


def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    text = (
        "version: 1\nname: t\nkernels:\n  a: {entry: 'm:f', params: {x: "
        + "[" * 5000
        + "]" * 5000
        + "}}\n"
    )
    try:
        load(tmp_path, text)
    except TopologyError as exc:
        assert all(d.line is not None for d in exc.diagnostics)


def test_positions_count_characters_not_bytes(tmp_path: Path) -> None:
    text = (
        "version: 1\nname: t\ndescription: «ünïcode»\nkernels:\n  a: {entry: 'm:f', replicas: 0}\n"
    )
    assert errors(tmp_path, text) == ["5:31: kernels.a.replicas must be >= 1; got 0"]


def test_parse_yaml_from_text() -> None:
    loaded = parse_yaml("a: [1, {b: c}]\n", "<text>")
    assert loaded.data == {"a": [1, {"b": "c"}]}
    assert loaded.source.position(("a", 1, "b")) == (1, 12)
    assert loaded.source.position(("a", 1, "b"), key=True) == (1, 9)
    assert loaded.source.position(("a", 7)) == (1, 4)  # the nearest existing ancestor


def test_env_defaults_to_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RINGCTL_TEST_NAME", "from-env")
    path = write(tmp_path, "version: 1\nname: ${RINGCTL_TEST_NAME}\nkernels: {a: {entry: 'm:f'}}\n")
    assert load_topology(path).name == "from-env"
