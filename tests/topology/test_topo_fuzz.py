"""Fuzzing the loader: whatever the bytes, a topology or positioned errors, never a traceback."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringctl.topology import Topology, TopologyError, load_topology
from ringctl.topology.loader import parse_yaml

SEED = (Path(__file__).parent / "valid" / "quickstart.yaml").read_text(encoding="utf-8")
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        topology = load_topology(path, env={})
    except TopologyError as exc:
        assert exc.diagnostics
        lines = data.count(b"\n") + 2
        for diagnostic in exc.diagnostics:
            assert diagnostic.message
            assert diagnostic.file == str(path)
            assert diagnostic.line is not None and 1 <= diagnostic.line <= lines
            assert diagnostic.column is not None and diagnostic.column >= 1
    else:
        assert isinstance(topology, Topology)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """The quickstart file with a few characters deleted, inserted or lines swapped."""
    text = SEED
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["delete", "insert", "swap", "dup"]))
        at = draw(st.integers(0, len(text)))
        if action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 8)) :]
        elif action == "insert":
            piece = draw(
                st.sampled_from(
                    [
                        ":",
                        "-",
                        " ",
                        "\n",
                        "\t",
                        "{",
                        "[",
                        "]",
                        "}",
                        "&a",
                        "*a",
                        "!!python/name:os.system",
                        "${X}",
                        "'",
                        '"',
                        "#",
                        "0",
                        "true",
                        "~",
                        "<<: ",
                        "? ",
                        "---\n",
                        "\x00",
                        "é",
                    ]
                )
                | st.text(max_size=5)
            )
            text = text[:at] + piece + text[at:]
        else:
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if action == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines.insert(j, lines[i])
            text = "\n".join(lines)
    return text.encode("utf-8", "surrogatepass")


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5000)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "version",
        "name",
        "kernels",
        "queues",
        "defaults",
        "smoke",
        "engine",
        "from",
        "to",
        "entry",
        "capacity",
        "replicas",
        "depends_on",
        "params",
        "x",
        "a",
        "b",
    ]
)
shaped = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=30,
)


@SETTINGS
@given(data=mutated())
def test_mutated_topologies(tmp_path: Path, data: bytes) -> None:
    check(tmp_path / "mutated.yaml", data)


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    check(tmp_path / "bytes.yaml", data)


@SETTINGS
@given(document=values | shaped)
def test_random_yaml_documents(tmp_path: Path, document: object) -> None:
    check(tmp_path / "doc.yaml", yaml.safe_dump(document, allow_unicode=True).encode("utf-8"))


@SETTINGS
@given(
    kernels=st.dictionaries(
        st.sampled_from(list("abcdef")),
        st.lists(st.sampled_from(list("abcdefg")), max_size=3),
        min_size=1,
        max_size=6,
    ),
    edges=st.lists(
        st.tuples(
            st.sampled_from(list("abcdefg")), st.sampled_from(list("abcdefg")), st.booleans()
        ),
        max_size=8,
    ),
)
def test_random_graphs(
    tmp_path: Path, kernels: dict[str, list[str]], edges: list[tuple[str, str, bool]]
) -> None:
    document = {
        "version": 1,
        "name": "g",
        "kernels": {k: {"entry": "m:f", "depends_on": deps} for k, deps in kernels.items()},
        "queues": [{"from": a, "to": b, "feedback": fb} for a, b, fb in edges],
    }
    path = tmp_path / "graph.yaml"
    check(path, yaml.safe_dump(document).encode())
    try:
        topology = load_topology(path, env={})
    except TopologyError:
        return
    from ringctl.topology import launch_order

    order = launch_order(topology)
    assert sorted(order) == sorted(kernels)
    for kernel_id, deps in kernels.items():
        for dep in deps:
            assert order.index(dep) < order.index(kernel_id)


plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=25,
)


@SETTINGS
@given(document=plain_values, share=st.booleans())
def test_loader_reads_what_pyyaml_reads(document: object, share: bool) -> None:
    # Differential check of the event-driven builder against PyYAML's own safe loader,
    # aliases included (a shared object is dumped once with an anchor).
    if share:
        document = {"first": document, "again": document, "list": [document]}
    text = yaml.safe_dump(document, allow_unicode=True)
    loaded = parse_yaml(text, "<doc>", env={})
    if "$" in text:  # interpolation is ours alone
        return
    assert not loaded.problems
    assert loaded.data == yaml.safe_load(text)
