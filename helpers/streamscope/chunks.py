"""What a chunk of a stream says: its text, its tool-call arguments, whether it is output, its usage, model.

A chunk arrives as parsed JSON (a dict) or as the openai SDK's pydantic object
(``ChatCompletionChunk``, ``Completion``, a Responses event); the functions here read
both alike, and nothing here imports pydantic or openai. Three kinds of stream:

- chat: ``choices[i].delta.content`` is the text; usage rides on the ``include_usage`` chunk;
- legacy completions: ``choices[i].text`` is the text;
- Responses: typed events; the text is the ``delta`` of ``response.output_text.delta``,
  and the terminal event (``response.completed`` / ``.incomplete``) carries the usage.

:func:`sse_payloads` turns an SSE response body into those chunks: the one path from raw
SSE to JSON, used by the assembler, the timeline of a recording and the recorder.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .sse import ServerSentEvent, SSEDecoder

__all__ = [
    "DONE",
    "RESPONSE_LIFECYCLE_EVENTS",
    "RESPONSE_STARTED_EVENTS",
    "RESPONSE_TERMINAL_EVENTS",
    "NotJSON",
    "field",
    "fields",
    "model_of",
    "plain",
    "sse_payloads",
    "text_and_output",
    "tool_arguments",
    "usage_output_tokens",
]

DONE = "[DONE]"
"""The data of the event that ends a chat or completions stream."""

# Responses events about the response as a whole rather than its output.
RESPONSE_STARTED_EVENTS = frozenset({"response.created", "response.in_progress", "response.queued"})
RESPONSE_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
RESPONSE_LIFECYCLE_EVENTS = RESPONSE_STARTED_EVENTS | RESPONSE_TERMINAL_EVENTS | {"error"}

_SCALARS = (str, int, float, bool, type(None))


def field(obj: Any, name: str) -> Any:
    """One field of a dict or an object (None when it is absent, or ``obj`` is None)."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def fields(obj: Any) -> dict[str, Any]:
    """The fields of a JSON object or of a pydantic model, as a dict (a dict is returned as is).

    A model costs no ``model_dump``: pydantic keeps its declared fields in ``__dict__`` and
    the ones it did not declare (``obfuscation``, Azure's filter results, ...) in
    ``__pydantic_extra__``.
    """
    if type(obj) is dict:
        return obj
    extra = getattr(obj, "__pydantic_extra__", None)
    return {**obj.__dict__, **extra} if extra else obj.__dict__


def plain(value: Any) -> Any:
    """A value as JSON data: models are dumped as the API sent them; JSON data is returned as is."""
    if isinstance(value, _SCALARS) or type(value) is dict:
        return value
    if type(value) is list:
        if _is_json_list(value):
            return value
        return [plain(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if dump is None:
        raise TypeError(f"not a JSON value or a pydantic model: {type(value).__name__}")
    return dump(mode="json", by_alias=True, exclude_unset=True)


def _is_json_list(value: list[Any]) -> bool:
    """Whether a list holds JSON data only (dicts are JSON objects), however deeply its lists nest.

    Iterative: a stream can nest lists hundreds of levels deep within what its JSON reader takes.
    """
    stack = [value]
    while stack:
        for item in stack.pop():
            if type(item) is list:
                stack.append(item)
            elif not (isinstance(item, _SCALARS) or type(item) is dict):
                return False
    return True


def text_and_output(chunk: Any) -> tuple[str, bool]:
    """The chunk's generated text (over all choices), and whether it belongs to the output at all.

    "Output" is what vLLM's client times: a chat/completions chunk with non-empty
    ``choices`` (a role-only or finish-only chunk counts; Azure's first ``choices: []``
    chunk and the ``include_usage`` chunk do not), or a Responses event that is not about
    the response's lifecycle.
    """
    event_type = field(chunk, "type")
    if isinstance(event_type, str):
        text = field(chunk, "delta") if event_type == "response.output_text.delta" else None
        return (text if isinstance(text, str) else ""), event_type not in RESPONSE_LIFECYCLE_EVENTS
    choices = field(chunk, "choices") or []
    pieces = []
    for choice in choices:
        delta = field(choice, "delta")
        piece = field(delta, "content") if delta is not None else field(choice, "text")
        if isinstance(piece, str):
            pieces.append(piece)
    return "".join(pieces), bool(choices)


def tool_arguments(chunk: Any) -> str:
    """The tool-call argument fragments a chat chunk carries (over all choices and calls), joined.

    A chunk usually carries one fragment of one call; the legacy ``function_call`` copy that some
    servers (llama-cpp-python) send beside ``tool_calls`` is not counted twice.
    """
    pieces = []
    for choice in field(chunk, "choices") or ():
        for call in field(field(choice, "delta"), "tool_calls") or ():
            arguments = field(field(call, "function"), "arguments")
            if isinstance(arguments, str):
                pieces.append(arguments)
    return "".join(pieces)


def usage_output_tokens(chunk: Any) -> int | None:
    """The output tokens the chunk's usage reports (``include_usage`` chunk, Responses terminal event)."""
    usage = field(chunk, "usage")
    if usage is not None:
        return field(usage, "completion_tokens")
    if field(chunk, "type") in ("response.completed", "response.incomplete"):
        usage = field(field(chunk, "response"), "usage")
        return field(usage, "output_tokens") if usage is not None else None
    return None


def model_of(chunk: Any) -> str | None:
    """The model a chunk (or Responses event) says answered, if it names one."""
    model = field(chunk, "model")
    if model is None and isinstance(field(chunk, "type"), str):
        model = field(field(chunk, "response"), "model")
    return model or None


class NotJSON:
    """The data of an SSE event that is neither JSON nor ``[DONE]``, as it came; ``too_deep``
    when it may be JSON, but nested deeper than Python's JSON reader can follow."""

    __slots__ = ("data", "too_deep")

    def __init__(self, data: str, too_deep: bool = False) -> None:
        self.data = data
        self.too_deep = too_deep

    def __repr__(self) -> str:
        return f"NotJSON({self.data!r})"


def sse_payloads(pieces: Iterable[bytes]) -> Iterator[tuple[int, list[Any]]]:
    """The data events of an SSE body, parsed, read by read: ``(piece, payloads)``.

    ``pieces`` are the body's bytes as they arrived (one piece is fine); each comes out as its
    index and the payloads of the events its bytes completed. Last comes index -1 with the
    event the body ended inside (no blank line after it), if any. A payload is the event's
    JSON value, :data:`DONE`, or :class:`NotJSON`; events with blank data are skipped. An
    ``event: error`` whose object is not already an error (no ``type``, no ``error``)
    becomes ``{"error": object}``, as a chat stream sends it.
    """
    decoder = SSEDecoder()
    for index, piece in enumerate(pieces):
        yield index, _parsed(decoder.feed(piece))
    yield -1, _parsed(decoder.close())


def _parsed(events: list[ServerSentEvent]) -> list[Any]:
    payloads: list[Any] = []
    append, loads = payloads.append, json.loads
    for sse in events:
        data = sse.data
        if data[:1] != "{":  # not the usual JSON object: [DONE], a blank event, or not JSON
            if not data.strip():
                continue
            if data.startswith(DONE):
                append(DONE)
                continue
        try:
            payload = loads(data)
        except ValueError:
            append(NotJSON(data))
            continue
        except RecursionError:
            append(NotJSON(data, too_deep=True))
            continue
        if sse.event == "error" and type(payload) is dict and "type" not in payload:
            payload = payload if "error" in payload else {"error": payload}
        append(payload)
    return payloads
