"""The compiled schema and ``validate``'s fast path: faster than the models, never different."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, model_validator
from pydantic_core import SchemaValidator
from pydantic_core import ValidationError as CoreValidationError

from ringctl.topology import TopologyError, compiled, load_topology
from ringctl.topology.importer import find_entries
from ringctl.topology.loader import load_yaml
from ringctl.topology.quick import Summary
from ringctl.topology.quick import quick_validate as _quick
from ringctl.topology.schema import Topology

REPO = Path(__file__).resolve().parents[2]
TOPO = Path(__file__).parent
FILES = sorted(
    [
        *(REPO / "topologies").glob("*.yaml"),
        *(TOPO / "valid").glob("*.yaml"),
        *(TOPO / "broken").glob("*.yaml"),
        *(TOPO / "importing").glob("*.yaml"),
    ]
)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("RINGCTL_CACHE_DIR", str(folder))
    return folder


def quick_validate(path: Path) -> Summary | None:
    return _quick(load_yaml(path), path)


def full(path: Path) -> Summary | None:
    try:
        topology = load_topology(path)
        find_entries(topology)
    except TopologyError:
        return None
    return Summary(topology.name, len(topology.kernels), len(topology.queues), topology.engine)


def test_every_validator_of_the_models_compiles() -> None:
    schema = compiled.compile_schema()
    json.dumps(schema)  # plain data, nothing else
    SchemaValidator(json.loads(json.dumps(schema), object_hook=compiled._resolve))


def test_a_model_validator_without_a_twin_does_not_compile() -> None:
    class Sneaky(BaseModel):
        x: int = 0

        @model_validator(mode="after")
        def _never_seen(self) -> Sneaky:
            return self

    with pytest.raises(compiled.CompileError, match="no twin"):
        compiled._plain(Sneaky.__pydantic_core_schema__)


def test_a_cold_cache_takes_the_models_and_a_stored_one_answers(cache: Path) -> None:
    path = REPO / "topologies" / "quickstart.yaml"
    assert quick_validate(path) is None  # nothing cached yet
    assert compiled.store() and compiled.cached()
    assert quick_validate(path) == full(path) == Summary("quickstart", 3, 2, "local")


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_fast_path_passes_only_files_the_models_pass(cache: Path, path: Path) -> None:
    compiled.store()
    quick = quick_validate(path)
    if quick is not None:
        assert quick == full(path)
    elif path.parent.name == "topologies":
        raise AssertionError(f"{path} should pass the fast path")


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"not json",
        b'{"type": "any"}',  # a schema, but not this one: the view cannot be built
        b'{"type": "typed-dict", "fields": {}, "function": {"$rule": "os.system"}}',
        b'{"$rule": "not_bool", "extra": 1}',
        b"\xff\xfe",
    ],
)
def test_a_damaged_cache_costs_speed_not_correctness(cache: Path, damage: bytes) -> None:
    compiled.store()
    (cached,) = cache.glob("topology-schema-*.json")
    cached.write_bytes(damage)
    broken = TOPO / "broken" / "dependency_cycle.yaml"
    result = quick_validate(broken)
    # Whatever the cache says, a file with problems never passes: the graph checks run
    # on the plain view, and a schema that lets garbage through fails to build the view.
    assert result is None or full(broken) is not None


def test_a_cache_written_for_another_installation_is_not_read(cache: Path) -> None:
    compiled.store()
    (cached,) = cache.glob("topology-schema-*.json")
    stored = json.loads(cached.read_text())
    cached.write_text(json.dumps({**stored, "key": stored["key"] + "-elsewhere"}))
    assert compiled.load_validator() is None
    assert quick_validate(REPO / "topologies" / "quickstart.yaml") is None


def test_an_unwritable_cache_folder_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("RINGCTL_CACHE_DIR", str(blocker / "cache"))
    assert compiled.store() is False
    assert quick_validate(REPO / "topologies" / "quickstart.yaml") is None


def test_the_cache_key_follows_pydantic_core(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pydantic_core

    assert compiled.store()
    monkeypatch.setattr(pydantic_core, "__version__", pydantic_core.__version__ + ".other")
    assert not compiled.cached()
    assert compiled.store()
    # Both stay: installations that share a cache folder do not delete each other's.
    assert len(list(cache.glob("topology-schema-*.json"))) == 2


def test_only_the_newest_schemas_are_kept(cache: Path) -> None:
    cache.mkdir()
    for i in range(6):
        old = cache / f"topology-schema-{i:016x}.json"
        old.write_text("{}")
        os.utime(old, (1_000_000 + i, 1_000_000 + i))
    stale_tmp = cache / ".tmp-left-by-a-kill"
    stale_tmp.write_text("")
    os.utime(stale_tmp, (1_000_000, 1_000_000))
    assert compiled.store()
    kept = sorted(p.name for p in cache.iterdir())
    assert len(kept) == 4 and not stale_tmp.exists()
    assert compiled.cached()  # this installation's, the newest, is among them
    assert "topology-schema-0000000000000005.json" in kept


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    probe = (
        "import sys\n"
        "from ringctl.cli import main\n"
        "try:\n    main()\n"
        "finally:\n"
        "    print('PYDANTIC' if 'pydantic' in sys.modules else 'LEAN', file=sys.stderr)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", probe, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )


def test_validate_fills_the_cache_then_starts_without_pydantic(tmp_path: Path) -> None:
    env = {**os.environ, "RINGCTL_CACHE_DIR": str(tmp_path / "cache")}
    first = _cli(env, "validate", "topologies/quickstart.yaml")
    assert first.returncode == 0, first.stderr
    assert first.stderr.strip() == "PYDANTIC"
    second = _cli(env, "validate", "topologies/quickstart.yaml", "topologies/sensor-records.yaml")
    assert second.returncode == 0, second.stderr
    assert second.stderr.strip() == "LEAN"
    assert second.stdout.splitlines()[0] == first.stdout.splitlines()[0]
    # A damaged cache is written anew by the next run that needs the models.
    (cached,) = (tmp_path / "cache").glob("topology-schema-*.json")
    cached.write_text("{damaged")
    assert _cli(env, "validate", "topologies/quickstart.yaml").stderr.strip() == "PYDANTIC"
    assert _cli(env, "validate", "topologies/quickstart.yaml").stderr.strip() == "LEAN"
    # A file with a problem is worded by the models, exactly as on a cold start.
    broken = str(TOPO / "broken" / "dependency_cycle.yaml")
    cold = _cli({**env, "RINGCTL_CACHE_DIR": str(tmp_path / "other")}, "validate", broken)
    warm = _cli(env, "validate", broken)
    assert warm.returncode == cold.returncode == 2
    assert warm.stderr == cold.stderr


# Differential: the compiled schema and the models accept exactly the same data.

BASE: dict[str, Any] = {
    "version": 1,
    "name": "every-field",
    "description": "d",
    "python_path": [".."],
    "engine": "local",
    "defaults": {"queue": {"capacity": 8, "backpressure": "drop_oldest"}, "backend": "auto"},
    "kernels": {
        "src": {
            "entry": "kernels.sources:counter",
            "params": {"count": 3},
            "replicas": 2,
            "backend": "cpu",
            "depends_on": ["sink"],
            "restart": {
                "policy": "on-failure",
                "max_restarts": 2,
                "backoff": 0.1,
                "max_backoff": 1.0,
                "reset_after": 5,
            },
            "resources": {"num_cpus": 0.5, "num_gpus": 0, "custom": {"node_a": 1}},
            "queue_size": 16,
            "description": "source",
        },
        "rec": {"entry": "kernels.records:echo", "persistent": {"ring": 64, "batch": 8}},
        "sink": {"entry": "kernels.sinks:summing"},
    },
    "queues": [
        {"from": "src.out", "to": "rec", "capacity": 4, "backpressure": "block"},
        {"from": "rec", "to": "sink", "fanout": "round_robin", "feedback": False},
    ],
    "smoke": {
        "timeout": 10,
        "duration": 1.5,
        "expect": {
            "sink": {
                "min_messages_in": 1,
                "max_errors": 0,
                "must_complete": True,
                "metrics": {"total": 6, "batches": {"min": 1, "max": 9}},
            }
        },
    },
}

ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0, 1, 2, 3, 64, 100, 1023, 1024, 1025, 1 << 24, 1 << 25, 10**7, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            "a",
            "A",
            "x-y",
            "kernels.m:f",
            "m:",
            "src",
            "src.out",
            "sink",
            "cpu",
            "cuda",
            "auto",
            "block",
            "reject",
            "broadcast",
            "never",
            "always",
            "on-failure",
            "local",
            "ray",
            "1",
            "1.5",
            "true",
            "-1",
            "é",
            "a" * 70,
        ]
    ),
    st.lists(st.sampled_from(["src", "sink", "rec", 1]), max_size=3),
    st.dictionaries(
        st.sampled_from(["min", "max", "equals", "ring", "x"]), st.integers(-2, 70), max_size=3
    ),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _near(value: Any) -> st.SearchStrategy[Any]:
    """Values a typo or a slip would put where ``value`` is: mostly its own kind."""
    if isinstance(value, bool):
        return st.sampled_from([not value, 0, 1, "yes", None])
    if isinstance(value, int):
        return st.sampled_from(
            [
                value - 1,
                value + 1,
                value * 2 + 1,
                value // 2,
                0,
                -1,
                3,
                100,
                1 << 24,
                (1 << 24) + 1,
                True,
                float(value),
                value + 0.5,
                str(value),
            ]
        )
    if isinstance(value, float):
        return st.sampled_from([-value, 0.0, -0.5, float("inf"), float("nan"), 1, True, "1.0"])
    if isinstance(value, str):
        return st.sampled_from(
            [
                value.upper(),
                value + ".x",
                value + ":",
                "." + value,
                value[:-1],
                "",
                "x-" + value,
                value.replace("_", "-"),
                value + " ",
                "sink",
                "src",
                "a" * 70,
            ]
        )
    return ODD_VALUES


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        data = data[step]
    return data


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 2))):
        paths = _paths(data)
        if not paths:
            break
        action = draw(st.sampled_from(["near", "near", "near", "set", "delete", "add"]))
        if action == "near":  # a slip in one value: the commonest mistake, tried most
            paths = [p for p in paths if not isinstance(_at(data, p), dict | list)] or paths
        path = draw(st.sampled_from(paths))
        parent = _at(data, path[:-1])
        last = path[-1]
        if action == "near":
            parent[last] = draw(_near(parent[last]))
        elif action == "set":
            parent[last] = draw(ODD_VALUES)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["unknown", "from_", "x", "min", "ring"]))] = draw(
                ODD_VALUES
            )
    return data


def _accepted_by_models(data: dict[str, Any]) -> bool:
    try:
        Topology.model_validate(copy.deepcopy(data))
    except ValidationError:
        return False
    return True


def _accepted_compiled(validator: SchemaValidator, data: dict[str, Any]) -> bool:
    try:
        validator.validate_python(copy.deepcopy(data))
    except CoreValidationError:
        return False
    return True


_VALIDATOR = SchemaValidator(
    json.loads(json.dumps(compiled.compile_schema()), object_hook=compiled._resolve)
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_the_compiled_schema_accepts_what_the_models_accept(data: dict[str, Any]) -> None:
    assert _accepted_compiled(_VALIDATOR, data) == _accepted_by_models(data)


def test_the_base_of_the_differential_test_is_valid() -> None:
    assert _accepted_by_models(BASE) and _accepted_compiled(_VALIDATOR, BASE)


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    "data",
    [
        _with(("kernels", "rec", "persistent", "ring"), 100),
        _with(("smoke", "expect", "sink", "metrics", "batches"), {"min": 5, "max": 1}),
        _with(("smoke", "expect", "sink", "metrics", "batches"), {}),
        _with(("kernels", "src", "replicas"), True),
        _with(("queues", 0, "from_"), "src"),  # a field name where the alias belongs: fine
        _with(
            ("kernels",),
            {f"k{i}": {"entry": "m:f", "replicas": 1000} for i in range(11)},
        ),
    ],
)
def test_each_rule_is_applied_the_same_way(data: dict[str, Any]) -> None:
    assert _accepted_compiled(_VALIDATOR, data) == _accepted_by_models(data)


def test_a_cache_dir_naming_an_unknown_home_costs_speed_only(tmp_path: Path) -> None:
    env = {**os.environ, "RINGCTL_CACHE_DIR": "~no-such-user-here/cache"}
    result = _cli(env, "validate", "topologies/quickstart.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("topologies/quickstart.yaml: ok (quickstart:")
    assert "Traceback" not in result.stderr


def test_a_schema_someone_else_wrote_is_not_trusted(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert compiled.store()
    assert compiled.load_validator() is not None
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)
    assert compiled.load_validator() is None


def test_a_warm_validate_builds_no_models(tmp_path: Path) -> None:
    env = {**os.environ, "RINGCTL_CACHE_DIR": str(tmp_path / "cache")}
    probe = (
        "import sys\n"
        "from ringctl.cli import main\n"
        "try:\n    main()\n"
        "finally:\n"
        "    print('pydantic_core' in sys.modules, 'pydantic' in sys.modules, file=sys.stderr)\n"
    )

    def run(*args: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", probe, *args],
            capture_output=True, text=True, cwd=REPO, env=env, timeout=60,
        )  # fmt: skip
        return done.stderr.strip().splitlines()[-1].split()

    assert run("validate", "topologies/quickstart.yaml") == ["True", "True"]  # cold: the models
    # Warm: pydantic-core and the cached schema, not pydantic and the models.
    assert run("validate", "topologies/quickstart.yaml") == ["True", "False"]
    # A file with a problem takes the models, which word it with its position.
    broken = str(TOPO / "broken" / "dependency_cycle.yaml")
    assert run("validate", broken) == ["True", "True"]
