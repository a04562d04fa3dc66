"""The control protocol: one JSON document per line, in both directions.

A request is ``{"v": 1, "op": ..., "args": {...}, "deadline": T}``. ``deadline`` (Unix
time, seconds) is when the client stops waiting: a command the supervisor has not
started by then is refused, never applied later. A reply is ``{"v": 1, "ok": true,
"result": ...}`` or ``{"v": 1, "ok": false, "error": {"message", "hint", "exit_code"}}``.
``watch`` answers with a stream of ``{"v": 1, "event": "status", "data": {...}}`` lines;
``down`` sends ``{"event": "progress", ...}`` lines before its reply; ``tap`` sends one
``{"event": "message", "data": {...}}`` line per message it saw, then its reply. Requests that
change things are run one at a time by the supervisor, so ``pause`` racing ``down`` is
well defined: whichever the supervisor took first completes, the other sees its result
(a ``pause`` after the ``down`` began is refused at once: the topology is draining).

Every request is checked against a typed model before anything acts on it: the envelope
(``Envelope``), then the arguments of its ``op`` (one model per op in ``REQUESTS``). To
add an op, write its arguments model and add it to ``REQUESTS``; the server refuses any
op it has no handler for.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from ringctl.checks import MAX_NAME_LENGTH, MAX_SECONDS
from ringctl.control.wire import MAX_LINE as MAX_LINE
from ringctl.control.wire import PROTOCOL_VERSION
from ringctl.control.wire import encode as encode
from ringctl.control.wire import error_reply as error_reply
from ringctl.control.wire import event as event
from ringctl.control.wire import ok_reply as ok_reply
from ringctl.exceptions import UserInputError

#: More kernels than any topology may have (the schema's bound is lower).
_MAX_KERNELS_NAMED: Final = 10_000
#: The topology schema's bound on ``replicas`` (``MAX_REPLICAS``).
_MAX_REPLICAS: Final = 1024

Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]
KernelName = Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME_LENGTH)]


class _Model(BaseModel):
    # strict: "abc" is not a number, 5 is not a list; nothing is coerced into meaning.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Envelope(_Model):
    """What every request carries, whatever its op."""

    v: StrictInt = Field(PROTOCOL_VERSION, description="The protocol version (1).")
    op: StrictStr = Field(max_length=64, description="What to do.")
    args: dict[str, Any] = Field(default_factory=dict, description="The op's arguments.")
    deadline: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        None, description="Unix time at which the client gives up waiting for the reply."
    )


class NoArgs(_Model):
    """``ping`` and ``status`` take no arguments."""


class KernelsRequest(_Model):
    """``pause`` and ``resume``: the kernels to act on (none: all of them)."""

    kernels: list[KernelName] | None = Field(None, max_length=_MAX_KERNELS_NAMED)


class DownRequest(_Model):
    """``down``: seconds the drain (and each kernel) gets before a force stop."""

    timeout: Seconds = 10.0


class WatchRequest(_Model):
    """``watch``: seconds between status documents (at least 0.05)."""

    interval: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 0.25


#: Seconds, where 0 is meaningful (``restart --timeout 0``: do not wait for the old one).
WaitSeconds = Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]


class RestartRequest(_Model):
    """``restart``: stop and relaunch these kernels (each keeps its inbox and state)."""

    kernels: list[KernelName] = Field(min_length=1, max_length=_MAX_KERNELS_NAMED)
    timeout: WaitSeconds = 5.0


class ScaleRequest(_Model):
    """``scale``: run ``replicas`` instances of one running kernel."""

    kernel: KernelName
    replicas: StrictInt = Field(ge=1, le=_MAX_REPLICAS)
    timeout: WaitSeconds = 5.0


class TapRequest(_Model):
    """``tap``: stream what ``kernel.port`` sends, ``count`` messages (none: until the
    client hangs up or the run ends)."""

    kernel: KernelName
    port: Annotated[StrictStr, Field(min_length=1, max_length=MAX_NAME_LENGTH)] = "out"
    count: Annotated[StrictInt, Field(ge=1)] | None = None


class ApplyRequest(_Model):
    """``apply``: change the running topology into what ``file`` (an absolute path the
    supervisor reads) describes; ``dry_run``: only say what would change."""

    file: Annotated[StrictStr, Field(min_length=1, max_length=4096)]
    dry_run: bool = False
    timeout: WaitSeconds = 10.0


#: The arguments model of every op the protocol knows.
REQUESTS: Final[dict[str, type[_Model]]] = {
    "ping": NoArgs,
    "status": NoArgs,
    "pause": KernelsRequest,
    "resume": KernelsRequest,
    "down": DownRequest,
    "watch": WatchRequest,
    "restart": RestartRequest,
    "scale": ScaleRequest,
    "tap": TapRequest,
    "apply": ApplyRequest,
}


@dataclass(frozen=True, slots=True)
class Request:
    """A request that passed every check: its op, typed arguments and deadline."""

    op: str
    args: BaseModel
    deadline: float | None


class BadRequest(UserInputError):
    """A request line that is not a valid request (exit code 2 on the client)."""


def decode(line: bytes) -> dict[str, Any]:
    """One JSON object; ``BadRequest`` for anything else (including absurd nesting)."""
    try:
        doc = json.loads(line)
    except RecursionError:
        raise BadRequest("bad request: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and undecodable bytes alike
        raise BadRequest(f"bad request: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("bad request: a protocol message is a JSON object")
    return doc


def parse_request(line: bytes, *, ops: frozenset[str] | None = None) -> Request:
    """Decode and validate one request line (``ops``: the ops this server handles)."""
    doc = decode(line)
    version = doc.get("v", PROTOCOL_VERSION)
    if type(version) is not int:
        raise BadRequest(
            f"bad request: v must be the protocol version as an integer "
            f"({PROTOCOL_VERSION}), not {version!r}"
        )
    if version != PROTOCOL_VERSION:
        raise BadRequest(
            f"protocol version {version} is not supported "
            f"(this supervisor speaks {PROTOCOL_VERSION})",
            hint="use the same ringctl version for up and for control commands",
        )
    try:
        envelope = Envelope.model_validate(doc)
    except ValidationError as exc:
        raise BadRequest(f"bad request: {_first_error(exc)}") from None
    known = frozenset(REQUESTS) if ops is None else ops & frozenset(REQUESTS)
    if envelope.op not in known:
        raise BadRequest(f"unknown op {envelope.op!r} (known: {', '.join(sorted(known))})")
    try:
        args = REQUESTS[envelope.op].model_validate(envelope.args)
    except (ValidationError, RecursionError) as exc:
        why = _first_error(exc) if isinstance(exc, ValidationError) else "nested too deeply"
        raise BadRequest(f"bad request for {envelope.op!r}: args.{why}") from None
    return Request(envelope.op, args, envelope.deadline)


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "request"
    value = first.get("input")
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    if isinstance(value, float) and not math.isfinite(value):
        shown = repr(value)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg'].lower()}, got {shown[:80]}{more}"
