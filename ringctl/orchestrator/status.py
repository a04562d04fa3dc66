"""The status document: what ``ringctl ps NAME --json`` prints, ``watch`` streams, the
dashboard draws, the metrics endpoint exports and ``top`` shows, defined once.

The supervisor writes it (``Supervisor.status()`` builds a ``StatusDocument`` and sends
``as_dict()``, plain JSON); every reader turns the JSON back into the same classes with
``read_status``. The document crosses a process boundary and is "add fields, never
rename", so it may come from an older or newer supervisor: the reader ignores keys it
does not know, defaults the ones that are missing, and reads a value of the wrong type
(or ``NaN``, or a hostile ``Mapping``) as missing. Text is read as one printable line
(control characters escaped), so no renderer repeats those checks. Every class is frozen:
a document is a snapshot, like trio's statistics objects.

Imports nothing beyond the standard library: ``ringctl ps`` starts fast.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Final, NamedTuple, TypeVar, cast

from ringctl._printable import printable

if TYPE_CHECKING:
    from ringctl.engine.contract import KernelSnapshot, QueueSnapshot

__all__ = [
    "FINAL_TOPOLOGY_STATES",
    "KERNEL_STATES",
    "STALL_AFTER_S",
    "TOPOLOGY_STATES",
    "AccountingDoc",
    "AppliedDoc",
    "DownDoc",
    "EventDoc",
    "KernelAccountDoc",
    "KernelDoc",
    "KernelStatus",
    "LastBlockDoc",
    "LoopDoc",
    "PhaseDoc",
    "QueueAccountDoc",
    "QueueDoc",
    "StatusDocument",
    "WaitingDoc",
    "classify_kernel",
    "read_status",
]

#: A kernel with input waiting and no progress for longer than this is "stalled". Two
#: seconds is eight refreshes at the default rate: long enough that a kernel busy on one
#: slow message between snapshots is not flagged, short enough that a person sees it.
STALL_AFTER_S: Final = 2.0

#: Kernel lifecycle states as the document spells them (``ringctl.engine.lifecycle``).
KERNEL_STATES: Final = ("CREATED", "LAUNCHED", "ACTIVE", "DEACTIVATED", "TERMINATING",
                        "TERMINATED")  # fmt: skip
#: Topology states a document shows (``ringctl.orchestrator.states``; never ``created``).
TOPOLOGY_STATES: Final = ("starting", "running", "paused", "draining", "completed", "failed",
                          "stopped")  # fmt: skip
#: Topology states after which nothing will change: a live view may stop refreshing.
FINAL_TOPOLOGY_STATES: Final = frozenset({"completed", "failed", "stopped"})


class KernelStatus(StrEnum):
    """What a kernel is doing right now, in one word a person can act on.

    The lifecycle state says what a kernel *may* do; this word says what it *is* doing.
    The first four follow Flink's busy / idle / backpressured split, plus **stalled**,
    which none of the anchors tells apart and which is the one people need most: input
    is waiting, the kernel is not blocked on its output, and yet nothing moves.
    """

    IDLE = "idle"  # waiting in receive, nothing queued
    BUSY = "busy"  # processing, or able to
    BACKPRESSURED = "backpressured"  # a replica waits for space on a full downstream queue
    STALLED = "stalled"  # input queued, not blocked, no progress for a while
    PAUSED = "paused"  # DEACTIVATED: messages keep queueing
    DONE = "done"  # the body returned on its own (a finite source)
    FAILED = "failed"  # TERMINATED with an error
    STARTING = "starting"  # CREATED / LAUNCHED: not yet taking messages
    STOPPING = "stopping"  # TERMINATING: draining out
    STOPPED = "stopped"  # TERMINATED cleanly
    RESTARTING = "restarting"  # failed, waiting out its restart backoff


# --------------------------------------------------------------------------- tolerant values

_BIGGEST: Final = 2**1023  # ints beyond this overflow a double
_ONE_LINE: Final = {ord(c): " " for c in "\t\n\r\v\f"}


def number(value: object) -> float | None:
    """A finite float from a JSON value, or ``None`` (missing, text, NaN, inf, too large)."""
    # Exact-type fast paths first: a frame reads ~25 numbers per kernel.
    kind = type(value)
    if kind is float:
        real = cast(float, value)
        return real if math.isfinite(real) else None
    if kind is int:
        whole = cast(int, value)
        return float(whole) if -_BIGGEST < whole < _BIGGEST else None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        try:
            result = float(value)
        except OverflowError:  # an int beyond a double's range
            return None
        return result if math.isfinite(result) else None
    return None


def count(value: object) -> int | None:
    """A whole count from a JSON value (``number`` truncated), or ``None``."""
    result = number(value)
    return None if result is None else int(result)


def text(value: object) -> str | None:
    """A one-line string from a JSON scalar, or ``None`` for anything else.

    Line breaks and tabs become spaces and other control characters are shown escaped
    (``\\x1b``): a kernel id or an error message must neither tear a table row nor move
    the terminal's cursor.
    """
    if value is None or isinstance(value, bool):
        return None if value is None else str(value).lower()
    if isinstance(value, str):
        return printable(value.translate(_ONE_LINE))
    if isinstance(value, int | float):
        return str(value)
    return None


def _get(mapping: Mapping[str, Any], key: str) -> object:
    try:
        return mapping.get(key)
    except Exception:  # a hostile Mapping; the document is data, never trust it
        return None


def _mappings(value: object) -> list[Mapping[str, Any]]:
    """The Mapping items of a JSON list; anything else in it is skipped, not fatal."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _texts(value: object) -> tuple[str, ...] | None:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return None
    return tuple(t for item in value if (t := text(item)) is not None)


