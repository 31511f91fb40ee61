"""Staged faults (the x-streamscope-fault header), recordings that ended early, and the sent log.

Through HTTP and the official SDK only. No test asserts a duration; a stall is checked by the
SDK's read timeout firing (the stall is a hundred times longer than the timeout).
"""

from __future__ import annotations

import json
import socket

import httpx2
import openai
import pytest
from streamscope.recording import Event, Incomplete, Recording
from streamscope.replay import FAULT_HEADER, SPEED_HEADER, ReplayServer
from synthetic_recordings import CHAT_BODY, PROMPT, WORDS, synthetic_chat_recording
from wire import CHAT, raw_until_broken, sent_line

RESPONSES_BODY = {"model": "gpt-test", "input": PROMPT, "stream": True}


def responses_recording() -> Recording:
    response = {"id": "resp_test", "object": "response", "model": "gpt-test-0001", "status": "in_progress"}
    kinds = ["response.created", "response.output_text.delta", "response.completed"]
    events = []
    for i, kind in enumerate(kinds):
        data = {"type": kind, "sequence_number": i, "response": response}
        if kind == "response.output_text.delta":
            data = {"type": kind, "sequence_number": i, "delta": "1, 2", "item_id": "msg_test"}
            data |= {"output_index": 0, "content_index": 0}
        events.append(Event(0.01 * i, f"event: {kind}\ndata: {json.dumps(data)}\n\n"))
    return Recording(
        name="test-responses",
        provenance={"source": "synthetic, built by the tests", "method": "synthetic"},
        request={"method": "POST", "path": "/v1/responses", "body": RESPONSES_BODY},
        headers={"content-type": "text/event-stream"},
        events=events,
    )


def cut_recording(dropped: bool) -> Recording:
    """The test stream as it would be recorded when it ended after 4 of its 12 events."""
    rec = synthetic_chat_recording("test-cut", body={**CHAT_BODY, "model": "gpt-cut"})
    rec.events = (rec.events or [])[:4]
    rec.incomplete = Incomplete("the connection broke", 0.2, dropped=dropped)
    return rec


@pytest.fixture(scope="module")
def server():
    recordings = [synthetic_chat_recording(), responses_recording(), cut_recording(dropped=True)]
    with ReplayServer(speed=0, recordings=recordings) as srv:
        yield srv


def test_cut_after_n_drops_the_connection_after_n_events(server: ReplayServer) -> None:
    rec = synthetic_chat_recording()
    received, broke = raw_until_broken(server, CHAT_BODY, **{FAULT_HEADER: "cut-after=3"})
    assert received == "".join(e.raw for e in (rec.events or [])[:3]).encode()
    assert isinstance(broke, httpx2.RemoteProtocolError)
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    stream = client.chat.completions.create(**CHAT_BODY, extra_headers={FAULT_HEADER: "cut-after=3"})
    contents = []
    with pytest.raises(openai.APIConnectionError):
        contents.extend(chunk.choices[0].delta.content for chunk in stream)
    assert contents == ["", WORDS[0], WORDS[1]]
    line = sent_line(server, stream)
    assert (line["state"], line["events_sent"], line["events_total"]) == ("cut (fault)", 3, 12)
    assert line["fault"] == "cut-after=3"


