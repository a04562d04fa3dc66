"""The control protocol: one JSON document per line, in both directions.

A request is ``{"v": 1, "op": ..., "args": {...}}``. A reply is ``{"v": 1, "ok": true,
"result": ...}`` or ``{"v": 1, "ok": false, "error": {"message", "hint", "exit_code"}}``.
``watch`` answers with a stream of ``{"v": 1, "event": "status", "data": {...}}`` lines;
``down`` sends ``{"event": "progress", ...}`` lines before its reply; ``tap`` sends one
``{"event": "message", "data": {...}}`` line per message it saw, then its reply. Requests that
change things are run one at a time by the supervisor, so ``pause`` racing ``down`` is
well defined: whichever the supervisor took first completes, the other sees its result.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["OPS", "PROTOCOL_VERSION", "decode", "encode", "error_reply", "ok_reply"]

PROTOCOL_VERSION: Final = 1
OPS: Final = frozenset(
    {"ping", "status", "pause", "resume", "down", "watch", "restart", "scale", "tap"}
)
#: A request line longer than this is refused (nothing legitimate comes close).
MAX_LINE: Final = 1 << 20


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), default=str).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    doc = json.loads(line)
    if not isinstance(doc, dict):
        raise ValueError("a protocol message is a JSON object")
    return doc


def ok_reply(result: Any = None) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "ok": True, "result": result}


def error_reply(message: str, hint: str | None = None, exit_code: int = 1) -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "ok": False,
        "error": {"message": message, "hint": hint, "exit_code": exit_code},
    }