def _table(value: object) -> dict[str, Any] | None:
    """A JSON object as a dict (its values as they are: a renderer picks what it draws)."""
    if not isinstance(value, Mapping):
        return None
    try:
        return {str(k): v for k, v in value.items()}
    except Exception:  # a hostile Mapping
        return None


# --------------------------------------------------------------------------- the machinery

D = TypeVar("D", bound="_Doc")

#: How each field type is read from JSON (by its annotation, ``| None`` or not); nested
#: documents by name.
_READERS: Final[dict[str, Callable[[object], Any]]] = {
    "str": text,
    "float": number,
    "int": count,
    "bool": lambda value: value if isinstance(value, bool) else None,
    "tuple[str, ...]": _texts,
    "dict[str, Any]": _table,
    "dict[str, int]": _table,
    "dict[str, float]": _table,
}


class _Doc:
    """A part of the document: JSON in (``read`` tolerant, ``check`` strict), JSON out."""

    __slots__ = ()
    #: Keys left out of ``as_dict`` while their value is ``None`` (added by later writers).
    _OMIT_NONE: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def read(cls: type[D], raw: object) -> D:
        """Read a part of a document, tolerating missing, extra, ``None`` and mistyped keys."""
        return cls(**_values(cls, raw))

    @classmethod
    def check(cls: type[D], raw: Mapping[str, Any]) -> D:
        """The document's part as its writer must send it: every key known, every value of
        its type (raises ``ValueError`` naming the first that is not): the supervisor builds
        the parts it writes with it, and the tests check whole documents."""
        plan = _FIELDS[cls]
        unknown = sorted(set(raw) - {f.key for f in plan})
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {unknown}")
        values = {
            f.name: _checked(f"{cls.__name__}.{f.name}", f.kind, raw[f.key])
            for f in plan
            if f.key in raw
        }
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form: ``json.dumps`` takes it as it is."""
        out = {}
        omit = self._OMIT_NONE
        for name, key, _, _, plain in _FIELDS[type(self)]:
            value = getattr(self, name)
            if value is None and key in omit:
                continue
            out[key] = value if plain else _dump(value)
        return out


class _Field(NamedTuple):
    """One field of a document class as the JSON sees it."""

    name: str  # the attribute
    key: str  # the JSON key
    kind: str  # the annotation, e.g. ``int | None``
    read: Callable[[object], Any]  # the tolerant reader
    plain: bool  # sent as it is (no nested document, tuple or dict to copy)


#: Each class's fields in the document's order (filled once every class is defined).
_FIELDS: Final[dict[type, tuple[_Field, ...]]] = {}


def _values(cls: type[_Doc], raw: object, skip: str = "") -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        return {}
    get: Callable[[str], object] = raw.get if type(raw) is dict else partial(_get, raw)
    values = {}
    for name, key, _, read, _ in _FIELDS[cls]:
        if key != skip and (value := read(get(key))) is not None:
            values[name] = value
    return values


def _dump(value: Any) -> Any:
    if isinstance(value, _Doc):
        return value.as_dict()
    if isinstance(value, tuple):
        return [_dump(item) for item in value]
    if isinstance(value, dict):
        return dict(value)
    return value


def _reader(annotation: str) -> Callable[[object], Any]:
    inner = annotation.removesuffix(" | None")
    if inner in _READERS:
        return _READERS[inner]
    if inner.startswith("tuple[") and inner.endswith(", ...]"):
        nested = _DOCS[inner[6:-6]]
        return lambda value: tuple(nested.read(m) for m in _mappings(value))
    nested = _DOCS[inner]
    return lambda value: nested.read(value) if isinstance(value, Mapping) else None


#: Field types whose values go into the JSON form as they are.
_PLAIN: Final = frozenset({"str", "float", "int", "bool"})

_SCALARS: Final[dict[str, tuple[type, ...]]] = {
    "str": (str,),
    "float": (int, float),
    "int": (int,),
    "bool": (bool,),
    "dict[str, Any]": (dict,),
    "dict[str, int]": (dict,),
    "dict[str, float]": (dict,),
}


def _checked(where: str, annotation: str, value: Any) -> Any:
    inner = annotation.removesuffix(" | None")
    if value is None:
        if inner != annotation:
            return None
        raise ValueError(f"{where}: null where {inner} belongs")
    if inner.startswith("tuple["):
        if not isinstance(value, list):
            raise ValueError(f"{where}: {value!r} is not a list")
        return tuple(_checked(where, inner[6:-6], item) for item in value)
    if inner in _DOCS:
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: {value!r} is not an object")
        return _DOCS[inner].check(value)
    types = _SCALARS[inner]
    if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
        raise ValueError(f"{where}: {value!r} is not {inner}")
    return value


# --------------------------------------------------------------------------- the document


@dataclass(frozen=True, slots=True)
class EventDoc(_Doc):
    """One entry of the event log (pause, resume, restart, failure, info)."""

    t: float | None = None  # seconds since the supervisor started
    kind: str = "info"
    text: str = ""


@dataclass(frozen=True, slots=True)
class WaitingDoc(_Doc):
    """A kernel a phase waits on: ``waiting on X: N queued, T s left``."""

    kernel: str = "?"
    queued: int | None = None
    seconds_left: float | None = None


@dataclass(frozen=True, slots=True)
class PhaseDoc(_Doc):
    """Launch / activate / drain progress, present only while one is under way."""

    name: str = "phase"  # launch, activate or drain
    done: int | None = None
    total: int | None = None
    waiting_on: tuple[WaitingDoc, ...] = ()
    elapsed_s: float | None = None


@dataclass(frozen=True, slots=True)
class KernelDoc(_Doc):
    """One kernel (all its replicas); ``None`` wherever a reader found no usable value."""

    id: str = ""  # read as #N (its place in the list) when missing
    state: str | None = None  # the lifecycle state: CREATED ... TERMINATED
    backend: str | None = None
    device: str | None = None
    replicas: int | None = None
    messages_in: float | None = None
    messages_out: float | None = None
    errors: float | None = None
    drops: float | None = None  # dropped by a backpressure policy on the way in
    inbox_depth: int | None = None
    inbox_capacity: int | None = None
    inbox_high_water: int | None = None
    latency_p50_us: float | None = None
    latency_p99_us: float | None = None
    rate_in: float | None = None
    rate_out: float | None = None
    restarts: float | None = None
    last_error: str | None = None
    completed: bool = False  # its body returned on its own (a finite source)
    waiting: int | None = None  # replicas waiting in receive with nothing to read
    blocked: int | None = None  # replicas waiting for room on a full downstream queue
    last_progress_s: float | None = None
    entry: str | None = None
    node: str | None = None  # the host / Ray node it runs on
    backend_note: str | None = None  # e.g. "auto: no usable GPU, on cpu"
    metrics: dict[str, Any] = field(default_factory=dict)  # its ctx.metrics
    lost: float | None = None  # queued for it, or sent to it, after it failed for good
    left: float | None = None  # queued for it when it was stopped on request
    in_doubt: float | None = None  # held by a process of it that died: handled or not?
    restart_in_s: float | None = None  # seconds until its pending restart (a backoff)
    #: Its status word, as the reader found it (not sent: ``status`` is the word).
    word: KernelStatus | None = field(default=None, compare=False, metadata={"local": True})

    @classmethod
    def of(cls, snapshot: KernelSnapshot, restart_in_s: float | None = None) -> KernelDoc:
        """The entry of an engine's kernel snapshot (the supervisor writes these)."""
        values = {name: getattr(snapshot, name) for name in _SNAPSHOT_FIELDS}
        return cls(**values, restart_in_s=restart_in_s)

    @classmethod
    def read_at(
        cls, raw: object, index: int = 0, stall_after_s: float = STALL_AFTER_S
    ) -> KernelDoc:
        """``read`` for the ``index``-th kernel of a document (``#index`` when it has no id)."""
        values = _values(cls, raw)
        values["id"] = values.get("id") or f"#{index}"
        if "state" in values:
            values["state"] = values["state"].upper()
        values["word"] = _classify(values.get, stall_after_s)
        return cls(**values)

    @property
    def status(self) -> KernelStatus:
        """What it is doing, in one word (``classify_kernel``)."""
        if self.word is not None:
            return self.word
        return _classify(partial(getattr, self), STALL_AFTER_S)

    @property
    def numeric_metrics(self) -> tuple[tuple[str, float], ...]:
        """The numeric entries of its ``ctx.metrics`` (what a gauge can show)."""
        return tuple(
            (text(key) or str(key), n)
            for key, raw in self.metrics.items()
            if (n := number(raw)) is not None and not isinstance(raw, bool)
        )


