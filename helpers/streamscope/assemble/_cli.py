"""``python -m streamscope assemble PATH``: a raw SSE body in, its assembled object out as JSON.

Exit status: 0 the stream is complete; 3 it ended early; 4 it carried an error (in
both cases the partial object is still printed); 2 the input is not an SSE stream of
JSON events, or cannot be read; 5 the result could not be written (stdout closed, or
its reader went away). Anything to say goes to stderr as one line, without a
traceback: the status, then any warnings (fields of the wrong type that were skipped,
deltas that do not add up).

The output is always RFC 8259 JSON, indented (compact when nested deeper than
``_INDENTED_DEPTH`` levels): a number JSON cannot hold (``NaN``, ``Infinity``, or
``1e400``, which Python reads as infinity) is printed as ``null``, a lone surrogate
(``"\\ud800"``) as U+FFFD, the replacement character the SSE decoder also puts for
invalid UTF-8.

The input is read in pieces while it is assembled, and the output written in pieces,
so memory holds the assembled result, not the body.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from functools import partial
from typing import Any

from ._assembler import StreamFormatError
from ._from_sse import assemble_sse

EXIT_COMPLETE, EXIT_BAD_INPUT, EXIT_INCOMPLETE, EXIT_ERROR, EXIT_CANNOT_WRITE = 0, 2, 3, 4, 5
_PIECE = 1 << 16  # bytes read, and written, at a time
# The indenting encoder is json's pure-Python one: a Python frame per level of nesting.
_INDENTED_DEPTH = 100
_SURROGATE = re.compile("[\ud800-\udfff]")


def _say(message: str) -> None:
    if sys.stderr is None:  # started with stderr closed: nothing can be said
        return
    with contextlib.suppress(OSError, ValueError):
        print("streamscope assemble: " + " ".join(message.split()), file=sys.stderr, flush=True)


def cli_assemble(path: str) -> int:
    name = "stdin" if path == "-" else path
    try:
        if path != "-":
            # Not pathlib: it costs the command's startup ~6 ms. Closed by the `with` below.
            file = open(path, "rb")  # noqa: SIM115
        elif sys.stdin is not None:
            file = sys.stdin.buffer
        else:
            raise OSError("it is closed")
        with file:
            result = assemble_sse(iter(partial(file.read, _PIECE), b""))
    except OSError as exc:
        _say(f"cannot read {name}: {exc.strerror or exc}")
        return EXIT_BAD_INPUT
    except StreamFormatError as exc:
        _say(f"not an SSE stream of JSON events: {exc}")
        return EXIT_BAD_INPUT
    try:
        _write_json(result.object)
    except (OSError, ValueError) as exc:  # ValueError: writing to a closed file
        _say(f"cannot write the result: {getattr(exc, 'strerror', None) or exc}")
        _discard_stdout()
        return EXIT_CANNOT_WRITE
    if result.error is not None:
        status, code = result.reason or "the stream carried an error", EXIT_ERROR
    elif not result.complete:
        status, code = f"the stream ended early: {result.reason}", EXIT_INCOMPLETE
    else:
        status, code = "", EXIT_COMPLETE
    said = [status] if status else []
    said += ["warning: " + warning for warning in result.warnings]
    if said:
        _say("; ".join(said))
    return code


def _write_json(obj: dict[str, Any]) -> None:
    if sys.stdout is None:
        raise OSError("stdout is closed")
    depth = _finite(obj)
    if depth <= _INDENTED_DEPTH:
        pieces = json.JSONEncoder(ensure_ascii=False, indent=2, allow_nan=False).iterencode(obj)
    else:
        pieces = iter([json.dumps(obj, ensure_ascii=False, allow_nan=False)])
    out = sys.stdout.buffer
    pending: list[str] = []
    size = 0
    for piece in pieces:
        pending.append(piece)
        size += len(piece)
        if size >= _PIECE:
            out.write(_utf8("".join(pending)))
            pending.clear()
            size = 0
    pending.append("\n")
    out.write(_utf8("".join(pending)))
    out.flush()


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # lone surrogates, from "\ud800" escapes: only inside strings
        return _SURROGATE.sub("\ufffd", text).encode()


def _finite(obj: Any) -> int:
    """Replace non-finite numbers in ``obj`` by None, in place; return its depth. Iterative:
    a deep value must not exhaust the recursion limit here."""
    depth = 0
    stack = [(obj, 1)]
    while stack:
        container, level = stack.pop()
        depth = max(depth, level)
        entries = container.items() if type(container) is dict else enumerate(container)
        for key, value in entries:
            if type(value) is dict or type(value) is list:
                stack.append((value, level + 1))
            elif type(value) is float and not math.isfinite(value):
                container[key] = None
    return depth


def _discard_stdout() -> None:
    """After a failed write, send what stdout still buffers to /dev/null: flushing it at exit
    would fail again, as an "Exception ignored" traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # stdout has no descriptor: nothing to flush
        pass
