"""The topology file format as pydantic models: one source for validation, JSON Schema and docs.

Every model forbids unknown fields (a typo must fail loudly, not be ignored) and every
field carries a description, because ``ringctl schema`` hands these descriptions to
editors and ``python -m ringctl.topology.docs`` turns them into ``docs/topology.md``.
Field defaults that depend on the file's ``defaults:`` section stay ``None`` here; the
``effective_*`` properties apply them, so the orchestrator never re-implements that rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)

from ringctl.checks import MAX_NAME_LENGTH, NAME_PATTERN
from ringctl.topology.rules import (
    MAX_INSTANCES,
    bounds_problem,
    instances_problem,
    not_bool,
    queue_label,
    raise_problem,
    ring_problem,
    split_endpoint,
)

if TYPE_CHECKING:
    from ringctl.topology.loader import SourceMap

__all__ = [
    "ENTRY_PATTERN",
    "KERNEL_ID_PATTERN",
    "MAX_INSTANCES",
    "MAX_KERNELS",
    "MAX_NAME_LENGTH",
    "MAX_REPLICAS",
    "NAME_PATTERN",
    "PATH_PATTERN",
    "SUPPORTED_VERSIONS",
    "Backend",
    "Backpressure",
    "Defaults",
    "Edge",
    "Fanout",
    "KernelExpectation",
    "KernelSpec",
    "PersistentSpec",
    "QueueDefaults",
    "Resources",
    "RestartSpec",
    "Smoke",
    "Topology",
]

SUPPORTED_VERSIONS: Final = (1,)
#: Kernel ids are also Python-ish names in kernels' code, so ``_`` is allowed too.
KERNEL_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]*$"
PORT_PATTERN: Final = r"[A-Za-z_][A-Za-z0-9_]*"
ENDPOINT_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]*(\." + PORT_PATTERN + r")?$"
_DOTTED: Final = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
ENTRY_PATTERN: Final = rf"^{_DOTTED}:{_DOTTED}$"
#: A folder path: anything but a NUL, which no file system takes.
PATH_PATTERN: Final = r"^[^\x00]*$"
#: Bounds that keep a typo (``replicas: 10000000``) a validation error instead of a
#: supervisor that eats the machine's memory before it fails.
MAX_REPLICAS: Final = 1024
MAX_KERNELS: Final = 10_000

Backpressure = Literal["block", "drop_oldest", "drop_newest", "reject"]
Backend = Literal["cpu", "cuda", "auto"]
Fanout = Literal["broadcast", "round_robin"]
RestartMode = Literal["never", "on-failure", "always"]
Engine = Literal["local", "ray"]


_Number = BeforeValidator(not_bool)
# The bound comes before the validator so that the JSON Schema shows it as `minimum`.
Count = Annotated[int, Field(ge=0), _Number]
PositiveInt = Annotated[int, Field(ge=1), _Number]
Seconds = Annotated[float, Field(ge=0), _Number]
KernelId = Annotated[
    str, Field(pattern=KERNEL_ID_PATTERN, max_length=MAX_NAME_LENGTH, description="A kernel id.")
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class QueueDefaults(_Model):
    """Capacity and backpressure for every queue that does not set its own."""

    capacity: PositiveInt = Field(
        1024, description="Messages a queue holds before its backpressure policy applies."
    )
    backpressure: Backpressure = Field(
        "block",
        description=(
            "What a send does on a full queue: `block` waits (nothing is lost), "
            "`drop_oldest` / `drop_newest` drop a message and count it, `reject` raises."
        ),
    )


class Defaults(_Model):
    """Values that apply to every queue and kernel below unless they set their own."""

    queue: QueueDefaults = Field(
        default_factory=QueueDefaults, description="Defaults for every queue edge."
    )
    backend: Backend = Field(
        "cpu",
        description=(
            "Where kernels run: `cpu`, `cuda` (an error at launch where no GPU is usable) "
            "or `auto` (CUDA where usable, else CPU)."
        ),
    )


class RestartSpec(_Model):
    """What the supervisor does when a kernel fails."""

    policy: RestartMode = Field(
        "never",
        description=(
            "`never`: a failure fails the run; `on-failure`: relaunch a kernel that raised; "
            "`always`: also relaunch one that returned."
        ),
    )
    max_restarts: Count = Field(
        3, description="Restarts allowed in the whole run before a failure fails the run."
    )
    backoff: Seconds = Field(
        0.5,
        description=(
            "Seconds before the first restart; each further failure in a row doubles the "
            "wait, up to `max_backoff`."
        ),
    )
    max_backoff: Seconds = Field(30.0, description="The longest wait before a restart.")
    reset_after: Seconds = Field(
        60.0,
        description=(
            "A kernel that ran this many seconds without failing is healthy again: its next "
            "restart waits `backoff` anew."
        ),
    )


class Resources(_Model):
    """What one replica needs; the Ray engine places actors with it, the local engine ignores it."""

    num_cpus: Annotated[float, Field(ge=0), _Number] | None = Field(
        None, description="CPU cores per replica (may be fractional)."
    )
    num_gpus: Annotated[float, Field(ge=0), _Number] | None = Field(
        None, description="GPUs per replica (may be fractional, e.g. 0.5 to share one)."
    )
    custom: dict[str, Annotated[float, Field(ge=0), _Number]] = Field(
        default_factory=dict,
        description=(
            "Ray custom resources per replica (the names given to `ray start --resources`), "
            "e.g. {node_a: 1} to pin a kernel to the node that has `node_a`."
        ),
    )


class PersistentSpec(_Model):
    """Run the kernel as a compiled loop in a worker process, polling rings of records.

    The entry must then be a `@persistent_kernel` (see docs/persistent.md). Persistent
    kernels wired to each other pass records ring to ring with no Python in between;
    queues to and from ordinary kernels carry NumPy arrays of records, in batches.
    """

    ring: PositiveInt | None = Field(
        None,
        description=(
            "Records the kernel's input and output rings hold (a power of two). "
            "Default: as many as fit in 1 MiB."
        ),
    )
    batch: PositiveInt = Field(
        256, description="Most records handled before outputs and freed slots are published."
    )
    spin_us: Count = Field(
        20,
        description=(
            "Microseconds a loop that ran out of records spins (CPU pause hint) before it "
            "starts to nap; only as many loops spin at once as the worker has cores, less "
            "one. 0 naps at once: least CPU, a slower first record after a lull."
        ),
    )
    nap_us: Count = Field(
        50,
        description=(
            "Microseconds the loop sleeps on its first empty pass once the spin is over; "
            "each further empty pass sleeps twice as long, up to 16 x nap_us but not past "
            "1 ms (or nap_us if longer). A record brings the nap back to nap_us."
        ),
    )

    @model_validator(mode="after")
    def _ring_power_of_two(self) -> PersistentSpec:
        if self.ring is not None:
            raise_problem(ring_problem(self.ring))
        return self


class KernelSpec(_Model):
    """One kernel: the code to run and how to run it. Its id is its key under `kernels`."""

    entry: str = Field(
        pattern=ENTRY_PATTERN,
        description=(
            "`module:attribute` of a `@ring_kernel` function or a plain `async def f(ctx)`; "
            "imported from the topology's folder, its `python_path`, then the current folder."
        ),
        examples=["kernels.math:square"],
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Handed to the kernel as `ctx.params`; validated against the kernel's params "
            "model where it declares one (`ringctl validate --import`, `ringctl up`)."
        ),
    )
    replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS), _Number] = Field(
        1, description=f"Identical instances sharing one inbox (at most {MAX_REPLICAS})."
    )
    backend: Backend | None = Field(
        None, description="`cpu`, `cuda` or `auto`; unset: `defaults.backend`."
    )
    depends_on: list[KernelId] = Field(
        default_factory=list,
        description=("Kernels launched and activated before this one (and terminated after it)."),
    )
    restart: RestartSpec = Field(
        default_factory=RestartSpec, description="What to do when the kernel fails."
    )
    resources: Resources | None = Field(
        None, description="CPUs and GPUs per replica, for the Ray engine."
    )
    queue_size: PositiveInt | None = Field(
        None,
        description=(
            "Capacity of the kernel's inbox for messages sent to it directly "
            "(`runtime.send`); unset: the kernel's own `@ring_kernel(queue_size=...)`."
        ),
    )
    persistent: PersistentSpec | None = Field(
        None,
        description=(
            "Makes the kernel persistent: a compiled loop on a CPU thread in a worker "
            "process (`backend: cpu` or `auto`; `cuda` is not available yet). "
            "`persistent: {}` takes every default."
        ),
    )
    keep_state: bool = Field(
        True,
        description=(
            "Whether `ctx.state` survives when `ringctl apply` restarts the kernel to "
            "change its params or entry (false: the new instance starts with it empty)."
        ),
    )
    description: str | None = Field(None, description="Shown by `ringctl graph`.")

    _id: str = PrivateAttr("")
    _default_backend: Backend = PrivateAttr("cpu")

    @property
    def kernel_id(self) -> str:
        """The id this spec has under ``kernels:`` (set when the topology is validated)."""
        return self._id

    @property
    def effective_backend(self) -> Backend:
        return self.backend if self.backend is not None else self._default_backend


class Edge(_Model):
    """A queue from a producer's output port into a consumer's inbox."""

    from_: str = Field(
        alias="from",
        pattern=ENDPOINT_PATTERN,
        description="The producer: `kernel` (its `out` port) or `kernel.port`.",
        examples=["square", "split.evens"],
    )
    to: str = Field(
        pattern=KERNEL_ID_PATTERN,
        description="The consumer kernel (a kernel has one inbox, so no port here).",
    )
    capacity: PositiveInt | None = Field(
        None, description="Messages the queue holds; unset: `defaults.queue.capacity`."
    )
    backpressure: Backpressure | None = Field(
        None,
        description=(
            "`block`, `drop_oldest`, `drop_newest` or `reject`; "
            "unset: `defaults.queue.backpressure`."
        ),
    )
    fanout: Fanout | None = Field(
        None,
        description=(
            "How a port with several queues shares its messages among the kernels they "
            "feed: `broadcast` (each consumer kernel gets every message) or `round_robin` "
            "(each message goes to one of them, in turn); one setting per port; unset: "
            "broadcast. A consumer's replicas share its inbox, so each message reaches "
            "one replica either way."
        ),
    )
    feedback: bool = Field(
        False,
        description=(
            "Marks this edge as closing a deliberate loop; a queue cycle without one is an error."
        ),
    )

    _queue_defaults: QueueDefaults = PrivateAttr(default_factory=QueueDefaults)

    @property
    def producer(self) -> str:
        return split_endpoint(self.from_)[0]

    @property
    def port(self) -> str:
        return split_endpoint(self.from_)[1]

    @property
    def consumer(self) -> str:
        return self.to

    @property
    def label(self) -> str:
        """``producer.port -> consumer``, how messages and ``ringctl ps`` name a queue."""
        return queue_label(self.producer, self.port, self.to)

    @property
    def effective_capacity(self) -> int:
        return self.capacity if self.capacity is not None else self._queue_defaults.capacity

    @property
    def effective_backpressure(self) -> Backpressure:
        return self.backpressure or self._queue_defaults.backpressure


_Figure = Annotated[int | float, _Number]


class MetricBounds(_Model):
    """Bounds on one of a kernel's own metrics (`ctx.metrics`) when the run ends."""

    equals: _Figure | None = Field(None, description="Exactly this value.")
    min: _Figure | None = Field(None, description="At least this value.")
    max: _Figure | None = Field(None, description="At most this value.")

    @model_validator(mode="after")
    def _some_bound(self) -> MetricBounds:
        raise_problem(bounds_problem(self.equals, self.min, self.max))
        return self


