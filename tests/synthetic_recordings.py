"""Test-only recordings, built in code: a streamed chat that counts to 5 and a non-streamed completion.

Shared by the tests of the replay server and of the recorder; they say they are synthetic.
"""

from __future__ import annotations

import json
import time
from typing import Any

from streamscope.recording import Event, Recording

PROMPT = "Count to 5, with a comma between each number. (test only)"
CHAT_BODY = {
    "model": "gpt-test",
    "messages": [{"role": "user", "content": PROMPT}],
    "temperature": 0,
    "stream": True,
}
WORDS = ["1", ",", " 2", ",", " 3", ",", " 4", ",", " 5"]


def synthetic_chat_recording(
    name: str = "test-count-to-5", offsets: list[float] | None = None, body: dict | None = None
) -> Recording:
    """A test-only streamed chat recording: a role chunk, WORDS, a stop chunk, [DONE]."""
    deltas = [{"role": "assistant", "content": ""}, *({"content": w} for w in WORDS), {}]
    offsets = offsets or [0.05 + 0.01 * i for i in range(len(deltas) + 1)]
    events = []
    for i, delta in enumerate(deltas):
        chunk = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "gpt-test-0001",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None if delta else "stop"}],
        }
        events.append(Event(offsets[i], f"data: {json.dumps(chunk)}\n\n"))
    events.append(Event(offsets[len(deltas)], "data: [DONE]\n\n"))
    return Recording(
        name=name,
        provenance={"source": "synthetic, built by the tests", "method": "synthetic"},
        request={"method": "POST", "path": "/v1/chat/completions", "body": dict(body or CHAT_BODY)},
        headers={"content-type": "text/event-stream; charset=utf-8", "x-request-id": "req_test"},
        events=events,
    )


def synthetic_completion_recording() -> Recording:
    """A test-only non-streamed legacy completion."""
    return Recording(
        name="test-completion",
        provenance={"source": "synthetic, built by the tests", "method": "synthetic"},
        request={
            "method": "POST",
            "path": "/v1/completions",
            "body": {"model": "gpt-test", "prompt": "1, 2,"},
        },
        headers={"content-type": "application/json"},
        body={
            "id": "cmpl-test",
            "object": "text_completion",
            "created": 1700000000,
            "model": "gpt-test-0001",
            "choices": [{"text": " 3", "index": 0, "logprobs": None, "finish_reason": "stop"}],
        },
        elapsed=0.2,
    )


def finished_line(server: Any, wait_s: float = 5.0) -> dict[str, Any]:
    """A ReplayServer's latest sent-log line once it has stopped sending: the client can read the
    last event before the server's handler, resumed after the write, notes it."""
    deadline = time.monotonic() + wait_s
    while (line := server.sent_line()) is None or line["state"] == "sending":
        assert time.monotonic() < deadline, f"the replay server is still sending: {line}"
        time.sleep(0.01)
    return line
