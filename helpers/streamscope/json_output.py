"""Writing an assembled object to stdout as JSON that is always valid, whatever the stream held.

The output is RFC 8259 JSON, indented (compact when nested deeper than ``INDENTED_DEPTH``
levels): a number JSON cannot hold (``NaN``, ``Infinity``, or ``1e400``, which Python reads as
infinity) is written as ``null``, a lone surrogate (``"\\ud800"``) as U+FFFD, the replacement
character the SSE decoder also puts for invalid UTF-8. It is written in pieces, so memory holds
the object, not its text as well.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from typing import Any

__all__ = [
    "INDENTED_DEPTH",
    "PIECE",
    "discard_stdout",
    "write_json",
]

PIECE = 1 << 16  # bytes read, and written, at a time
# The indenting encoder is json's pure-Python one: a Python frame per level of nesting.
INDENTED_DEPTH = 100
_SURROGATE = re.compile("[\ud800-\udfff]")


def write_json(obj: dict[str, Any]) -> None:
    """Write ``obj`` to stdout; raises OSError (or ValueError, for a closed file) when it cannot."""
    if sys.stdout is None:
        raise OSError("stdout is closed")
    depth = _finite(obj)
    if depth <= INDENTED_DEPTH:
        pieces = json.JSONEncoder(ensure_ascii=False, indent=2, allow_nan=False).iterencode(obj)
    else:
        pieces = iter([json.dumps(obj, ensure_ascii=False, allow_nan=False)])
    out = sys.stdout.buffer
    pending: list[str] = []
    size = 0
    for piece in pieces:
        pending.append(piece)
        size += len(piece)
        if size >= PIECE:
            out.write(_utf8("".join(pending)))
            pending.clear()
            size = 0
    pending.append("\n")
    out.write(_utf8("".join(pending)))
    out.flush()


def discard_stdout() -> None:
    """After a failed write, send what stdout still buffers to /dev/null: flushing it at exit
    would fail again, as an "Exception ignored" traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # stdout has no descriptor: nothing to flush
        pass


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