class KernelExpectation(_Model):
    """What `ringctl smoke` asserts about one kernel when the run ends."""

    min_messages_in: Count | None = Field(None, description="At least this many messages received.")
    min_messages_out: Count | None = Field(None, description="At least this many messages sent.")
    max_errors: Count | None = Field(None, description="At most this many errors.")
    max_drops: Count | None = Field(None, description="At most this many dropped messages.")
    must_complete: bool = Field(
        False, description="The kernel must finish on its own before the timeout."
    )
    metrics: dict[str, _Figure | MetricBounds] = Field(
        default_factory=dict,
        description=(
            "The kernel's own metrics (`ctx.metrics`) at the end: a number means exactly "
            "that value; `{equals, min, max}` bounds it."
        ),
        examples=[{"total": 333328333350000, "batches": {"min": 100}}],
    )


class Smoke(_Model):
    """How `ringctl smoke` runs the topology in CI and what it checks."""

    timeout: Seconds = Field(60, description="Seconds before the run counts as hung and fails.")
    duration: Annotated[float, Field(gt=0), _Number] | None = Field(
        None,
        description=(
            "For endless topologies: run this many seconds, then down gracefully and check."
        ),
    )
    expect: dict[KernelId, KernelExpectation] = Field(
        default_factory=dict, description="Expectations per kernel id."
    )


