"""The pydantic models: defaults, effective values, names, and the JSON Schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import errors, load

from ringctl.topology import Topology, topology_json_schema

MINIMAL = "version: 1\nname: t\nkernels:\n  a: {entry: 'm:f'}\n"


def test_defaults_apply_where_a_queue_or_kernel_says_nothing(tmp_path: Path) -> None:
    topology = load(
        tmp_path,
        """
        version: 1
        name: defaults
        defaults:
          queue: {capacity: 7, backpressure: drop_newest}
          backend: auto
        kernels:
          a: {entry: "m:f", backend: cuda}
          b: {entry: "m:g"}
        queues:
          - {from: a, to: b}
          - {from: a.extra, to: b, capacity: 3, backpressure: reject}
        """,
    )
    first, second = topology.queues
    assert (first.effective_capacity, first.effective_backpressure) == (7, "drop_newest")
    assert (second.effective_capacity, second.effective_backpressure) == (3, "reject")
    assert (first.producer, first.port, first.consumer) == ("a", "out", "b")
    assert second.label == "a.extra -> b"
    assert topology.kernels["a"].effective_backend == "cuda"
    assert topology.kernels["b"].effective_backend == "auto"
    assert topology.kernels["b"].kernel_id == "b"
    assert topology.source_kernels == ["a"]
    assert topology.inbound("b") == [first, second]


def test_built_in_defaults(tmp_path: Path) -> None:
    topology = load(tmp_path, MINIMAL + "queues: []\n")
    assert topology.engine == "local"
    assert topology.defaults.queue.capacity == 1024
    assert topology.defaults.queue.backpressure == "block"
    assert topology.defaults.backend == "cpu"
    spec = topology.kernels["a"]
    assert (spec.replicas, spec.restart.policy, spec.restart.max_restarts) == (1, "never", 3)
    assert spec.restart.backoff == 0.5
    assert topology.smoke is None


def test_kernel_ids_allow_underscore_but_names_do_not(tmp_path: Path) -> None:
    load(tmp_path, "version: 1\nname: a-1\nkernels:\n  a_1-b: {entry: 'm:f'}\n")
    assert errors(tmp_path, "version: 1\nname: a_1\nkernels:\n  A: {entry: 'm:f'}\n") == [
        "2:7: name 'a_1' is not valid",
        "4:3: kernel id 'A' is not valid",
    ]


def test_yes_no_on_off_are_strings(tmp_path: Path) -> None:
    topology = load(
        tmp_path,
        "version: 1\nname: t\nkernels:\n  on: {entry: 'm:f'}\n  no: {entry: 'm:g'}\n"
        "queues:\n  - {from: on, to: no, feedback: false}\n",
    )
    assert list(topology.kernels) == ["on", "no"]
    assert topology.queues[0].label == "on.out -> no"


def test_numbers_may_come_from_the_environment(tmp_path: Path) -> None:
    text = MINIMAL + "defaults:\n  queue: {capacity: '${CAP:-16}'}\n"
    assert load(tmp_path, text).defaults.queue.capacity == 16
    assert load(tmp_path, text, env={"CAP": "64"}).defaults.queue.capacity == 64
    assert errors(tmp_path, text, env={"CAP": "lots"}) == [
        "6:21: defaults.queue.capacity must be an integer; got 'lots'"
    ]


def test_a_newer_version_says_what_this_ringctl_reads(tmp_path: Path) -> None:
    assert errors(tmp_path, MINIMAL.replace("version: 1", "version: 3")) == [
        "1:10: version 3 is not one this ringctl reads (it reads version 1)"
    ]


def test_built_in_code_without_a_file() -> None:
    topology = Topology.model_validate(
        {"version": 1, "name": "code", "kernels": {"a": {"entry": "m:f"}}}
    )
    assert topology.source_path is None
    assert topology.source_map is None


def _walk_models(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    models = {"Topology": schema, **schema["$defs"]}
    return [
        (model, field, prop)
        for model, body in models.items()
        for field, prop in body.get("properties", {}).items()
    ]


def test_json_schema_describes_every_field_and_forbids_unknown_ones() -> None:
    schema = topology_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "ringctl topology"
    for model, field, prop in _walk_models(schema):
        assert prop.get("description"), f"{model}.{field} has no description"
    for body in [schema, *schema["$defs"].values()]:
        assert body["additionalProperties"] is False
    edge = schema["$defs"]["Edge"]
    assert "from" in edge["properties"] and "from_" not in edge["properties"]
    assert edge["properties"]["capacity"]["anyOf"][0]["minimum"] == 1
    assert schema["properties"]["version"]["const"] == 1


@pytest.mark.parametrize("bad", ["true", "1.5", "'x'"])
def test_capacity_must_be_a_whole_number(tmp_path: Path, bad: str) -> None:
    (message,) = errors(tmp_path, MINIMAL + f"defaults:\n  queue: {{capacity: {bad}}}\n")
    assert message.startswith("6:21: defaults.queue.capacity must be")
