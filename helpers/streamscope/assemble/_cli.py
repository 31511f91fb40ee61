"""``python -m streamscope assemble PATH``: a raw SSE body in, its assembled object out as JSON.

Exit status: 0 the stream is complete; 3 it ended early; 4 it carried an error (in
both cases the partial object is still printed); 2 the input is not an SSE stream of
JSON events. Messages go to stderr, one line each, without a traceback.
"""

from __future__ import annotations

import json
import sys

from ._assembler import StreamFormatError
from ._from_sse import assemble_sse

EXIT_COMPLETE, EXIT_BAD_INPUT, EXIT_INCOMPLETE, EXIT_ERROR = 0, 2, 3, 4


def _say(message: str) -> None:
    print("streamscope assemble: " + " ".join(message.split()), file=sys.stderr)


def cli_assemble(path: str) -> int:
    try:
        if path == "-":
            body = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as file:  # not pathlib: it costs the command's startup ~6 ms
                body = file.read()
    except OSError as exc:
        _say(f"cannot read {path}: {exc.strerror or exc}")
        return EXIT_BAD_INPUT
    try:
        result = assemble_sse(body)
    except StreamFormatError as exc:
        _say(f"not an SSE stream of JSON events: {exc}")
        return EXIT_BAD_INPUT
    text = json.dumps(result.object, ensure_ascii=False, indent=2) + "\n"
    sys.stdout.buffer.write(text.encode())
    sys.stdout.flush()
    for warning in result.warnings:
        _say("warning: " + warning)
    if result.error is not None:
        _say(result.reason or "the stream carried an error")
        return EXIT_ERROR
    if not result.complete:
        _say(f"the stream ended early: {result.reason}")
        return EXIT_INCOMPLETE
    return EXIT_COMPLETE