class Topology(_Model):
    """A topology file: kernels, the queues that wire them, and how to run them."""

    version: Literal[1] = Field(description="The file format version; this ringctl reads 1.")
    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=MAX_NAME_LENGTH,
        description=(
            "Lowercase letters, digits and `-`; the name `ringctl ps / pause / down` use."
        ),
        examples=["quickstart"],
    )
    description: str | None = Field(None, description="One line on what the topology does.")
    python_path: list[Annotated[str, Field(pattern=PATH_PATTERN)]] = Field(
        default_factory=list,
        description="Folders, relative to this file, to import kernel entries from.",
        examples=[[".."]],
    )
    engine: Engine = Field(
        "local",
        description=("`local`: one process, one event loop; `ray`: each kernel a Ray actor."),
    )
    defaults: Defaults = Field(
        default_factory=Defaults, description="Defaults for every queue and kernel."
    )
    kernels: dict[KernelId, KernelSpec] = Field(
        min_length=1,
        max_length=MAX_KERNELS,
        description=(
            "Kernel id -> spec. Ids: lowercase letters, digits, `-` and `_`, "
            f"starting with a letter or digit. At most {MAX_KERNELS} kernels and "
            f"{MAX_INSTANCES} instances (replicas included)."
        ),
    )
    queues: list[Edge] = Field(
        default_factory=list, description="Edges `producer[.port]` -> `consumer`."
    )
    smoke: Smoke | None = Field(None, description="What `ringctl smoke` runs and asserts in CI.")

    _source_path: Path | None = PrivateAttr(None)
    _source: SourceMap | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _apply_defaults(self) -> Topology:
        raise_problem(instances_problem(sum(spec.replicas for spec in self.kernels.values())))
        # Children learn their ids and the file's defaults once, here, so their
        # `effective_*` properties need no back-reference to the topology.
        for kernel_id, spec in self.kernels.items():
            spec._id = kernel_id
            spec._default_backend = self.defaults.backend
        for edge in self.queues:
            edge._queue_defaults = self.defaults.queue
        return self

    @property
    def source_path(self) -> Path | None:
        """The file this topology was loaded from (``None`` when built in code)."""
        return self._source_path

    @property
    def source_map(self) -> SourceMap | None:
        """Positions in the file, for errors found after loading (e.g. params models)."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in the file (``python_path``) are taken from."""
        return self._source_path.parent if self._source_path is not None else Path.cwd()

    @property
    def source_kernels(self) -> list[str]:
        """The sources, in file order: the kernels `down` stops first (``roles.source_ids``)."""
        from ringctl.topology.roles import source_ids

        return source_ids(list(self.kernels), ((e.producer, e.to, e.feedback) for e in self.queues))

    @property
    def sink_kernels(self) -> list[str]:
        """Kernels with no outbound queue, in file order."""
        feeding = {edge.producer for edge in self.queues if not edge.feedback}
        return [kernel_id for kernel_id in self.kernels if kernel_id not in feeding]

    def inbound(self, kernel_id: str) -> list[Edge]:
        return [edge for edge in self.queues if edge.to == kernel_id]
