"""Assembling a raw SSE response body: SSE decoding, JSON parsing, then the `Assembler`."""

from __future__ import annotations

import json
from collections.abc import Iterable

from ..sse import ServerSentEvent, SSEDecoder
from ._assembler import DONE, Assembler, AssembleResult, StreamFormatError


def assemble_sse(data: bytes | str | Iterable[bytes]) -> AssembleResult:
    """Assemble a raw SSE response body, whole or as the pieces the network delivered.

    Raises `StreamFormatError` when the input is not an SSE stream of JSON events.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")  # a lone surrogate: U+FFFD, as invalid UTF-8 is
    pieces: Iterable[bytes] = [bytes(data)] if isinstance(data, (bytes, bytearray, memoryview)) else data
    decoder = SSEDecoder()
    assembler = Assembler(require_done=True)
    seen = 0
    for piece in pieces:
        seen = _feed_sse(assembler, decoder.feed(piece), seen)
    cut = False
    tail = decoder.close()
    try:
        seen = _feed_sse(assembler, tail, seen)
    except StreamFormatError:
        # The stream stopped inside its last event; before any whole event, only
        # the start of a JSON object says that this was an event stream at all.
        if not seen and not tail[-1].data.lstrip().startswith("{"):
            raise
        cut = True
    if not seen and not cut:
        raise StreamFormatError("no SSE data events in the input")
    result = assembler.result()
    if cut:
        reason = "; ".join(filter(None, [result.reason, "the stream ended inside an event"]))
        result = result._replace(complete=False, reason=reason)
    return result


def _feed_sse(assembler: Assembler, events: list[ServerSentEvent], seen: int) -> int:
    loads = json.loads
    for sse in events:
        data = sse.data
        if data[:1] != "{":  # not the usual JSON object: [DONE], a blank event, or not JSON
            if not data.strip():
                continue
            if data.startswith(DONE):
                assembler.feed(DONE)
                seen += 1
                continue
        seen += 1
        try:
            payload = loads(data)
        except ValueError:
            raise StreamFormatError(f"event {seen} is not JSON: {data[:60]!r}", assembler.result()) from None
        except RecursionError:
            message = f"event {seen} is JSON nested too deeply to read: {data[:60]!r}"
            raise StreamFormatError(message, assembler.result()) from None
        if type(payload) is not dict:
            raise StreamFormatError(f"event {seen} is not a JSON object: {data[:60]!r}", assembler.result())
        if sse.event == "error" and "type" not in payload and "error" not in payload:
            payload = {"error": payload}
        try:
            assembler.feed(payload)
        except StreamFormatError as exc:
            raise StreamFormatError(f"event {seen}: {exc}", assembler.result()) from None
    return seen