@dataclass(frozen=True, slots=True)
class QueueDoc(_Doc):
    """One queue edge ``producer.port -> consumer``."""

    source: str = field(default="?", metadata={"key": "from"})  # producer.port, (external)
    to: str = "?"
    name: str | None = None
    depth: int | None = None
    capacity: int | None = None
    backpressure: str | None = None
    messages: float | None = None  # accepted, ever
    drops: float | None = None
    delivered: float | None = None
    lost: float | None = None
    left: float | None = None
    in_doubt: float | None = None
    high_water: int | None = None
    blocked_s: float | None = None

    @classmethod
    def of(cls, q: QueueSnapshot) -> QueueDoc:
        """The entry of an engine's queue snapshot (the supervisor writes these)."""
        return cls(
            **{name: getattr(q, name) for name in _QUEUE_SNAPSHOT_FIELDS},
            source=f"{q.producer}.{q.port}" if q.producer else "(external)",
            to=q.consumer or "(output)",
            blocked_s=round(q.blocked_s, 6),
        )


@dataclass(frozen=True, slots=True)
class DownDoc(_Doc):
    """What the drain-and-terminate did; ``left`` names every kernel that lost messages."""

    graceful: bool = False
    seconds: float | None = None
    messages_left: int | None = None
    left: dict[str, int] = field(default_factory=dict)
    forced: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KernelAccountDoc(_Doc):
    kernel: str = "?"
    accepted: int | None = None
    delivered: int | None = None
    dropped: int | None = None
    lost: int | None = None
    left: int | None = None
    in_doubt: int | None = None
    queued: int | None = None
    errors: int | None = None


