"""Assembling a raw SSE response body: its events parsed (``chunks.sse_payloads``), then the `Assembler`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..chunks import DONE, NotJSON, sse_payloads
from ..errors import StreamFormatError
from ._assembler import Assembler, AssembleResult


def assemble_sse(data: bytes | str | Iterable[bytes]) -> AssembleResult:
    """Assemble a raw SSE response body, whole or as the pieces the network delivered.

    Raises `StreamFormatError` when the input is not an SSE stream of JSON events.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")  # a lone surrogate: U+FFFD, as invalid UTF-8 is
    pieces: Iterable[bytes] = [bytes(data)] if isinstance(data, (bytes, bytearray, memoryview)) else data
    assembler = Assembler(require_done=True)
    feed = assembler.feed
    seen = 0
    cut = False
    for piece, payloads in sse_payloads(pieces):
        for payload in payloads:
            seen += 1
            try:
                if type(payload) is dict:
                    try:
                        feed(payload)
                    except StreamFormatError as exc:
                        raise StreamFormatError(f"event {seen}: {exc}", assembler.result()) from None
                elif payload is DONE:
                    feed(DONE)
                else:
                    raise _not_an_object(payload, seen, assembler)
            except StreamFormatError:
                # The stream stopped inside its last event (piece -1); before any whole event, only
                # the start of a JSON object says that this was an event stream at all.
                if piece >= 0 or (seen == 1 and not _opens_an_object(payload)):
                    raise
                cut = True
    if not seen:
        raise StreamFormatError("no SSE data events in the input")
    result = assembler.result()
    if cut:
        reason = "; ".join(filter(None, [result.reason, "the stream ended inside an event"]))
        result = result._replace(complete=False, reason=reason)
    return result


def _not_an_object(payload: Any, seen: int, assembler: Assembler) -> StreamFormatError:
    if type(payload) is NotJSON:
        what = "is JSON nested too deeply to read" if payload.too_deep else "is not JSON"
        return StreamFormatError(f"event {seen} {what}: {payload.data[:60]!r}", assembler.result())
    data = json.dumps(payload)
    return StreamFormatError(f"event {seen} is not a JSON object: {data[:60]!r}", assembler.result())


def _opens_an_object(payload: Any) -> bool:
    return type(payload) is dict or (type(payload) is NotJSON and payload.data.lstrip().startswith("{"))
