"""What the replay server promises its clients: endpoints, header names, speed, faults, error shape.

No starlette here: the backend switch reads these names without loading the server.
"""

from __future__ import annotations

import ipaddress
import math
import reprlib
from dataclasses import dataclass
from typing import Any

from ..errors import BackendError

__all__ = [
    "ARRIVAL_KEY",
    "ENDPOINTS",
    "FAULT_HEADER",
    "MAX_BODY_BYTES",
    "NOTE_HEADER",
    "REQUEST_ID_HEADER",
    "REQUEST_TIMEOUT_S",
    "SENT_LOG_LENGTH",
    "SENT_LOG_PATH",
    "SPEED_HEADER",
    "TRANSPORT_KEY",
    "USAGE_NOT_RECORDED",
    "Fault",
    "check_speed",
]

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/responses")
SENT_LOG_PATH = "/streamscope/sent"
SPEED_HEADER = "x-streamscope-speed"
FAULT_HEADER = "x-streamscope-fault"
REQUEST_ID_HEADER = "x-streamscope-request"  # on every answer from a recording: its line in the sent log
ARRIVAL_KEY = "streamscope.arrival"  # in the ASGI scope: loop.time() when the request arrived
TRANSPORT_KEY = "streamscope.transport"  # in the ASGI scope: the connection's asyncio transport
MAX_BODY_BYTES = 4 * 1024 * 1024
REQUEST_TIMEOUT_S = 10.0  # from a request's first byte to its whole head, and from its head to its whole body
SENT_LOG_LENGTH = 1000


_HOW_TO_LIST = "List what is recorded with `python -m streamscope list`."
# Error messages quote what was asked; a quote is cut to this many characters, a message to _MESSAGE_CHARS.
_QUOTE_CHARS = 80
_MESSAGE_CHARS = 2000
_HOW_TO_GO_LIVE = (
    "To send requests to a live API instead, set STREAMSCOPE_BACKEND=openai (with OPENAI_API_KEY) "
    "or STREAMSCOPE_BACKEND=<base URL of an OpenAI-compatible server>."
)
_MATCH_RULE = (
    "A recording answers a request when the path and every field that can change the output are equal "
    "as the API reads them (0 = 0.0, a field at its default = the field left out, a string content = its "
    "one-part list; the README's table 'Which recording answers a request')."
)
# What the answer says (header and streamscope.last_source()) when include_usage was asked of a
# recording made without it: the stream goes out as recorded, as from a server that ignores the option.
NOTE_HEADER = "x-streamscope-note"
USAGE_NOT_RECORDED = (
    "stream_options.include_usage was asked, but the recording was made without it: "
    "the stream as recorded, with no usage chunk (as a server that ignores the option answers)"
)


def check_speed(speed: float) -> float:
    """Return ``speed`` as a float, or raise BackendError if it is not a finite number >= 0."""
    try:
        value = float(speed)
    except (TypeError, ValueError):
        raise BackendError(
            f"speed must be a number >= 0 (1 = as recorded, 0 = no waiting), got {speed!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise BackendError(
            f"speed must be a finite number >= 0 (1 = as recorded, 0 = no waiting), got {speed!r}"
        )
    return value


_short = reprlib.Repr()
_short.maxstring = _short.maxother = _QUOTE_CHARS
_short.maxlong = _QUOTE_CHARS // 2


def _error_content(message: str, kind: str, code: str | None) -> dict[str, Any]:
    # A message quotes what was asked: cut it to size, and spell out lone surrogates (not UTF-8).
    if len(message) > _MESSAGE_CHARS:
        message = message[: _MESSAGE_CHARS - 3] + "..."
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


@dataclass(frozen=True)
class Fault:
    """A failure the client asks the replay server to stage, with the ``x-streamscope-fault`` header.

    The header holds comma-separated ``name=value`` items; N counts the recording's SSE
    events (``[DONE]`` included):

    - ``cut-after=N``: send N events, then drop the connection (no last chunk, no ``[DONE]``);
    - ``error-after=N``: send N events, then an error event (chat and completions:
      ``data: {"error": {...}}``, which the SDK raises as ``APIError``; Responses: an
      ``error`` event), then end the response;
    - ``stall=S``: after event ``stall-after=N`` (default 1), wait S extra seconds (at any speed).
    """

    cut_after: int | None = None
    error_after: int | None = None
    stall_s: float = 0.0
    stall_after: int = 1

    @classmethod
    def parse(cls, header: str) -> Fault:
        """The fault a header asks for; ValueError with a one-line reason if it asks nonsense."""
        items: dict[str, str] = {}
        for item in header.split(","):
            name, sep, value = item.partition("=")
            name = name.strip().lower()
            if not sep or name not in ("cut-after", "error-after", "stall", "stall-after") or name in items:
                raise ValueError(f"cannot read {item.strip()[:_QUOTE_CHARS]!r}")
            items[name] = value.strip()
        if "cut-after" in items and "error-after" in items:
            raise ValueError("cut-after and error-after cannot both end the stream")
        counts = {k: items[k] for k in ("cut-after", "error-after", "stall-after") if k in items}
        for name, value in counts.items():
            if not value.isdigit() or int(value) > 1_000_000:
                raise ValueError(f"{name} must be a whole number of events, got {value[:_QUOTE_CHARS]!r}")
        stall = items.get("stall", "0")
        try:
            stall_s = float(stall)
        except ValueError:
            stall_s = -1.0
        if not 0 <= stall_s <= 3600:
            raise ValueError(
                f"stall must be a number of seconds from 0 to 3600, got {stall[:_QUOTE_CHARS]!r}"
            )
        return cls(
            cut_after=int(counts["cut-after"]) if "cut-after" in counts else None,
            error_after=int(counts["error-after"]) if "error-after" in counts else None,
            stall_s=stall_s,
            stall_after=int(counts.get("stall-after", 1)),
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
