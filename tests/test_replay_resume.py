"""Resuming a background Responses stream: GET /v1/responses/{id}?stream=true&starting_after=N.

Through the official SDK (``client.responses.retrieve(id, stream=True, starting_after=N)``)
against the replay server, on the real gpt-4o background stream transcribed from pydantic-ai's
cassette and on a synthetic timed one (to check that the resumed events keep their offsets).
"""

from __future__ import annotations

import json
import time

import httpx2
import openai
import pytest
from streamscope.assemble import Assembler, assemble_sse
from streamscope.errors import RecordingError
from streamscope.recording import Event, Recording, load_recording
from streamscope.replay import FAULT_HEADER, ReplayServer
from streamscope.replay.resume import ResumeError, resumable
from wire import sent_line

BACKGROUND = "pydantic-ai-gpt-4o-responses-background-stream"
TIMED_BODY = {"model": "gpt-test", "input": "Count to 3. (test only)", "stream": True, "background": True}
NOT_BACKGROUND_BODY = {"model": "gpt-test", "input": "Count to 3. (test only)", "stream": True}
TIMED_OFFSETS = [0.0, 0.05, 0.2, 0.4, 0.6, 0.61]


def timed_recording(body: dict, name: str, response_id: str) -> Recording:
    """A test-only background stream with times: created, queued, three deltas, completed."""
    response = {"id": response_id, "object": "response", "status": "queued", "background": True}
    deltas = ["response.output_text.delta"] * 3
    kinds = ["response.created", "response.queued", *deltas, "response.completed"]
    events = []
    for number, (kind, t) in enumerate(zip(kinds, TIMED_OFFSETS, strict=True)):
        data: dict = {"type": kind, "sequence_number": number}
        if kind == "response.output_text.delta":
            data |= {"delta": str(number - 1), "item_id": "msg_test", "output_index": 0, "content_index": 0}
        else:
            data["response"] = response
        events.append(Event(t, f"event: {kind}\ndata: {json.dumps(data)}\n\n"))
    return Recording(
        name=name,
        provenance={"source": "synthetic, built by the tests", "method": "synthetic"},
        request={"method": "POST", "path": "/v1/responses", "body": body},
        headers={"content-type": "text/event-stream"},
        events=events,
    )


@pytest.fixture(scope="module")
def server():
    recordings = [
        load_recording(BACKGROUND),
        timed_recording(TIMED_BODY, "test-background", "resp_test_timed"),
        timed_recording(NOT_BACKGROUND_BODY, "test-foreground", "resp_test_foreground"),
    ]
    with ReplayServer(speed=1, recordings=recordings) as srv:
        yield srv


