"""The protocol's framing, without its models: what a client needs to talk.

One JSON document per line. Kept apart from ``protocol`` (the request models, which need
pydantic) so that ``ringctl ps`` starts without importing pydantic.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["MAX_LINE", "PROTOCOL_VERSION", "encode", "error_reply", "event", "ok_reply"]

PROTOCOL_VERSION: Final = 1
#: A request line longer than this is refused (nothing legitimate comes close).
MAX_LINE: Final = 1 << 20


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), default=str).encode() + b"\n"


def ok_reply(result: Any = None) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "ok": True, "result": result}


def error_reply(message: str, hint: str | None = None, exit_code: int = 1) -> dict[str, Any]:
    return {
        "v": PROTOCOL_VERSION,
        "ok": False,
        "error": {"message": message, "hint": hint, "exit_code": exit_code},
    }


def event(kind: str, data: Any) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "event": kind, "data": data}
