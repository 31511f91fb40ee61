"""The matching rule (streamscope.matching) and the replay server's use of it: forms, the 404, include_usage.

Properties with hypothesis: a request rewritten in a spelling the API reads the same way
(numbers as floats, defaults spelled out, one-part content lists, ignored fields, key order)
has the same form; a request edited in a field that changes the output does not, and the
fields that differ name the edit. No test asserts a duration: the bounded 404 is checked on
the work done (fields compared), benchmarks/replay.py times a match.
"""

from __future__ import annotations

import copy
import json

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamscope.matching import CHAT, RESPONSES, differing_fields, match_key, request_form
from streamscope.replay import NOTE_HEADER, USAGE_NOT_RECORDED, RecordingIndex, ReplayServer
from synthetic_recordings import CHAT_BODY, synthetic_chat_recording

PROPERTY = settings(max_examples=150, deadline=None)

texts = st.text(min_size=1, max_size=30)
numbers = st.one_of(st.integers(0, 2), st.floats(0, 2, allow_nan=False).map(lambda x: round(x, 2)))


@st.composite
def chat_bodies(draw: st.DrawFn) -> dict:
    roles = st.sampled_from(["system", "user", "assistant"])
    messages = draw(
        st.lists(st.fixed_dictionaries({"role": roles, "content": texts}), min_size=1, max_size=3)
    )
    body = {"model": draw(texts), "messages": messages, "stream": draw(st.booleans())}
    for name, values in {
        "temperature": numbers,
        "max_tokens": st.integers(1, 500),
        "seed": st.integers(0, 10),
        "stop": st.lists(texts, min_size=1, max_size=2),
    }.items():
        if draw(st.booleans()):
            body[name] = draw(values)
    return body


@st.composite
def responses_bodies(draw: st.DrawFn) -> dict:
    body = {"model": draw(texts), "input": draw(texts), "stream": draw(st.booleans())}
    if draw(st.booleans()):
        body["temperature"] = draw(numbers)
    if draw(st.booleans()):
        body["instructions"] = draw(texts)
    return body


def _as_float(value: object) -> object:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


# Rewrites that the API reads as the same request (each one the rule names).
def _chat_rewrites(draw: st.DrawFn, body: dict) -> dict:
    new = copy.deepcopy(body)
    if draw(st.booleans()):
        new = {k: _as_float(v) for k, v in new.items()}
    defaults = {
        "n": 1,
        "top_p": 1.0,
        "tools": [],
        "parallel_tool_calls": True,
        "presence_penalty": 0.0,
        "frequency_penalty": 0,
        "logprobs": False,
        "stream_options": {"include_obfuscation": True},
        "user": "someone",
        "metadata": {"run": "7"},
        "response_format": {"type": "text"},
    }
    for name, value in defaults.items():
        if name not in new and draw(st.booleans()):
            new[name] = value
    for name in ("max_tokens", "seed", "stop", "temperature"):
        if name not in new and draw(st.booleans()):
            new[name] = None
    if "temperature" not in new and draw(st.booleans()):
        new["temperature"] = 1.0
    for message in new["messages"]:
        if draw(st.booleans()):
            message["content"] = [{"type": "text", "text": message["content"]}]
    keys = draw(st.permutations(list(new)))
    return {k: new[k] for k in keys}


def _responses_rewrites(draw: st.DrawFn, body: dict) -> dict:
    new = copy.deepcopy(body)
    text = new["input"]
    new["input"] = draw(
        st.sampled_from(
            [
                text,
                [{"role": "user", "content": text}],
                [{"role": "user", "content": [{"type": "input_text", "text": text}]}],
                [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}],
            ]
        )
    )
    for name, value in {"include": [], "tools": [], "parallel_tool_calls": False, "top_p": 1}.items():
        if draw(st.booleans()):
            new[name] = value
    if "temperature" in new:
        new["temperature"] = _as_float(new["temperature"])
    return new


