"""The replay server keeps its schedule: sends by absolute deadline, with TCP_NODELAY on every connection."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import statistics
import time

import openai
import pytest
from streamscope.replay import ReplayServer, sending
from streamscope.replay.server import _bind, _precise_loop, _ReplayProtocol

from tests.synthetic_recordings import CHAT_BODY, finished_line, synthetic_chat_recording

STEP_S, EXTRA_S = 0.02, 0.01  # events 20 ms apart; each wake-up made 10 ms late


def test_a_late_wake_up_is_not_carried_over_to_the_next_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write waits EXTRA_S past its due time; accumulated sleeps would make the last of the
    12 events 12 x 10 ms late, absolute deadlines keep each one about 10 ms late."""
    on_time = sending._sleep_until

    async def late(due: float) -> None:
        await on_time(due)
        await asyncio.sleep(EXTRA_S)

    monkeypatch.setattr(sending, "_sleep_until", late)
    offsets = [0.05 + STEP_S * i for i in range(12)]
    with ReplayServer(recordings=[synthetic_chat_recording(offsets=offsets)]) as server:
        sdk = openai.OpenAI(base_url=server.base_url, api_key="test")
        for _ in sdk.chat.completions.create(**CHAT_BODY):
            pass
        line = finished_line(server)
    assert line["due_s"] == pytest.approx(offsets)
    lags = [s - d for s, d in zip(line["sent_s"], line["due_s"], strict=True)]
    assert statistics.median(lags) >= EXTRA_S
    assert lags[-1] < 6 * EXTRA_S  # not 12 x EXTRA_S: the schedule is kept, not the gaps


def test_every_accepted_connection_has_tcp_nodelay() -> None:
    """The replay server's listening socket names IPPROTO_TCP, so asyncio sets TCP_NODELAY on each
    connection it accepts (without it, Nagle holds a chunk behind the one before until an ACK)."""
    listening = _bind("127.0.0.1", 0)
    port = listening.getsockname()[1]
    seen: list[int] = []

    class Note(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_three() -> None:
        server = await asyncio.get_running_loop().create_server(Note, sock=listening)
        for _ in range(3):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
        while len(seen) < 3:
            await asyncio.sleep(0.01)
        server.close()

    with asyncio.Runner(loop_factory=_precise_loop) as runner:
        runner.run(asyncio.wait_for(accept_three(), 10))
    assert len(seen) == 3 and all(seen)


def test_the_loop_waits_to_a_fraction_of_a_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    """epoll alone waits whole milliseconds (CPython rounds a wait of 0.3 ms up to 1 ms); the server's
    loop waits in select() on the epoll descriptor, whose timeout keeps the fraction, then collects
    what is ready from epoll without waiting."""
    waits: list[float] = []
    real_select = select.select

    def noted(*args: object) -> object:
        waits.append(args[3])  # type: ignore[arg-type]
        return real_select(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(select, "select", noted)

    async def sleep_briefly() -> None:
        await asyncio.sleep(0.0003)

    with asyncio.Runner(loop_factory=_precise_loop) as runner:
        runner.run(sleep_briefly())
    assert any(0 < wait < 0.0003 + 1e-6 for wait in waits)


def test_requests_that_arrive_together_are_dated_when_they_arrived(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop parses requests one at a time. Two that arrive while it is busy are dated when the
    loop learned of them, together, not when each one's turn came (the second waits for the first's
    slow parse here): a stream's schedule starts at its request's arrival."""
    stalls = iter([0.5, 0.1])  # the first request holds the loop while the next two arrive; then the second
    original = _ReplayProtocol.handle_events

    def handle_events(self: _ReplayProtocol) -> None:
        before = self.cycle
        original(self)
        if self.cycle is not None and self.cycle is not before:
            time.sleep(next(stalls, 0.0))

    monkeypatch.setattr(_ReplayProtocol, "handle_events", handle_events)
    payload = json.dumps(CHAT_BODY).encode()
    with ReplayServer(speed=0, recordings=[synthetic_chat_recording()]) as server:
        request = (
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{server.port}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\nconnection: close\r\n\r\n"
        ).encode() + payload
        connections = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        connections[0].sendall(request)
        time.sleep(0.1)  # the server is in the first request's stall
        for c in connections[1:]:
            c.sendall(request)
        for c in connections:
            while c.recv(65536):
                pass
            c.close()
        arrivals = sorted(line["arrived_at"] for line in server.sent)
    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] > 0.3  # the second and third came during the first one's stall
    assert arrivals[2] - arrivals[1] < 0.05  # not the second one's 0.1 s parse apart


def test_waits_due_together_end_in_the_order_they_were_asked_for() -> None:
    """A hundred streams whose requests arrived together have the same due times: each must keep its
    place in every burst (asyncio's own timers, due together, end in an order of the heap's)."""

    async def wake_order() -> list[int]:
        due = asyncio.get_running_loop().time() + 0.02
        woke: list[int] = []

        async def wait(i: int) -> None:
            await sending._sleep_until(due)
            woke.append(i)

        await asyncio.gather(*(wait(i) for i in range(20)))
        return woke

    with asyncio.Runner(loop_factory=_precise_loop) as runner:
        assert runner.run(wake_order()) == list(range(20))
