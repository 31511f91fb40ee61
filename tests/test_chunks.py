"""What a chunk says, read alike from dicts and SDK objects, and the one path from raw SSE to JSON."""

from __future__ import annotations

from openai.types.chat import ChatCompletionChunk
from streamscope.chunks import DONE, NotJSON, model_of, sse_payloads, text_and_output, usage_output_tokens

CHUNK = {
    "id": "chatcmpl-test",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "test-only",
    "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}],
}


def test_a_dict_and_an_sdk_object_say_the_same() -> None:
    model = ChatCompletionChunk.model_validate(CHUNK)
    for chunk in (CHUNK, model):
        assert text_and_output(chunk) == ("Hi", True)
        assert model_of(chunk) == "test-only"
        assert usage_output_tokens(chunk) is None


def test_usage_chunk_and_responses_events() -> None:
    usage = {**CHUNK, "choices": [], "usage": {"completion_tokens": 7}}
    assert text_and_output(usage) == ("", False)
    assert usage_output_tokens(usage) == 7
    delta = {"type": "response.output_text.delta", "delta": "Hi"}
    assert text_and_output(delta) == ("Hi", True)
    completed = {"type": "response.completed", "response": {"model": "m", "usage": {"output_tokens": 3}}}
    assert text_and_output(completed) == ("", False)
    assert (usage_output_tokens(completed), model_of(completed)) == (3, "m")


def test_sse_payloads_parse_each_data_event_read_by_read() -> None:
    pieces = [b'data: {"a": 1}\n\ndata: ', b"\n\ndata: [DONE]\n\n", b"event: error\ndata: {"]
    pieces.append(b'"m": 2}\n\ndata: x')
    got = list(sse_payloads(pieces))
    assert got[:3] == [(0, [{"a": 1}]), (1, [DONE]), (2, [])]  # the blank event is skipped
    assert got[3] == (3, [{"error": {"m": 2}}])  # an `event: error` object becomes an error
    piece, [last] = got[4]
    assert piece == -1 and type(last) is NotJSON and last.data == "x"  # the body ended inside it
