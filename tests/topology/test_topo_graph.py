"""Launch order and the wiring checks, on tiny topologies."""

from __future__ import annotations

from pathlib import Path

from helpers import errors, load

from ringctl.topology import Edge, KernelSpec, Topology, launch_order
from ringctl.topology.graph import find_cycles


def kernels(*ids: str, deps: dict[str, list[str]] | None = None) -> str:
    deps = deps or {}
    lines = ["version: 1", "name: t", "kernels:"]
    for kernel_id in ids:
        extra = f", depends_on: {deps[kernel_id]}" if kernel_id in deps else ""
        lines.append(f"  {kernel_id}: {{entry: 'm:f'{extra}}}".replace("'", ""))
    return "\n".join(lines) + "\n"


def test_a_pipeline_launches_sink_first(tmp_path: Path) -> None:
    text = kernels("source", "square", "total") + (
        "queues:\n  - {from: source, to: square}\n  - {from: square, to: total}\n"
    )
    assert launch_order(load(tmp_path, text)) == ["total", "square", "source"]


def test_depends_on_wins_over_consumers_first(tmp_path: Path) -> None:
    # `sink` depends on `source`, so the source goes first despite feeding the sink.
    text = kernels("source", "sink", deps={"sink": ["source"]}) + (
        "queues:\n  - {from: source, to: sink}\n"
    )
    assert launch_order(load(tmp_path, text)) == ["source", "sink"]


def test_quickstart_order(tmp_path: Path) -> None:
    path = Path(__file__).parent / "valid" / "quickstart.yaml"
    topology = load(tmp_path, path.read_text())
    assert launch_order(topology) == ["store", "total", "square", "source"]


def test_ties_go_by_file_order(tmp_path: Path) -> None:
    assert launch_order(load(tmp_path, kernels("c", "a", "b"))) == ["c", "a", "b"]


def test_a_dependency_of_a_sink_is_launched_before_upstream_kernels(tmp_path: Path) -> None:
    # `db` sits at the top of its own pipeline (rank 2), but the sink `writer` needs it:
    # it inherits the sink's urgency and goes first, then the sink, then the producers.
    text = kernels("reader", "parse", "writer", "db", "db_feed", deps={"writer": ["db"]}) + (
        "queues:\n"
        "  - {from: reader, to: parse}\n"
        "  - {from: parse, to: writer}\n"
        "  - {from: db, to: db_feed}\n"
    )
    order = launch_order(load(tmp_path, text))
    assert order == ["db_feed", "db", "writer", "parse", "reader"]
    assert order.index("db") < order.index("writer")


def test_feedback_edges_do_not_reorder(tmp_path: Path) -> None:
    text = kernels("a", "b") + (
        "queues:\n  - {from: a, to: b}\n  - {from: b.retry, to: a, feedback: true}\n"
    )
    topology = load(tmp_path, text)
    assert launch_order(topology) == ["b", "a"]
    assert topology.source_kernels == ["a"]
    assert topology.sink_kernels == ["b"]


def test_launch_order_of_a_long_chain_does_not_recurse() -> None:
    ids = [f"k{i}" for i in range(5000)]
    topology = Topology(
        version=1,
        name="chain",
        kernels={
            k: KernelSpec(entry="m:f", depends_on=[ids[i - 1]] if i else [])
            for i, k in enumerate(ids)
        },
        queues=[Edge.model_validate({"from": ids[i], "to": ids[i + 1]}) for i in range(4999)],
    )
    order = launch_order(topology)
    assert order == ids  # depends_on (k0 first) wins over consumers-first everywhere


def test_dependency_cycle_is_named_in_order(tmp_path: Path) -> None:
    text = kernels(
        "alpha", "beta", "gamma", deps={"alpha": ["gamma"], "beta": ["alpha"], "gamma": ["beta"]}
    )
    assert errors(tmp_path, text) == ["4:36: dependency cycle: alpha -> gamma -> beta -> alpha"]


def test_two_separate_cycles_are_both_reported(tmp_path: Path) -> None:
    text = kernels("a", "b", "c", "d", deps={"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c"]})
    assert [e.split(": ", 1)[1] for e in errors(tmp_path, text)] == [
        "dependency cycle: a -> b -> a",
        "dependency cycle: c -> d -> c",
    ]


def test_queue_cycle_needs_a_feedback_edge(tmp_path: Path) -> None:
    base = kernels("a", "b", "c") + "queues:\n  - {from: a, to: b}\n  - {from: b, to: c}\n"
    assert errors(tmp_path, base + "  - {from: c, to: a}\n") == [
        "8:5: queue cycle: a -> b -> c -> a"
    ]
    # The feedback mark may sit on any edge of the loop.
    load(tmp_path, base + "  - {from: c, to: a, feedback: true}\n")
    marked_first = kernels("a", "b", "c") + (
        "queues:\n"
        "  - {from: a, to: b, feedback: true}\n"
        "  - {from: b, to: c}\n"
        "  - {from: c, to: a}\n"
    )
    load(tmp_path, marked_first)


def test_a_feedback_mark_elsewhere_does_not_excuse_a_cycle(tmp_path: Path) -> None:
    text = kernels("a", "b", "c") + (
        "queues:\n"
        "  - {from: a, to: b}\n"
        "  - {from: b, to: a}\n"
        "  - {from: b, to: c, feedback: true}\n"
    )
    assert errors(tmp_path, text) == ["8:5: queue cycle: a -> b -> a"]


def test_find_cycles_is_deterministic() -> None:
    successors = {"x": ["y"], "y": ["z", "x"], "z": ["x"]}
    assert find_cycles(["z", "y", "x"], successors) == [["z", "x", "y", "z"]]
    assert find_cycles(["x", "y", "z"], successors) == [["x", "y", "x"]]
    assert find_cycles(["a"], {"a": []}) == []
