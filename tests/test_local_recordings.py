"""The project's own recordings of the local backend (``local-*``), and this server's quirks.

They were made by ``tools/record_local.sh`` (``python -m streamscope record --backend local``).
Each test reads a committed recording, so none needs the local extra. The quirks of
llama-cpp-python's server are checked to be in the recordings (so that the assembler's handling
of them is tested on the real thing) and to come out right through ``streamscope.assemble``.
"""

from __future__ import annotations

import json
import math

import pytest
from streamscope.assemble import assemble_sse
from streamscope.backends import local
from streamscope.recording import Recording, iter_recordings, load_recording
from streamscope.timing import CONVENTIONS, Timeline

LOCAL = [r for r in iter_recordings() if r.name.startswith("local-")]
SHA256_OF = {m.file_name: m.sha256 for m in local.MODELS}


def _payloads(rec: Recording) -> list[dict]:
    return [
        json.loads(e.raw.strip()[len("data: ") :]) for e in rec.events or [] if e.raw.startswith("data: {")
    ]


def test_there_are_local_recordings() -> None:
    assert len(LOCAL) >= 8


@pytest.mark.parametrize("rec", LOCAL, ids=[r.name for r in LOCAL])
def test_provenance_says_where_and_how(rec: Recording) -> None:
    p = rec.provenance
    assert p["method"] == "recorded"
    assert p["timing_resolution_s"] == 1e-6
    assert p["server"].startswith("llama-cpp-python ")
    assert SHA256_OF[p["model_file"]] == p["model_sha256"]
    assert p["cpu"] and p["threads"] >= 1 and p["date"]
    assert "no usage chunk" in p["notes"]  # the quirk every recording of this server must name
    assert "Bearer" not in rec.dumps()


@pytest.mark.parametrize("rec", [r for r in LOCAL if r.streamed], ids=lambda r: r.name)
def test_streams_are_timed_to_the_microsecond(rec: Recording) -> None:
    times = [e.t for e in rec.events or []]
    assert times == sorted(times) and times[-1] > 0
    assert any(round(t, 3) != t for t in times)  # finer than the seed's 10 ms, and than 1 ms


def test_counting_chat_streamed_assembles_to_the_non_streamed_reply() -> None:
    streamed = assemble_sse(load_recording("local-smollm2-chat-count-to-50-stream").sse_bytes())
    plain = load_recording("local-smollm2-chat-count-to-50").body
    assert streamed.complete
    [choice] = streamed.object["choices"]
    assert choice["message"]["content"] == plain["choices"][0]["message"]["content"]
    assert choice["finish_reason"] == "stop"
    assert "50" in choice["message"]["content"]
    assert streamed.object["usage"] is None  # this server sends no usage in a stream
    assert plain["usage"]["completion_tokens"] > 0


def test_one_token_per_chunk_gives_finite_positive_metrics() -> None:
    timeline = Timeline.from_recording(load_recording("local-smollm2-chat-count-to-50-stream"))
    for name in CONVENTIONS:
        m = timeline.metrics(name)
        for value in (m.ttft, m.tpot, m.e2el, m.tokens_per_s):
            assert value is not None and math.isfinite(value) and value > 0


def test_max_tokens_cut_is_a_complete_stream_with_finish_reason_length() -> None:
    rec = load_recording("local-smollm2-chat-count-to-50-max-tokens-stream")
    result = assemble_sse(rec.sse_bytes())
    assert result.complete
    assert result.object["choices"][0]["finish_reason"] == "length"
    content_chunks = sum(bool(c["choices"][0]["delta"].get("content")) for c in _payloads(rec))
    assert content_chunks == rec.request["body"]["max_tokens"]


def test_logprobs_arrive_with_each_token_and_assemble_in_order() -> None:
    rec = load_recording("local-smollm2-chat-logprobs-stream")
    result = assemble_sse(rec.sse_bytes())
    [choice] = result.object["choices"]
    tokens = [entry["token"] for entry in choice["logprobs"]["content"]]
    assert "".join(tokens) == choice["message"]["content"]
    assert all(len(entry["top_logprobs"]) == 3 for entry in choice["logprobs"]["content"])


def test_forced_tool_call_repeats_id_and_name_and_copies_function_call() -> None:
    rec = load_recording("local-smollm2-chat-tool-call-stream")
    calls = [c["choices"][0]["delta"] for c in _payloads(rec) if c["choices"][0]["delta"].get("tool_calls")]
    # The quirk is in the recording: every fragment names the call again, with a legacy copy.
    assert len(calls) > 2
    assert all(d["tool_calls"][0]["id"] == calls[0]["tool_calls"][0]["id"] for d in calls)
    assert all(d["tool_calls"][0]["function"]["name"] == "get_weather" for d in calls)
    assert all(d["function_call"]["name"] == "get_weather" for d in calls)

    result = assemble_sse(rec.sse_bytes())
    assert result.complete
    message = result.object["choices"][0]["message"]
    [call] = message["tool_calls"]
    assert call["id"] == calls[0]["tool_calls"][0]["id"]
    assert call["function"]["name"] == "get_weather"  # once, not get_weatherget_weather...
    assert json.loads(call["function"]["arguments"])["city"]  # the grammar made it valid JSON
    assert message["function_call"] == call["function"]  # the legacy copy, assembled the same way


def test_n_and_include_usage_are_ignored() -> None:
    rec = load_recording("local-smollm2-chat-n2-include-usage-stream")
    assert rec.request["body"]["n"] == 2 and rec.request["body"]["stream_options"]["include_usage"]
    result = assemble_sse(rec.sse_bytes())
    assert result.complete
    assert [c["index"] for c in result.object["choices"]] == [0]
    assert result.object["usage"] is None


def test_error_answer_is_a_500_with_an_openai_shaped_body() -> None:
    rec = load_recording("local-smollm2-chat-error")
    assert rec.status == 500 and not rec.streamed
    assert isinstance(rec.request["body"]["messages"], str)
    assert set(rec.body["error"]) >= {"message", "type"}


def test_legacy_completion_counts_on() -> None:
    streamed = assemble_sse(load_recording("local-gemma3-completion-count-stream").sse_bytes())
    plain = load_recording("local-gemma3-completion-count").body
    text = streamed.object["choices"][0]["text"]
    assert streamed.object["object"] == "text_completion"
    assert text.startswith("4,5,6,7,8,9,10")
    assert text == plain["choices"][0]["text"]
