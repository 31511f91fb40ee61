"""The relay against the replay server: what it forwards (byte for byte), its headers, its heartbeat in a
recorded pause, the upstream request it cancels when the page goes away, and the limits on bad input."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
import streamscope
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from streamscope.recording import load_recording
from streamscope.relay import HEARTBEAT, RELAY_HEADER, JupyterProxy, Relay, hops, read_in_kernel, summary
from streamscope.sse import SSEDecoder

RECORDING = "seed-chat-count-to-100-stream"  # 303 events; a 0.73 s pause after event 135
PROMPT = "Count to 100, with a comma between each number and no newlines. E.g., 1, 2, 3, ..."
HEARTBEAT_S = 0.3
PAUSE_AFTER = 135


@pytest.fixture(scope="module")
def relay() -> Iterator[Relay]:
    relay = Relay(model="gpt-3.5-turbo", backend="replay", heartbeat_s=HEARTBEAT_S).start()
    yield relay
    relay.stop()


def post(relay: Relay, body: Any = None, **kwargs: Any) -> httpx2.Response:
    with httpx2.Client(timeout=30) as http:
        return http.post(relay.url + "chat", json=body, **kwargs)


def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_forwards_the_upstream_events_byte_for_byte_then_its_own_last_event(relay: Relay) -> None:
    response = post(relay, {"prompt": PROMPT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    request_id = int(response.headers[RELAY_HEADER])

    recorded = "".join(event.raw for event in load_recording(RECORDING).events or []).encode()
    body = response.content.replace(HEARTBEAT, b"")
    last = f"event: relay-done\ndata: {json.dumps({'request': request_id, 'events': 303})}\n\n".encode()
    assert body == recorded + last

    record = relay.log.get(request_id)
    assert record.state == "complete" and len(record.forwarded) == 303
    assert streamscope.sent_log_line(record, backend="replay")["state"] == "complete"


def test_a_heartbeat_comment_fills_the_recorded_pause_and_only_that(relay: Relay) -> None:
    response = post(relay, {"prompt": PROMPT})
    record = relay.log.get(int(response.headers[RELAY_HEADER]))
    assert record.heartbeats, "no heartbeat in a 0.73 s pause with a 0.3 s interval"
    before, after = record.forwarded[PAUSE_AFTER - 1], record.forwarded[PAUSE_AFTER]
    assert all(before < t < after for t in record.heartbeats)
    # On the wire, between whole events: right after the pause's last event.
    recording = load_recording(RECORDING).events or []
    upto = "".join(event.raw for event in recording[:PAUSE_AFTER]).encode()
    assert response.content.startswith(upto + HEARTBEAT)


def test_closing_the_page_cancels_the_upstream_request_and_leaves_nothing_open(relay: Relay) -> None:
    record = read_in_kernel(relay, PROMPT, stop_after=40)
    assert until(lambda: record.ended is not None)
    assert record.state == "client disconnected"
    line = streamscope.sent_log_line(record, backend="replay")
    assert line["state"] == "client disconnected"
    assert 40 <= line["events_sent"] < line["events_total"] == 303
    time.sleep(0.5)  # the replay server would have sent more by now, had it not stopped
    assert streamscope.sent_log_line(record, backend="replay")["events_sent"] == line["events_sent"]
    assert until(lambda: relay.open_tasks() == [])
    assert relay.upstream_connections()["busy"] == 0
    assert streamscope.active_backend("replay").kind == "replay"
    from streamscope.backends.registry import shared_replay_server

    assert until(lambda: shared_replay_server().active_streams == 0)


def test_an_upstream_failure_is_an_error_event_in_openais_shape(relay: Relay) -> None:
    response = post(relay, {"prompt": "a prompt nobody recorded"})
    assert response.status_code == 200
    events = SSEDecoder().feed(response.content)
    assert [e.event for e in events] == ["relay-error"]
    error = json.loads(events[0].data)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "recording_not_found" and "404" in error["message"]


def openai_error(response: httpx2.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


@pytest.mark.parametrize(
    ("send", "status"),
    [
        ({"content": b"x" * (4 * 1024 * 1024 + 1), "headers": {"content-type": "application/json"}}, 413),
        ({"content": b'{"prompt": "hi"}', "headers": {"content-type": "text/plain"}}, 415),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, 400),
        ({"content": b'{"prompt": 7}', "headers": {"content-type": "application/json"}}, 400),
        (
            {
                "content": b'{"prompt": "hi"}',
                "headers": {"content-type": "application/json", "host": "evil.example"},
            },
            421,
        ),
    ],
    ids=[
        "413-too-big",
        "415-not-json-type",
        "400-not-json",
        "400-not-an-object",
        "400-no-prompt",
        "421-host",
    ],
)
def test_bad_input_gets_a_one_line_openai_shaped_error(
    relay: Relay, send: dict[str, Any], status: int
) -> None:
    with httpx2.Client(timeout=30) as http:
        openai_error(http.post(relay.url + "chat", **send), status)


def test_an_unknown_route_and_a_bad_paint_report_are_openai_shaped_errors(relay: Relay) -> None:
    with httpx2.Client(timeout=30) as http:
        openai_error(http.get(relay.url + "nowhere"), 404)
        openai_error(http.post(relay.url + "painted", json={"request": 10**6, "painted": []}), 400)


def test_the_page_and_the_clock(relay: Relay) -> None:
    with httpx2.Client(timeout=30) as http:
        page = http.get(relay.url)
        before = time.monotonic()
        clock = http.get(relay.url + "clock").json()["t"]
    assert page.status_code == 200 and 'fetch("chat"' in page.text and "getReader()" in page.text
    assert before <= clock <= time.monotonic()
    assert relay.log.page_seen is not None


def test_hops_put_the_upstream_schedule_the_relay_and_the_reader_in_order(relay: Relay) -> None:
    record = read_in_kernel(relay, PROMPT)
    h = hops(record, backend="replay")
    assert h.recording == RECORDING and h.upstream is not None
    assert len(h.upstream) == len(h.relay) == len(h.page) == 303
    rows = summary(h)
    assert [r["hop"] for r in rows] == ["upstream sent", "relay forwarded", "kernel client read (no page)"]
    firsts = [r["first_token_s"] for r in rows]
    assert firsts == sorted(firsts) and firsts[0] == pytest.approx(0.1)


def test_starlettes_gzip_middleware_no_longer_buffers_a_stream() -> None:
    """Starlette 1.10 skips text/event-stream, and, told not to, flushes each piece (Z_SYNC_FLUSH)."""
    gzip = Middleware(GZipMiddleware, minimum_size=0, exclude_content_types=())
    with_gzip = Relay(model="gpt-3.5-turbo", backend="replay", middleware=[gzip]).start()
    try:
        with httpx2.Client(timeout=30) as http:
            encoding = http.post(with_gzip.url + "chat", json={"prompt": PROMPT}).headers["content-encoding"]
        record = read_in_kernel(with_gzip, PROMPT)
    finally:
        with_gzip.stop()
    h = hops(record, backend="replay")
    first = h.first_token()
    assert encoding == "gzip" and first is not None
    assert h.page[first] is not None and h.page[first] < h.relay[first] + 0.1 < 0.5


def test_jupyter_server_proxy_streams_only_accept_event_stream_and_does_not_cancel(relay: Relay) -> None:
    with JupyterProxy() as proxy:
        url = proxy.url_for(relay)
        streamed = hops(read_in_kernel(relay, PROMPT, url=url, headers=proxy.headers), backend="replay")
        whole = read_in_kernel(relay, PROMPT, url=url, headers={**proxy.headers, "accept": "*/*"})
        buffered = hops(whole, backend="replay")
        stopped = read_in_kernel(relay, PROMPT, url=url, headers=proxy.headers, stop_after=40)
        line = streamscope.sent_log_line(stopped, wait_s=10, backend="replay")
    first = streamed.first_token()
    assert first is not None
    assert streamed.page[first] < streamed.relay[first] + 0.1  # type: ignore[operator]
    assert buffered.page[first] > buffered.relay[-1] - 0.05  # type: ignore[operator]
    # The page went away after 40 events; the proxy read the relay's response to its end all the same.
    assert line is not None and line["state"] == "complete" and line["events_sent"] == 303


def test_under_its_secret_path_the_relay_takes_any_host(relay: Relay) -> None:
    """Through jupyter-server-proxy on a hub, the Host header names the hub."""
    hub = {"host": "hub.example.org"}
    with httpx2.Client(timeout=30) as http:
        assert http.get(relay.url + relay.secret + "/", headers=hub).status_code == 200
        assert http.get(relay.url + relay.secret + "/clock", headers=hub).status_code == 200
        openai_error(http.get(relay.url, headers=hub), 421)
        openai_error(http.get(relay.url + "not-the-secret/clock", headers=hub), 421)


def test_the_relay_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        Relay(model="gpt-3.5-turbo", host="0.0.0.0")