def test_error_after_n_sends_an_error_event_the_sdk_raises(server: ReplayServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    stream = client.chat.completions.create(**CHAT_BODY, extra_headers={FAULT_HEADER: "error-after=2"})
    contents = []
    with pytest.raises(openai.APIError, match="staged by the replay server after event 2") as raised:
        contents.extend(chunk.choices[0].delta.content for chunk in stream)
    assert contents == ["", WORDS[0]]
    assert raised.value.body["code"] == "streamscope_fault"  # type: ignore[index]
    line = sent_line(server, stream)
    assert (line["state"], line["events_sent"]) == ("error sent (fault)", 2)


def test_error_after_n_on_the_responses_api_is_an_error_event(server: ReplayServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    stream = client.responses.create(**RESPONSES_BODY, extra_headers={FAULT_HEADER: "error-after=1"})
    assert [event.type for event in stream] == ["response.created", "error"]


def test_a_stall_longer_than_the_sdk_timeout_times_it_out(server: ReplayServer) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=0.5)
    fault = {FAULT_HEADER: "stall=50, stall-after=2"}
    stream = client.chat.completions.create(**CHAT_BODY, extra_headers=fault)
    contents = []
    with pytest.raises(openai.APITimeoutError):
        contents.extend(chunk.choices[0].delta.content for chunk in stream)
    assert contents == ["", WORDS[0]]
    line = sent_line(server, stream)
    assert (line["state"], line["events_sent"]) == ("client disconnected", 2)


def test_a_short_stall_delays_nothing_else(server: ReplayServer) -> None:
    received, broke = raw_until_broken(server, CHAT_BODY, **{FAULT_HEADER: "stall=0.01"})
    assert broke is None
    assert received.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize(
    "header", ["cut-after=x", "cut-after=1,error-after=2", "stall=-1", "stall=nan", "explode=1", "cut-after"]
)
def test_a_fault_that_makes_no_sense_is_a_400(server: ReplayServer, header: str) -> None:
    response = httpx2.post(server.base_url + CHAT, json=CHAT_BODY, headers={FAULT_HEADER: header})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith(f"Header {FAULT_HEADER}: ")
    assert "cut-after=N, error-after=N, stall=S, stall-after=N" in message


def test_a_recording_that_broke_off_replays_broken_at_the_same_point(server: ReplayServer) -> None:
    rec = cut_recording(dropped=True)
    received, broke = raw_until_broken(server, rec.request["body"])
    assert received == rec.sse_bytes()
    assert isinstance(broke, httpx2.RemoteProtocolError)
    paced, broke = raw_until_broken(server, rec.request["body"], **{SPEED_HEADER: "1"})
    assert (paced, type(broke)) == (received, httpx2.RemoteProtocolError)


def test_a_recording_that_ended_cleanly_but_early_replays_ending_there() -> None:
    rec = cut_recording(dropped=False)
    with ReplayServer(speed=0, recordings=[rec]) as srv:
        received, broke = raw_until_broken(srv, rec.request["body"])
        assert (received, broke) == (rec.sse_bytes(), None)
        (line,) = srv.sent
    assert (line["state"], line["events_sent"]) == ("complete", 4)


def test_the_sent_log_shows_the_server_stops_when_the_client_cancels() -> None:
    # The last events are minutes away: the server can only stop early if it sees the client go.
    rec = synthetic_chat_recording(offsets=[0.0, 0.0, *([600.0] * (len(WORDS) + 1))])
    with ReplayServer(speed=1, recordings=[rec]) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="test")
        stream = client.chat.completions.create(**CHAT_BODY)
        first = next(iter(stream))
        stream.close()
        assert first.choices[0].delta.role == "assistant"
        line = sent_line(srv, stream)
        assert srv.sent == [line]
    assert line["state"] == "client disconnected"
    assert (line["events_sent"], line["events_total"]) == (2, 12)
    assert line["bytes_sent"] == len((rec.events or [])[0].raw) + len((rec.events or [])[1].raw)
    assert line["recording"] == rec.name
    assert line["path"] == "/v1/chat/completions"


def test_a_pipelined_request_is_cut_where_asked_too(server: ReplayServer) -> None:
    body = json.dumps(CHAT_BODY).encode()

    def request(*headers: str) -> bytes:
        head = [f"POST /v1{CHAT} HTTP/1.1", "host: 127.0.0.1", "content-type: application/json"]
        head += [f"content-length: {len(body)}", *headers]
        return "\r\n".join(head).encode() + b"\r\n\r\n" + body

    rec = synthetic_chat_recording()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request() + request(f"{FAULT_HEADER}: cut-after=2"))  # both at once
        received = b""
        while piece := sock.recv(65536):
            received += piece
    first, second = received.split(b"HTTP/1.1 200 OK")[1:]
    assert first.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    assert rec.events is not None
    assert second.endswith(rec.events[1].raw.encode() + b"\r\n")  # the second event, then nothing
