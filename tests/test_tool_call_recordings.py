"""The tool-call recordings notebook 05 replays (llama-cpp-python serving SmolLM2), and what is drawn.

They were recorded from a real server whose chunks repeat the tool call's id, type and name and carry a
legacy ``function_call`` copy of each fragment: the assembler keeps each of them once, the live chart
counts each fragment once.
"""

from __future__ import annotations

import json

import pytest
from openai.types.chat import ChatCompletionChunk
from streamscope.assemble import assemble_sse
from streamscope.charts import TOOL_ARGUMENTS, LiveChart
from streamscope.chunks import tool_arguments
from streamscope.recording import load_recording
from streamscope.timing import Timeline

FORCED = {
    "local-smollm2-chat-tool-call-stream": "get_weather",  # the local backend's own (tools/record_local.sh)
    "local-smollm2-chat-tool-call-weather-edinburgh-stream": "get_weather",
    "local-smollm2-chat-tool-call-plan-trip-stream": "plan_trip",
}


@pytest.mark.parametrize(("name", "function"), FORCED.items())
def test_a_forced_call_assembles_to_one_call_named_once(name: str, function: str) -> None:
    recording = load_recording(name)
    assert recording.provenance["method"] == "recorded"
    assert {"model_sha256", "cpu", "threads", "server"} <= set(recording.provenance)
    result = assemble_sse(recording.sse_bytes())
    assert result.complete
    choice = result.object["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == function
    assert call["id"].startswith("call_") and call["id"].count("call_") == 1
    arguments = json.loads(call["function"]["arguments"])  # the server's grammar makes them parse
    assert choice["message"]["function_call"] == call["function"]  # the legacy copy, the same once merged
    timeline = Timeline.from_recording(recording)
    names = [c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] for c in timeline.chunks[1:-1]]
    assert set(names) == {function} and len(names) > 1  # the quirk the recordings are kept for
    assert arguments


def test_tool_arguments_reads_dicts_and_sdk_chunks_and_counts_the_legacy_copy_once() -> None:
    timeline = Timeline.from_recording(
        load_recording("local-smollm2-chat-tool-call-weather-edinburgh-stream")
    )
    pieces = [tool_arguments(chunk) for chunk in timeline.chunks]
    sdk_pieces = [tool_arguments(ChatCompletionChunk.model_validate(chunk)) for chunk in timeline.chunks]
    assert pieces == sdk_pieces
    assert json.loads("".join(pieces)) == {"city": "Edinburgh"}
    assert pieces[0] == "" and pieces[-1] == ""  # the role chunk and the finish chunk


def test_tool_choice_auto_is_answered_in_text_by_this_server() -> None:
    result = assemble_sse(load_recording("local-smollm2-chat-tool-choice-auto-stream").sse_bytes())
    choice = result.object["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert "tool_calls" not in choice["message"] and choice["message"]["content"]


def test_a_live_chart_of_argument_fragments() -> None:
    timeline = Timeline.from_recording(load_recording("local-smollm2-chat-tool-call-plan-trip-stream"))
    chart = LiveChart("plan_trip", label="test", part=TOOL_ARGUMENTS)
    chart.run(lambda: iter(timeline.chunks))
    fragments = [piece for piece in map(tool_arguments, timeline.chunks) if piece]
    assert list(chart.figure.data[0].y) == list(range(1, len(fragments) + 1))
    assert chart.text == "".join(fragments)
    assert chart.figure.data[0].name == "streamed: argument fragments"
    summary = chart.summary()
    assert f"({len(fragments)} with arguments)" in summary and "first argument fragment at" in summary
    assert chart.complete