@PROPERTY
@given(st.data())
def test_equivalent_chat_requests_have_one_form(data: st.DataObject) -> None:
    body = data.draw(chat_bodies())
    rewritten = _chat_rewrites(data.draw, body)
    assert match_key(CHAT, rewritten) == match_key(CHAT, body), rewritten
    assert request_form(CHAT, request_form(CHAT, body)) == request_form(CHAT, body)  # a form is its own form


@PROPERTY
@given(st.data())
def test_equivalent_responses_requests_have_one_form(data: st.DataObject) -> None:
    body = data.draw(responses_bodies())
    rewritten = _responses_rewrites(data.draw, body)
    assert match_key("responses", rewritten) == match_key(RESPONSES, body), rewritten


# Edits that change what the model returns: each must refuse a match, and be named.
def _edits(body: dict) -> list[tuple[str, dict]]:
    last = body["messages"][-1]
    temperature = body.get("temperature", 1)
    return [
        ("model", {**body, "model": body["model"] + "-other"}),
        (
            "messages",
            {**body, "messages": [*body["messages"][:-1], {**last, "content": last["content"] + "!"}]},
        ),
        ("messages", {**body, "messages": [*body["messages"], {"role": "user", "content": "and?"}]}),
        ("temperature", {**body, "temperature": temperature + 0.5}),
        ("n", {**body, "n": 2}),
        ("max_tokens", {**body, "max_tokens": body.get("max_tokens", 0) + 1}),
        ("stream", {**body, "stream": not body["stream"]}),
        ("stream_options.include_usage", {**body, "stream_options": {"include_usage": True}}),
        ("tools", {**body, "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}),
        ("logprobs", {**body, "logprobs": True}),
    ]


@PROPERTY
@given(chat_bodies(), st.data())
def test_output_changing_edits_refuse_a_match_and_are_named(body: dict, data: st.DataObject) -> None:
    field, edited = data.draw(st.sampled_from(_edits(body)))
    assert match_key(CHAT, edited) != match_key(CHAT, body)
    assert field in differing_fields(request_form(CHAT, edited), request_form(CHAT, body))


@PROPERTY
@given(responses_bodies(), st.data())
def test_output_changing_responses_edits_refuse_a_match(body: dict, data: st.DataObject) -> None:
    field, edited = data.draw(
        st.sampled_from(
            [
                ("input", {**body, "input": body["input"] + "!"}),
                ("input", {**body, "input": [{"role": "user", "content": body["input"]}] * 2}),
                ("instructions", {**body, "instructions": body.get("instructions", "") + "Be brief."}),
                ("model", {**body, "model": body["model"] + "-other"}),
                ("max_output_tokens", {**body, "max_output_tokens": 5}),
            ]
        )
    )
    assert match_key(RESPONSES, edited) != match_key(RESPONSES, body)
    assert field in differing_fields(request_form(RESPONSES, edited), request_form(RESPONSES, body))


@PROPERTY
@given(chat_bodies(), chat_bodies())
def test_two_requests_that_differ_are_told_apart_by_name(one: dict, other: dict) -> None:
    differing = differing_fields(request_form(CHAT, one), request_form(CHAT, other))
    assert bool(differing) == (match_key(CHAT, one) != match_key(CHAT, other))


@pytest.mark.parametrize(
    ("asked", "named"),
    [
        ({"stream": 1}, ["stream"]),  # JSON's 1 is not true, though Python's 1 == True
        ({"temperature": False}, ["temperature"]),
        ({"stream_options": {"include_obfuscation": False}}, ["stream_options.include_obfuscation"]),
        ({"response_format": {}}, ["response_format"]),
        ({"response_format": {"type": "json_object"}}, ["response_format.type"]),
    ],
)
def test_differing_fields_is_never_empty_for_unequal_forms(asked: dict, named: list[str]) -> None:
    body = {**CHAT_BODY, **asked}
    assert match_key(CHAT, body) != match_key(CHAT, CHAT_BODY)
    assert differing_fields(request_form(CHAT, body), request_form(CHAT, CHAT_BODY)) == named


# The replay server answers by the rule.
USAGE_BODY = {**CHAT_BODY, "stream_options": {"include_usage": True}}


@pytest.fixture(scope="module")
def server():
    with ReplayServer(speed=0, recordings=[synthetic_chat_recording()]) as srv:
        yield srv


LANGCHAIN_LIKE = {  # the spellings real clients send (issue 22's table)
    **CHAT_BODY,
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": CHAT_BODY["messages"][0]["content"]}]}
    ],
    "temperature": 0.0,
    "n": 1,
    "top_p": 1,
    "tools": [],
    "parallel_tool_calls": False,
    "max_tokens": None,
}


def test_an_equivalent_spelling_is_answered(server: ReplayServer) -> None:
    response = httpx2.post(server.base_url + "/chat/completions", json=LANGCHAIN_LIKE)
    assert response.status_code == 200
    assert response.content == synthetic_chat_recording().sse_bytes()
    assert NOTE_HEADER not in response.headers


@pytest.mark.parametrize(
    ("asked", "named"),
    [({"temperature": 0.7}, "temperature"), ({"stream": 1}, "stream"), ({"n": 2, "top_p": 0.5}, "n, top_p")],
)
def test_the_404_names_what_differs(server: ReplayServer, asked: dict, named: str) -> None:
    response = httpx2.post(server.base_url + "/chat/completions", json={**LANGCHAIN_LIKE, **asked})
    assert response.status_code == 404
    assert f"'test-count-to-5', differs in: {named}." in response.json()["error"]["message"]


def test_include_usage_without_such_a_recording_is_the_stream_as_recorded(server: ReplayServer) -> None:
    response = httpx2.post(server.base_url + "/chat/completions", json=USAGE_BODY)
    assert response.status_code == 200
    assert response.content == synthetic_chat_recording().sse_bytes()  # no usage chunk made up
    assert response.headers[NOTE_HEADER] == USAGE_NOT_RECORDED
    line = server.sent_line()
    assert line is not None
    assert (line["note"], line["state"]) == (USAGE_NOT_RECORDED, "complete")
    httpx2.post(server.base_url + "/chat/completions", json=CHAT_BODY)
    assert server.sent_line()["note"] is None


def test_a_recording_made_with_include_usage_is_preferred() -> None:
    plain = synthetic_chat_recording()
    with_usage = synthetic_chat_recording(name="test-count-to-5-usage", body=USAGE_BODY)
    index = RecordingIndex([plain, with_usage])
    match = index.find(CHAT, {**USAGE_BODY, "temperature": 0.0})
    assert match is not None
    assert (match.entry.recording.name, match.note) == ("test-count-to-5-usage", None)
    assert index.find(CHAT, CHAT_BODY).entry.recording.name == "test-count-to-5"


def _hostile_body() -> bytes:
    """Issue 16's hostile body: about 300,000 keys in a body under the 4 MiB limit."""
    body = json.dumps({**CHAT_BODY, **{f"k{i:x}": 0 for i in range(300_000)}}, separators=(",", ":"))
    assert len(body) < 4 * 1024 * 1024
    return body.encode()


def test_the_closest_hint_reads_only_the_fields_recordings_have() -> None:
    # Issue 16's hostile body: about 300,000 keys in 4 MiB. The hint compares the few fields
    # that recordings have and names the first others unread: its work does not grow with the body.
    index = RecordingIndex(
        [synthetic_chat_recording(), synthetic_chat_recording("b", body={**CHAT_BODY, "n": 2})]
    )
    hostile = json.loads(_hostile_body())
    assert index.find(CHAT, hostile) is None
    closest = index.closest(CHAT, hostile)
    assert closest is not None
    assert closest.differing == [f"k{i:x}" for i in range(11)]  # the 404 names 10 "and more"
    assert closest.compared <= 2 * len(request_form(CHAT, {**CHAT_BODY, "n": 2}))


def test_a_hostile_body_gets_a_404_naming_its_first_fields(server: ReplayServer) -> None:
    headers = {"content-type": "application/json"}
    response = httpx2.post(
        server.base_url + "/chat/completions", content=_hostile_body(), headers=headers, timeout=60
    )
    assert response.status_code == 404
    assert (
        "differs in: k0, k1, k2, k3, k4, k5, k6, k7, k8, k9 and more." in response.json()["error"]["message"]
    )