@dataclass(frozen=True, slots=True)
class QueueAccountDoc(_Doc):
    source: str = field(default="?", metadata={"key": "from"})
    to: str = "?"
    accepted: int | None = None
    delivered: int | None = None
    dropped: int | None = None
    lost: int | None = None
    left: int | None = None
    in_doubt: int | None = None
    queued: int | None = None


@dataclass(frozen=True, slots=True)
class AccountingDoc(_Doc):
    """The accounting law's terms at the end of a run (``docs/accounting.md``)."""

    holds: bool = False  # every queue's terms add up
    clean: bool = False  # it holds and nothing was lost, left, in doubt or still queued
    totals: dict[str, int] = field(default_factory=dict)
    violations: tuple[str, ...] = ()
    kernels: tuple[KernelAccountDoc, ...] = ()
    queues: tuple[QueueAccountDoc, ...] = ()


@dataclass(frozen=True, slots=True)
class LastBlockDoc(_Doc):
    message: str = ""  # e.g. loop blocked 3.0 s in kernel `slow`
    seconds: float | None = None
    ago_s: float | None = None  # seconds since the block ended


@dataclass(frozen=True, slots=True)
class LoopDoc(_Doc):
    """The loop watchdog's view of the kernels' event loop (added by the control server)."""

    status: str | None = None  # ok or blocked
    lag_s: float | None = None  # how late the loop is right now
    blocks: int | None = None  # blocks seen so far
    holder: str | None = None  # while blocked: what holds the loop
    blocked_s: float | None = None
    message: str | None = None  # while blocked: the block in words
    last_block: LastBlockDoc | None = None


