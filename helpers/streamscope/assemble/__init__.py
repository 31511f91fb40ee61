"""Turning a stream into the object the same request returns without streaming.

Feed an `Assembler` the events of a stream as they arrive: parsed JSON dicts, or the
SDK's own objects (``ChatCompletionChunk``, ``Completion``, Responses events) while
iterating a ``stream=True`` call. At any moment `Assembler.snapshot` gives the object
so far, in OpenAI's final shape, and `Assembler.result` says whether the stream
arrived in full::

    asm = Assembler()
    for chunk in client.chat.completions.create(..., stream=True):
        asm.feed(chunk)
    asm.result().object   # a chat.completion dict

The kind of stream (``chat.completion``, legacy ``text_completion``, or a Responses
``response``) is recognised from its events. `assemble_sse` does the same from a raw
SSE response body, and `assemble_events` from any iterable of events, keeping what
arrived when the iteration breaks.

"Complete" is about the transport: the server sent everything it meant to send.
Read from raw SSE, a chat or completions stream is complete when ``data: [DONE]``
arrived (some servers never send a ``finish_reason``; that choice's stays null); fed
events without the marker (the SDK's iterators swallow it), when every choice has a
``finish_reason``. A Responses stream is complete when its terminal event arrived.
A response cut by ``max_tokens`` (``finish_reason: "length"``, or
``response.incomplete``) is a complete stream of a truncated answer. A stream that
carried an error is never complete; its ``error`` is kept and its message is the
``reason``. Nothing that arrived is dropped.

Servers other than OpenAI differ in where they put things; the rules for each (usage
in ``x_groq``, reasoning under ``reasoning_content`` or ``reasoning``, thinking parts,
repeated fields) are in ``_choices``'s docstring and the README's table.
"""

from ..errors import StreamFormatError
from ._assembler import Assembler, AssembleResult, assemble_events
from ._from_sse import assemble_sse

__all__ = [
    "AssembleResult",
    "Assembler",
    "StreamFormatError",
    "assemble_events",
    "assemble_sse",
]