def client(server: ReplayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def background_body() -> dict:
    return load_recording(BACKGROUND).request["body"]


def test_a_cut_stream_resumed_after_the_last_event_seen_loses_nothing_and_repeats_nothing(server) -> None:
    rec = load_recording(BACKGROUND)
    sdk = client(server)
    seen, assembler = [], Assembler()
    stream = sdk.responses.create(**background_body(), extra_headers={FAULT_HEADER: "cut-after=7"})
    with pytest.raises(openai.APIConnectionError):
        for event in stream:
            seen.append(event.sequence_number)
            assembler.feed(event)
    assert seen == list(range(7))
    for event in sdk.responses.retrieve(response_id(rec), stream=True, starting_after=seen[-1]):
        seen.append(event.sequence_number)
        assembler.feed(event)
    assert seen == list(range(17))
    assert assembler.result().complete
    assert assembler.result().object == assemble_sse(rec.sse_bytes()).object


def response_id(rec: Recording) -> str:
    found = resumable(rec)
    assert found is not None
    return found.response_id


def test_the_cut_part_and_the_resumed_part_are_the_recorded_bytes(server) -> None:
    rec = load_recording(BACKGROUND)
    sdk = client(server)
    received = b""
    with (
        sdk.responses.with_streaming_response.create(
            **background_body(), extra_headers={FAULT_HEADER: "cut-after=5"}
        ) as response,
        pytest.raises(httpx2.HTTPError),
    ):
        for piece in response.iter_bytes():
            received += piece
    cut = "".join(e.raw for e in (rec.events or [])[:5]).encode()
    assert received == cut
    with sdk.responses.with_streaming_response.retrieve(
        response_id(rec), stream=True, starting_after=4
    ) as response:
        received += b"".join(response.iter_bytes())
    assert received == rec.sse_bytes()


def test_without_starting_after_the_whole_stream_comes_again(server) -> None:
    rec = load_recording(BACKGROUND)
    with client(server).responses.with_streaming_response.retrieve(response_id(rec), stream=True) as response:
        assert b"".join(response.iter_bytes()) == rec.sse_bytes()


def test_resumed_events_keep_their_recorded_offsets_from_event_n(server) -> None:
    url = server.base_url + "/responses/resp_test_timed"
    arrivals = []
    start = time.perf_counter()
    with httpx2.stream("GET", url, params={"stream": "true", "starting_after": "2"}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append((json.loads(line[6:])["sequence_number"], time.perf_counter() - start))
    assert [n for n, _ in arrivals] == [3, 4, 5]
    # Event 3 is due 0.2 s after event 2 (0.4 - 0.2): never sooner. No upper bound: a busy machine is late.
    assert arrivals[0][1] >= TIMED_OFFSETS[3] - TIMED_OFFSETS[2]
    assert arrivals[1][1] - arrivals[0][1] >= (TIMED_OFFSETS[4] - TIMED_OFFSETS[3]) * 0.9
    line = sent_line(server, response)
    assert (line["recording"], line["events_total"], line["state"]) == ("test-background", 3, "complete")


@pytest.mark.parametrize(
    ("starting_after", "said"),
    [
        ("-1", "is negative"),
        ("17", "past the end"),
        ("999999999999999", "expected an integer"),
        ("three", "expected an integer"),
        ("1.5", "expected an integer"),
        ("", "expected an integer"),
    ],
)
def test_a_bad_starting_after_is_an_openai_shaped_400(server, starting_after: str, said: str) -> None:
    rec_id = response_id(load_recording(BACKGROUND))
    url = f"{server.base_url}/responses/{rec_id}"
    response = httpx2.get(url, params={"stream": "true", "starting_after": starting_after})
    assert response.status_code == 400
    error = response.json()["error"]
    assert said in error["message"]
    expected = ("invalid_request_error", "starting_after", "invalid_value")
    assert (error["type"], error["param"], error["code"]) == expected


def test_the_sdk_raises_a_bad_request_for_a_starting_after_past_the_end(server) -> None:
    with pytest.raises(openai.BadRequestError, match="past the end"):
        list(client(server).responses.retrieve("resp_test_timed", stream=True, starting_after=6))


def test_an_unknown_id_is_an_openai_shaped_404(server) -> None:
    with pytest.raises(openai.NotFoundError, match="resp_nothing") as raised:
        list(client(server).responses.retrieve("resp_nothing", stream=True, starting_after=0))
    assert raised.value.body["code"] == "not_found"  # type: ignore[index]


def test_a_response_not_created_in_the_background_cannot_be_resumed(server) -> None:
    with pytest.raises(openai.BadRequestError, match="not created with background=true"):
        list(client(server).responses.retrieve("resp_test_foreground", stream=True, starting_after=0))


def test_a_retrieve_that_is_not_a_stream_says_how_to_ask(server) -> None:
    response = httpx2.get(f"{server.base_url}/responses/resp_test_timed")
    assert response.status_code == 400
    assert "stream=true" in response.json()["error"]["message"]


def test_a_recording_without_timing_cannot_claim_times() -> None:
    data = timed_recording(TIMED_BODY, "t", "resp_t").to_dict()
    data["provenance"]["per_chunk_timing"] = False
    with pytest.raises(RecordingError, match="per_chunk_timing is false"):
        Recording.from_dict(data)
    for event in data["response"]["events"]:
        event["t"] = 0
    untimed = Recording.from_dict(data)
    assert not untimed.timed and untimed.label.endswith(", no per-chunk timing")


def test_the_last_event_number_gives_an_empty_resumption() -> None:
    found = resumable(timed_recording(TIMED_BODY, "t", "resp_t"))
    assert found is not None
    assert found.first_after("5") == 6
    assert found.first_after(None) == 0
    with pytest.raises(ResumeError):
        found.first_after("6")
