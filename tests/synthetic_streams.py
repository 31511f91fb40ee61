"""Test-only chunk streams, built in code: chat-completion chunk dicts that arrive with small gaps.

Shared by the tests of the live chart and of its static image; they say they are synthetic.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

PIECES = [f"{i}, " for i in range(1, 41)]


def chunk(delta: dict, finish_reason: str | None = None) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "test-only",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def chunk_source(
    pieces: list[str] = PIECES, gap: float = 0.001, fail_after: int | None = None
) -> Iterator[dict]:
    """A test-only stream: a role chunk, one chunk per piece, a finish chunk; optionally breaks."""
    yield chunk({"role": "assistant"})
    for i, piece in enumerate(pieces):
        if fail_after is not None and i == fail_after:
            raise ConnectionError("connection dropped by the test source")
        time.sleep(gap)
        yield chunk({"content": piece})
    yield chunk({}, "stop")