@dataclass(frozen=True, slots=True)
class AppliedDoc(_Doc):
    """The last ``ringctl apply`` that changed the topology."""

    file: str = ""
    at: float | None = None  # Unix time it was applied
    done: tuple[str, ...] = ()  # each change made, as the plan printed it
    left: dict[str, int] = field(default_factory=dict)  # messages removed kernels left
    seconds: float | None = None


@dataclass(frozen=True, slots=True)
class StatusDocument(_Doc):
    """The whole status document: what every renderer draws from."""

    _OMIT_NONE: ClassVar[frozenset[str]] = frozenset({"down", "accounting", "loop", "stale_s"})

    name: str | None = None
    file: str | None = None
    engine: str | None = None
    pid: int | None = None
    uptime_s: float | None = None
    state: str | None = None  # the topology's state: starting, running, ...
    phase: PhaseDoc | None = None
    failure: str | None = None
    events: tuple[EventDoc, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    kernels: tuple[KernelDoc, ...] = ()
    queues: tuple[QueueDoc, ...] = ()
    quiescent: bool = False
    down: DownDoc | None = None
    accounting: AccountingDoc | None = None
    loop: LoopDoc | None = None  # in documents sent over the socket
    #: Set when the kernels' loop did not answer in time: the age of the kernel figures
    #: (the state, uptime and loop are current).
    stale_s: float | None = None
    applied: AppliedDoc | None = None  # the last `ringctl apply` (null: as `up` started it)
    #: How the running kernels differ from their file (a `scale` since, or the file
    #: edited since it was applied).
    drift: tuple[str, ...] = ()

    @property
    def loop_blocked(self) -> str | None:
        """While the kernels' loop is blocked: what holds it, in words."""
        loop = self.loop
        if loop is None or loop.status != "blocked":
            return None
        return loop.message or "loop blocked"

    @property
    def status_counts(self) -> dict[KernelStatus, int]:
        return dict(Counter(k.status for k in self.kernels))

    @property
    def throughput(self) -> float:
        """Messages per second taken in across all kernels: the topology's pace.

        Inputs, not outputs: a source's output is its consumer's input, so summing both
        would count every hop twice, and sources (no inbox) do not inflate the figure.
        """
        return sum(k.rate_in or 0.0 for k in self.kernels)

    @property
    def messages_in(self) -> float:
        return sum(k.messages_in or 0.0 for k in self.kernels)

    @property
    def messages_out(self) -> float:
        return sum(k.messages_out or 0.0 for k in self.kernels)

    @property
    def drops(self) -> float:
        return sum(k.drops or 0.0 for k in self.kernels)

    @property
    def errors(self) -> float:
        return sum(k.errors or 0.0 for k in self.kernels)

    @property
    def last_event(self) -> EventDoc | None:
        return self.events[-1] if self.events else None


#: What an engine's ``KernelSnapshot`` gives a kernel's entry (all but the supervisor's).
_SNAPSHOT_FIELDS: Final = tuple(
    f.name for f in fields(KernelDoc) if f.name not in ("restart_in_s", "word")
)
#: What a ``QueueSnapshot`` gives a queue's entry as it is.
_QUEUE_SNAPSHOT_FIELDS: Final = tuple(
    f.name for f in fields(QueueDoc) if f.name not in ("source", "to", "blocked_s")
)

_DOCS: Final[dict[str, type[_Doc]]] = {
    cls.__name__: cls
    for cls in (
        EventDoc,
        WaitingDoc,
        PhaseDoc,
        KernelDoc,
        QueueDoc,
        DownDoc,
        KernelAccountDoc,
        QueueAccountDoc,
        AccountingDoc,
        LastBlockDoc,
        LoopDoc,
        AppliedDoc,
        StatusDocument,
    )
}


def _fields_of(cls: type[_Doc]) -> tuple[_Field, ...]:
    found = []
    for f in fields(cast(Any, cls)):
        if f.init and not f.metadata.get("local"):
            kind = str(f.type)
            plain = kind.removesuffix(" | None") in _PLAIN
            found.append(_Field(f.name, f.metadata.get("key", f.name), kind, _reader(kind), plain))
    return tuple(found)


_FIELDS.update((cls, _fields_of(cls)) for cls in _DOCS.values())


def read_status(document: object, *, stall_after_s: float = STALL_AFTER_S) -> StatusDocument:
    """Read a status document (``ps --json``, ``watch``) into its classes, tolerating
    missing, extra, ``None`` and mistyped keys; never raises."""
    values = _values(StatusDocument, document, skip="kernels")
    if "state" in values:
        values["state"] = values["state"].lower()
    raw = _get(document, "kernels") if isinstance(document, Mapping) else None
    kernels = tuple(
        KernelDoc.read_at(item, i, stall_after_s) for i, item in enumerate(_mappings(raw))
    )
    return StatusDocument(**values, kernels=kernels)


def classify_kernel(
    kernel: Mapping[str, Any], *, stall_after_s: float = STALL_AFTER_S
) -> KernelStatus:
    """The status word for one kernel entry of the status document.

    Precedence, first match wins (end states before activity, so a finished kernel with
    a stale inbox reads "done", not "stalled"):

    0. a ``restart_in_s`` (the supervisor waits out a restart backoff) → restarting
    1. ``TERMINATED`` with a ``last_error`` → failed
    2. ``completed`` → done
    3. ``TERMINATED`` → stopped; ``TERMINATING`` → stopping
    4. ``CREATED`` / ``LAUNCHED`` → starting; ``DEACTIVATED`` → paused
    5. ACTIVE (or a state this version does not know): a persistent kernel whose
       heartbeat froze (``metrics.stalled`` true) → stalled; ``blocked > 0`` →
       backpressured; ``inbox_depth > 0`` and ``last_progress_s > stall_after_s`` →
       stalled; nothing queued and a replica ``waiting`` → idle; otherwise busy.

    Where ``waiting`` is missing (an older runtime), "nothing queued and no messages
    moving" stands in for idle.
    """
    return KernelDoc.read_at(kernel, 0, stall_after_s).status


def _classify(get: Callable[[str], Any], stall_after_s: float) -> KernelStatus:
    """The status word from a kernel's values (``get`` reads one by name; ``None``:
    unknown), in the precedence ``classify_kernel`` gives."""
    state = (get("state") or "").upper()
    if get("restart_in_s") is not None:
        return KernelStatus.RESTARTING
    if state == "TERMINATED" and get("last_error"):
        return KernelStatus.FAILED
    if get("completed"):
        return KernelStatus.DONE
    if state == "TERMINATED":
        return KernelStatus.STOPPED
    if state == "TERMINATING":
        return KernelStatus.STOPPING
    if state in ("CREATED", "LAUNCHED"):
        return KernelStatus.STARTING
    if state == "DEACTIVATED":
        return KernelStatus.PAUSED
    metrics = get("metrics")
    if metrics and metrics.get("stalled") is True:
        return KernelStatus.STALLED  # its compiled loop stopped beating: stuck in a handler
    if (get("blocked") or 0) > 0:
        return KernelStatus.BACKPRESSURED
    if (get("inbox_depth") or 0) > 0:
        quiet_for = get("last_progress_s")
        if quiet_for is not None and quiet_for > stall_after_s:
            return KernelStatus.STALLED
        return KernelStatus.BUSY
    waiting = get("waiting")
    if waiting is not None:
        return KernelStatus.IDLE if waiting > 0 else KernelStatus.BUSY
    moving = (get("rate_in") or 0.0) + (get("rate_out") or 0.0)
    return KernelStatus.IDLE if moving == 0 else KernelStatus.BUSY
